"""The readings of an eval that has not finished yet, kept beside its result so that the next run
goes on from them. A 40-prompt, 15 s card eval takes hours on a 2-core CPU, longer than one
session; without this file everything read before a session ended was lost."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def partial_path(result: Path) -> Path:
    return result.with_name(result.name + ".partial")


class PartialReadings:
    """Per-clip readings (evaluate.read_clips) in prompt order, for one set of settings. Readings
    made under other settings (another checkpoint, step count, guidance, classifier, prompt list)
    are never mixed in: the file is started over, and the caller says so."""

    def __init__(self, path: Path, settings: dict):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as it reads back
        self.clips: list[dict] = []
        self.prompts: list[str] = []
        self.discarded: str | None = None
        if not self.path.exists():
            return
        try:
            saved = json.loads(self.path.read_text())
            same = saved["settings"] == self.settings
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.discarded = f"unreadable ({e})"
            return
        if not same:
            self.discarded = "made with other settings"
            return
        self.prompts = [c["prompt"] for c in saved["clips"]]
        self.clips = [{"pred": c["pred"], "subject_frames": np.array(c["subject_frames"], dtype=np.int64),
                       "feature": np.array(c["feature"], dtype=np.float32),
                       "flicker": np.array(c["flicker"], dtype=np.float32)} for c in saved["clips"]]

    def done_for(self, prompts: list[str]) -> int:
        """How many leading prompts already have readings; readings of other prompts are dropped."""
        if self.prompts != prompts[:len(self.prompts)]:
            self.discarded = self.discarded or "of another prompt list"
            self.clips, self.prompts = [], []
        return len(self.clips)

    def add(self, clips: list[dict], prompts: list[str]) -> None:
        """Keeps a batch's readings; the file is replaced whole, so an interrupted write leaves the
        previous one."""
        self.clips += clips
        self.prompts += prompts
        rows = [{"prompt": p, "pred": {a: int(v) for a, v in c["pred"].items()},
                 "subject_frames": c["subject_frames"].tolist(), "feature": c["feature"].tolist(),
                 "flicker": c["flicker"].tolist()} for p, c in zip(self.prompts, self.clips)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"settings": self.settings, "clips": rows}))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
