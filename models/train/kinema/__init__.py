"""kinema-tiny, PyTorch side: model (mirror of the burn crate), model-folder I/O, MiniLM loading."""
