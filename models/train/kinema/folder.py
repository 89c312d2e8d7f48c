"""The model folder (ARCHITECTURE.md, "The model folder"): write, read back, verify."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save, save_file

from .config import KinemaConfig

FORMAT = "kinema-model/1"
SHARD_LIMIT = 16 * 1024 * 1024
# Room left in each shard for the safetensors JSON header (a few KiB for ~100 tensors).
HEADER_RESERVE = 256 * 1024
ROLES = ("text", "dit", "decoder")
PART_RE = re.compile(r"^(.*)\.part(\d+)$")


def save_deterministic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict) -> None:
    """safetensors' save with the header metadata in sorted key order: the library writes it from
    a hash map, so with several keys the bytes (and the sha256) would change from run to run."""
    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split_rows(name: str, t: torch.Tensor, budget: int) -> list[tuple[str, torch.Tensor]]:
    """A tensor bigger than one shard is stored as row blocks `{name}.part{k}` (dim 0, k from 0),
    as even as possible; readers concatenate them in k order."""
    nbytes = t.numel() * t.element_size()
    if nbytes <= budget:
        return [(name, t)]
    parts = -(-nbytes // budget)
    return [(f"{name}.part{k}", blk.contiguous()) for k, blk in enumerate(t.chunk(parts, dim=0))]


def _shards(tensors: list[tuple[str, torch.Tensor]], budget: int):
    shard, size = {}, 0
    for name, t in tensors:
        for pname, p in _split_rows(name, t, budget):
            n = p.numel() * p.element_size()
            if shard and size + n > budget:
                yield shard
                shard, size = {}, 0
            shard[pname] = p
            size += n
    if shard:
        yield shard


def write_model_folder(out: Path, cfg: KinemaConfig, state: dict[str, torch.Tensor], *,
                       dtype: torch.dtype, tokenizer: Path, model_id: str, version: str,
                       trained: bool, license: str, readme: str | None = None,
                       extra: dict | None = None) -> dict:
    """Write shards, tokenizer.json and manifest.json; returns the manifest. An existing
    README.md is kept unless `readme` is given. Stale shards of the three roles are removed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.safetensors"):
        if old.name.split("-")[0] in ROLES:
            old.unlink()
    files = []
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    files.append({"path": "tokenizer.json", "role": "tokenizer"})
    for role in ROLES:
        tensors = [(k, v.detach().to("cpu", dtype).contiguous())
                   for k, v in state.items() if k.startswith(role + ".")]
        assert tensors, f"no {role}.* tensors"
        for i, shard in enumerate(_shards(tensors, SHARD_LIMIT - HEADER_RESERVE)):
            path = f"{role}-{i:02d}.safetensors"
            save_file(shard, str(out / path), metadata={"format": "pt"})
            files.append({"path": path, "role": role})
    for f in files:
        p = out / f["path"]
        f["size"] = p.stat().st_size
        f["sha256"] = sha256_file(p)
        assert f["role"] == "tokenizer" or f["size"] <= SHARD_LIMIT, f
    manifest = {"format": FORMAT, "id": model_id, "version": version, "license": license,
                "trained": trained, **(extra or {}), "architecture": cfg.to_json(), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if readme is not None:
        (out / "README.md").write_text(readme)
    return manifest


def read_model_folder(path: Path, verify: bool = True, dtype=torch.float32):
    """Returns (manifest, config, state dict in `dtype`). Checks every file's size and sha256."""
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == FORMAT, manifest["format"]
    cfg = KinemaConfig.from_json(manifest["architecture"])
    state, parts = {}, {}
    for f in manifest["files"]:
        p = path / f["path"]
        if verify:
            size = p.stat().st_size
            if size != f["size"]:
                raise ValueError(f"{f['path']}: size {size} != manifest {f['size']}")
            digest = sha256_file(p)
            if digest != f["sha256"]:
                raise ValueError(f"{f['path']}: sha256 {digest} != manifest {f['sha256']}")
        if f["role"] == "tokenizer":
            continue
        with safe_open(str(p), framework="pt") as st:
            for k in st.keys():
                assert k.startswith(f["role"] + "."), (k, f["path"])
                t = st.get_tensor(k).to(dtype)
                m = PART_RE.match(k)
                if m:
                    parts.setdefault(m.group(1), {})[int(m.group(2))] = t
                else:
                    state[k] = t
    for name, blocks in parts.items():
        assert sorted(blocks) == list(range(len(blocks))), name
        state[name] = torch.cat([blocks[k] for k in range(len(blocks))], dim=0)
    return manifest, cfg, state
