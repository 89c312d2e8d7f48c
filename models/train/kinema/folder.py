"""The model folder (ARCHITECTURE.md, "The model folder"): write, read back, verify.

numpy + safetensors only, no torch: the torch-free default-folder builder (default_folder.py) and
the PyTorch exporters share this one writer. Torch callers convert their state dicts with
`kinema.model.to_numpy_state` / `from_numpy_state`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save, save_file

from .config import KinemaConfig

FORMAT = "kinema-model/1"
SHARD_LIMIT = 16 * 1024 * 1024
# Room left in each shard for the safetensors JSON header (a few KiB for ~100 tensors).
HEADER_RESERVE = 256 * 1024
ROLES = ("text", "dit", "decoder")
PART_RE = re.compile(r"^(.*)\.part(\d+)$")
DTYPES = {"f16": np.float16, "f32": np.float32}


def save_deterministic(tensors: dict[str, np.ndarray], path: Path, metadata: dict) -> None:
    """safetensors' save with the header metadata in sorted key order: the library writes it from
    a hash map, so with several keys the bytes (and the sha256) would change from run to run."""
    raw = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _split_rows(name: str, t: np.ndarray, budget: int) -> list[tuple[str, np.ndarray]]:
    """A tensor bigger than one shard is stored as row blocks `{name}.part{k}` (dim 0, k from 0),
    as even as possible; readers concatenate them in k order. Blocks are cut like torch.chunk
    (ceil(rows/parts) rows each, the last one shorter), the rule the shipped folders were first
    written with, so re-exports stay byte-identical."""
    if t.nbytes <= budget:
        return [(name, t)]
    parts = -(-t.nbytes // budget)
    rows = -(-t.shape[0] // parts)
    return [(f"{name}.part{k}", np.ascontiguousarray(t[start:start + rows]))
            for k, start in enumerate(range(0, t.shape[0], rows))]


def _shards(tensors: list[tuple[str, np.ndarray]], budget: int):
    shard, size = {}, 0
    for name, t in tensors:
        for pname, p in _split_rows(name, t, budget):
            if shard and size + p.nbytes > budget:
                yield shard
                shard, size = {}, 0
            shard[pname] = p
            size += p.nbytes
    if shard:
        yield shard


def role_files(manifest: dict, role: str) -> list[dict]:
    return [f for f in manifest["files"] if f["role"] == role]


def write_shards(out: Path, role: str, tensors: list[tuple[str, np.ndarray]], dtype) -> list[dict]:
    """Write `{role}-NN.safetensors` from (name, array) pairs in the given order (the order decides
    which shard a tensor lands in, so keep the model's state-dict order). Old shards of the role
    are removed first. Returns their manifest entries (path, role, size, sha256)."""
    out = Path(out)
    dtype = DTYPES.get(dtype, dtype)
    assert tensors, f"no {role}.* tensors"
    for old in out.glob(f"{role}-*.safetensors"):
        old.unlink()
    files = []
    for i, shard in enumerate(_shards([(k, np.ascontiguousarray(v, dtype=dtype))
                                       for k, v in tensors], SHARD_LIMIT - HEADER_RESERVE)):
        path = f"{role}-{i:02d}.safetensors"
        assert all(k.startswith(role + ".") for k in shard), (role, list(shard))
        save_file(shard, str(out / path), metadata={"format": "pt"})
        files.append(file_entry(out, path, role))
    return files


def file_entry(folder: Path, path: str, role: str) -> dict:
    p = Path(folder) / path
    f = {"path": path, "role": role, "size": p.stat().st_size, "sha256": sha256_file(p)}
    assert role == "tokenizer" or f["size"] <= SHARD_LIMIT, f
    return f


def write_manifest(out: Path, cfg: KinemaConfig, files: list[dict], *, model_id: str, version: str,
                   trained: bool, license: str, extra: dict | None = None) -> dict:
    """manifest.json with the files in the spec's order (tokenizer, text, dit, decoder)."""
    order = {r: i for i, r in enumerate(("tokenizer",) + ROLES)}
    files = sorted(files, key=lambda f: order[f["role"]])  # stable: shard order kept
    manifest = {"format": FORMAT, "id": model_id, "version": version, "license": license,
                "trained": trained, **(extra or {}), "architecture": cfg.to_json(), "files": files}
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_model_folder(out: Path, cfg: KinemaConfig, state: dict[str, np.ndarray], *,
                       dtype, tokenizer: Path, model_id: str, version: str,
                       trained: bool, license: str, readme: str | None = None,
                       extra: dict | None = None) -> dict:
    """Write shards, tokenizer.json and manifest.json; returns the manifest. `state` maps tensor
    names to numpy arrays (any float dtype; stored as `dtype`, "f16"/"f32" or a numpy dtype).
    An existing README.md is kept unless `readme` is given. Stale shards of the three roles are
    removed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # re-exporting into the folder the tokenizer is read from (train.py export's default) keeps it
    if not (out / "tokenizer.json").exists() or not (out / "tokenizer.json").samefile(tokenizer):
        shutil.copyfile(tokenizer, out / "tokenizer.json")
    files = [file_entry(out, "tokenizer.json", "tokenizer")]
    for role in ROLES:
        files += write_shards(out, role, [(k, v) for k, v in state.items()
                                          if k.startswith(role + ".")], dtype)
    manifest = write_manifest(out, cfg, files, model_id=model_id, version=version,
                              trained=trained, license=license, extra=extra)
    if readme is not None:
        (out / "README.md").write_text(readme)
    return manifest


def verify_files(path: Path, manifest: dict, roles=None) -> list[str]:
    """One message per file of the manifest (optionally only some roles) that is missing or whose
    size or sha256 differs; empty when all match."""
    path = Path(path)
    problems = []
    for f in manifest["files"]:
        if roles is not None and f["role"] not in roles:
            continue
        p = path / f["path"]
        if not p.is_file():
            problems.append(f"{f['path']}: missing")
            continue
        size = p.stat().st_size
        if size != f["size"]:
            problems.append(f"{f['path']}: size {size} != manifest {f['size']}")
            continue
        digest = sha256_file(p)
        if digest != f["sha256"]:
            problems.append(f"{f['path']}: sha256 {digest} != manifest {f['sha256']}")
    return problems


def read_model_folder(path: Path, verify: bool = True, dtype=np.float32):
    """Returns (manifest, config, state dict of numpy arrays in `dtype`). Checks every file's size
    and sha256 first (ValueError naming the file)."""
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == FORMAT, manifest["format"]
    cfg = KinemaConfig.from_json(manifest["architecture"])
    if verify:
        problems = verify_files(path, manifest)
        if problems:
            raise ValueError("; ".join(problems))
    state, parts = {}, {}
    for f in manifest["files"]:
        if f["role"] == "tokenizer":
            continue
        with safe_open(str(path / f["path"]), framework="numpy") as st:
            for k in st.keys():
                assert k.startswith(f["role"] + "."), (k, f["path"])
                t = st.get_tensor(k).astype(dtype)
                m = PART_RE.match(k)
                if m:
                    parts.setdefault(m.group(1), {})[int(m.group(2))] = t
                else:
                    state[k] = t
    for name, blocks in parts.items():
        assert sorted(blocks) == list(range(len(blocks))), name
        state[name] = np.concatenate([blocks[k] for k in range(len(blocks))], axis=0)
    return manifest, cfg, state
