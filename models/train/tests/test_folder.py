import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import kinema.folder as folder
from kinema.config import KinemaConfig
from kinema.model import Kinema, KVCache, from_numpy_state, random_init_, sample, to_numpy_state
from kinema.text import PromptTokenizer, minilm_dir

MODELS = Path(__file__).resolve().parents[2]


def _tiny_state(seed=0):
    m = Kinema(KinemaConfig.parity_tiny())
    random_init_(m, torch.Generator().manual_seed(seed))
    return m.cfg, to_numpy_state(m.shipped_state_dict())


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_model_folder_round_trip(tmp_path, dtype):
    cfg, state = _tiny_state()
    manifest = folder.write_model_folder(
        tmp_path, cfg, state, dtype=dtype, tokenizer=minilm_dir() / "tokenizer.json",
        model_id="t", version="0", trained=False, license="x", readme="card\n")
    assert [f["role"] for f in manifest["files"]] == ["tokenizer", "text", "dit", "decoder"]
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    for f in manifest["files"]:
        p = tmp_path / f["path"]
        assert p.stat().st_size == f["size"] and folder.sha256_file(p) == f["sha256"]
    m2, cfg2, state2 = folder.read_model_folder(tmp_path)
    assert cfg2 == cfg and m2["architecture"] == cfg.to_json()
    assert state2.keys() == state.keys()
    for k, v in state.items():
        assert np.array_equal(state2[k], v.astype(folder.DTYPES[dtype]).astype(np.float32)), k


def test_corrupt_file_is_rejected(tmp_path):
    cfg, state = _tiny_state()
    folder.write_model_folder(tmp_path, cfg, state, dtype="f32",
                              tokenizer=minilm_dir() / "tokenizer.json", model_id="t",
                              version="0", trained=False, license="x")
    p = tmp_path / "dit-00.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        folder.read_model_folder(tmp_path)


def test_big_tensors_split_into_row_parts_and_shards_stay_small(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "SHARD_LIMIT", 600_000)
    monkeypatch.setattr(folder, "HEADER_RESERVE", 20_000)
    cfg, state = _tiny_state()  # word embeddings: 30522×32 f32 = 3.9 MB
    manifest = folder.write_model_folder(
        tmp_path, cfg, state, dtype="f32", tokenizer=minilm_dir() / "tokenizer.json",
        model_id="t", version="0", trained=False, license="x")
    shards = [f for f in manifest["files"] if f["role"] != "tokenizer"]
    assert all(f["size"] <= 600_000 for f in shards)
    assert sum(f["role"] == "text" for f in shards) >= 7
    with safe_open(str(tmp_path / "text-00.safetensors"), "pt") as f:
        assert list(f.keys()) == ["text.embeddings.word_embeddings.weight.part0"]
    _, _, state2 = folder.read_model_folder(tmp_path)
    assert np.array_equal(state2["text.embeddings.word_embeddings.weight"],
                          state["text.embeddings.word_embeddings.weight"])


def test_shipped_kinema_tiny_folder_verifies():
    path = MODELS / "kinema-tiny"
    if not (path / "text-00.safetensors").exists():  # manifest.json is committed, shards built
        pytest.skip("models/kinema-tiny not built (python3 models/train/build_default_model.py)")
    manifest, cfg, state = folder.read_model_folder(path)
    # kinema-tiny's shapes; how many prompt tokens it reads is the trained folder's own setting
    reads = dataclasses.replace(KinemaConfig.kinema_tiny().text, max_text_tokens=cfg.text.max_text_tokens)
    assert cfg == dataclasses.replace(KinemaConfig.kinema_tiny(), text=reads)
    assert all(f["size"] <= folder.SHARD_LIMIT for f in manifest["files"])
    ref = Kinema(cfg).shipped_state_dict()
    assert state.keys() == ref.keys()
    assert all(state[k].shape == ref[k].shape for k in ref)


def test_committed_tiny_fixtures_still_match_the_model():
    """The PyTorch side still reproduces models/fixtures/tiny/cases.safetensors bit-for-bit-ish,
    so a change to model.py that forgets to regenerate the fixtures fails here first."""
    path = MODELS / "fixtures" / "tiny"
    if not (path / "cases.safetensors").exists():
        pytest.skip("fixtures not built")
    _, cfg, state = folder.read_model_folder(path)
    m = Kinema(cfg).eval()
    m.load_state_dict(from_numpy_state(state))
    with safe_open(str(path / "cases.safetensors"), "pt") as f:
        c = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    prompts = json.loads(meta["prompts"])
    tok = PromptTokenizer(path / "tokenizer.json", cfg.text.max_text_tokens)
    F = cfg.dit.chunk_frames
    with torch.no_grad():
        for k, p in enumerate(prompts):
            assert tok.ids(p) == c[f"text.ids.{k}"].tolist()
            tokens, pooled = m.text(c[f"text.ids.{k}"][None].long())
            assert torch.allclose(tokens[0], c[f"text.tokens.{k}"], atol=1e-5)
            assert torch.allclose(pooled[0], c[f"text.pooled.{k}"], atol=1e-6)
        tokens, pooled = m.text(c["text.ids.0"][None].long())
        cache = KVCache(cfg.dit)
        v = m.dit.forward_chunk(c["dit.x"][None], c["dit.t"][None], c["dit.d"][None], tokens,
                                pooled, 0, cache)
        assert torch.allclose(v[0], c["dit.v"], atol=1e-5)
        m.dit.fill_cache(c["dit.clean0"][None], tokens, pooled, 0, cache)
        v1 = m.dit.forward_chunk(c["dit.x1"][None], c["dit.t1"][None], c["dit.d1"][None],
                                 tokens, pooled, F, cache)
        assert torch.allclose(v1[0], c["dit.v1"], atol=1e-5)
        frames = m.decoder(c["decode.latent"][None])
        assert torch.allclose(frames[0], c["decode.frames"], atol=1e-5)
        noise = [c[f"generate.noise.{i}"][None] for i in range(int(meta["chunks"]))]
        gen = sample(m, tokens, pooled, len(noise), int(meta["steps"]), noise=noise)
        assert torch.allclose(gen[0], c["generate.frames"], atol=1e-5)


def test_checkpoint_loading_variants(tmp_path):
    import export
    from safetensors.torch import save_file

    cfg, state = _tiny_state()
    state = from_numpy_state(state)
    ours = {k: v for k, v in state.items() if k.startswith(("dit.", "decoder."))}
    torch.save({"step": 7, "ema": {**state, "encoder.0.weight": torch.zeros(1)},
                "architecture": cfg.to_json()}, tmp_path / "a.pt")
    sd, c = export.load_checkpoint(tmp_path / "a.pt")
    assert c == cfg and sd.keys() == ours.keys()
    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "b.safetensors"),
              metadata={"architecture": json.dumps(cfg.to_json())})
    sd, c = export.load_checkpoint(tmp_path / "b.safetensors")
    assert c == cfg and all(torch.equal(sd[k], ours[k].half().float()) for k in ours)
    torch.save(state, tmp_path / "c.pt")
    sd, c = export.load_checkpoint(tmp_path / "c.pt")
    assert c is None and sd.keys() == ours.keys()
