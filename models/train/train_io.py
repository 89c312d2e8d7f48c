"""Checkpoints that fit the GPU machine's return channel: bf16 shards of at most 16 MiB, plus a
small state.json, written atomically (the trainer can be killed at any moment by the lease)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kinema.folder import sha256_file

SHARD_BYTES = 15 * 1024 * 1024  # under 16 MiB with room for the header


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], state: dict, dtype=torch.bfloat16) -> None:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards, cur, size = [], {}, 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", dtype).contiguous()
        nbytes = t.numel() * t.element_size()
        assert nbytes <= SHARD_BYTES, f"{name} alone is {nbytes} bytes"
        if cur and size + nbytes > SHARD_BYTES:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = t
        size += nbytes
    if cur:
        shards.append(cur)
    files = []
    for i, shard in enumerate(shards):
        p = tmp / f"weights-{i:02d}.safetensors"
        save_file(shard, str(p))
        files.append({"path": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)})
    state = {**state, "files": files, "saved_at": time.time()}
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text())
    tensors = {}
    for f in state["files"]:
        p = folder / f["path"]
        if verify and sha256_file(p) != f["sha256"]:
            raise ValueError(f"{p}: checksum mismatch (partial copy?)")
        with safe_open(str(p), framework="pt") as st:
            for k in st.keys():
                tensors[k] = st.get_tensor(k).float()
    return tensors, state


class SaveRequests:
    """Checkpoints on demand. A device call can only take files back at its end, and a trainer
    saves every --save-minutes: without this, the minutes since the last save are lost to the
    call's collection (up to a fifth of a 10-minute call). SIGUSR1 asks the trainer to save at
    the end of its current step; `<run>/trainer-<name>.pid` says whom to ask (device/session.sh
    --collect does), written only once the handler is in place, since SIGUSR1 otherwise kills."""

    def __init__(self, run: Path, name: str):
        self.requested = False
        self.pidfile = Path(run) / f"trainer-{name}.pid"
        signal.signal(signal.SIGUSR1, self._request)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{os.getpid()}\n")

    def _request(self, signum, frame):
        self.requested = True

    def take(self) -> bool:
        """Whether a save was asked for since the last call."""
        asked, self.requested = self.requested, False
        return asked

    def close(self):
        try:
            if self.pidfile.read_text().strip() == str(os.getpid()):
                self.pidfile.unlink()
        except FileNotFoundError:
            pass
        # ignored rather than default: a request racing the exit must not kill the process (the
        # session's chain starts its next stage only when this one exits cleanly)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def has_checkpoint(folder: Path) -> bool:
    return (Path(folder) / "state.json").exists()


class JsonlLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **rec):
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def add_session_args(ap: argparse.ArgumentParser, run: str, toy_help: str, frames_help: str,
                     warmup_help: str) -> None:
    """The options of every resumable trainer (train.py's stages, train_classifier.py): where the
    run lives, how long this session trains, the data scale, and where it runs. Defaults of 0 (or
    None) mean "the trainer's per-scale default"."""
    ap.add_argument("--run", default=run)
    ap.add_argument("--toy", action="store_true", help=toy_help)
    ap.add_argument("--minutes", type=float, default=0, help="wall-clock budget, then save and exit")
    ap.add_argument("--steps", type=int, default=0, help="steps this session (0 = until --minutes)")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--frames", type=int, default=0, help=frames_help)
    ap.add_argument("--lr", type=float, default=0)
    ap.add_argument("--warmup", type=int, default=None, help=warmup_help)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--save-minutes", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=0)
