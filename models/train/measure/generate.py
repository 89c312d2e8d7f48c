"""Clips from the PyTorch mirror with the browser's sampler (kinema.model.sample: chunk after
chunk, a few Euler steps each, KV cache, streaming decoder), from a model folder or a run folder."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from kinema.folder import read_model_folder, sha256_file
from kinema.model import Kinema, from_numpy_state, sample
from kinema.text import PromptTokenizer


def load_generator(path: Path, device="cpu") -> tuple[Kinema, PromptTokenizer, dict]:
    """A model folder (manifest.json) or a train.py run folder (ae/ + flow/ or shortcut/)."""
    path = Path(path)
    if (path / "manifest.json").exists():
        manifest, cfg, state = read_model_folder(path)
        model = Kinema(cfg)
        model.load_state_dict(from_numpy_state(state), strict=True)
        tok_path = path / "tokenizer.json"
        info = {"source": "model folder", "id": manifest["id"], "trained": manifest["trained"],
                "manifest_sha256": sha256_file(path / "manifest.json"),  # names every shard's sha256
                "sampler_steps": manifest.get("training", {}).get("sampler_steps"),
                "dit_from": manifest.get("training", {}).get("dit_from"),
                "sampler_guidance": manifest.get("training", {}).get("sampler_guidance")}
    elif (path / "ae" / "state.json").exists():
        import train  # the run's own assembly of text + decoder + DiT, as export writes it
        from train_io import load_checkpoint
        ae_state = load_checkpoint(path / "ae", verify=False)[1]
        toy = ae_state.get("toy", False)
        cfg, state, dit_dir, dst = train.shipped_state(path, toy)
        model = Kinema(cfg)
        model.load_state_dict(state, strict=True)
        tok_path = train.tokenizer_path()
        info = {"source": "run folder", "id": f"{path.name}/{dit_dir.name}", "trained": True, "dit_step": dst["step"], "ae_step": ae_state["step"],
                "sampler_steps": train.sampler_steps(dit_dir.name), "dit_from": dit_dir.name}
    else:
        raise SystemExit(f"{path}: neither a model folder (manifest.json) nor a run folder (ae/state.json)")
    return model.to(device).eval(), PromptTokenizer(tok_path, cfg.text.max_text_tokens), info


FALLBACK_STEPS = 2  # the Rust CLI's choice when a manifest names no sampler_steps


def steps_to_use(requested: int | None, info: dict) -> tuple[int, str]:
    """Euler steps per chunk and where the number came from: the caller's, else the model's own
    (manifest training.sampler_steps, or the run's DiT stage), else FALLBACK_STEPS, as `kinema
    generate` chooses."""
    if requested is not None:
        if requested < 1:
            raise SystemExit(f"--steps {requested}: a sampler takes at least 1 step")
        return requested, "--steps"
    if info.get("sampler_steps"):
        return int(info["sampler_steps"]), "the model's training.sampler_steps"
    return FALLBACK_STEPS, "default; the model names no sampler_steps"


def guidance_to_use(requested: float | None, info: dict) -> tuple[float, str]:
    """Classifier-free guidance and where it came from: the caller's, else the model folder's
    training.sampler_guidance (what the Rust sampler applies), else 1 (none)."""
    if requested is not None:
        if not requested > 0:
            raise SystemExit(f"--guidance {requested}: give a scale > 0 (1 = none)")
        return requested, "--guidance"
    if info.get("sampler_guidance") is not None:
        return float(info["sampler_guidance"]), "the model's training.sampler_guidance"
    return 1.0, "none"


def clip_chunks(model: Kinema, seconds: float) -> int:
    """Chunks covering `seconds` (1 s per chunk for kinema-tiny: 4 latent frames x 4)."""
    cfg = model.cfg
    return math.ceil(seconds * cfg.video.fps / (4 * cfg.dit.chunk_frames))


@torch.no_grad()
def generate(model: Kinema, tok: PromptTokenizer, prompts: list[str], seeds: list[int], chunks: int,
             steps: int, on_chunk=None, guidance: float = 1.0, flow_dit: bool = False) -> torch.Tensor:
    """Frames [B, T, 3, H, W] in [0, 1]. Each clip's noise comes from its own seed (torch's
    generator, chunk after chunk), so a clip does not depend on which batch it is generated in.
    `on_chunk` sees each finished chunk's latents too (`kinema.model.sample`). `guidance` != 1
    adds classifier-free guidance against the empty caption, which caption dropout trained;
    `flow_dit` samples a flow stage's DiT at d = 0, as it was trained (`is_flow_dit`)."""
    d = model.cfg.dit
    dev = next(model.parameters()).device
    shape = (d.chunk_frames, d.latent_channels, d.latent_height, d.latent_width)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    noise = [torch.stack([torch.randn(shape, generator=g) for g in gens]) for _ in range(chunks)]
    B = len(prompts)
    # one batch, so the empty captions are padded like the prompts
    ids, mask = tok.batch(prompts + ([""] * B if guidance != 1.0 else []))
    ids, mask = ids.to(dev), mask.to(dev)
    tokens, pooled = model.text(ids, mask)
    uncond = (tokens[B:], pooled[B:], mask[B:]) if guidance != 1.0 else None
    return sample(model, tokens[:B], pooled[:B], chunks, steps, noise=noise, text_mask=mask[:B], on_chunk=on_chunk,
                  uncond=uncond, guidance=guidance, flow_dit=flow_dit)


def is_flow_dit(info: dict) -> bool:
    """Whether `load_generator`'s model holds a flow stage's DiT (a run folder's flow/, or a folder
    exported from it: the manifest's training.dit_from), which reads no step size."""
    return info.get("dit_from") == "flow"
