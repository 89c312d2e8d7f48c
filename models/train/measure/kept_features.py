"""The clip features of an eval, kept beside its result JSON (`eval.json` -> `eval.features.npz`).

The result keeps per-prompt classes, so accuracies can be judged again and compared clip by clip;
the Fréchet distance needs the classifier's clip features, of the generated clips and of the fresh
renders. Kept, they let measure.paired give the difference between two evals' distances an error
over prompts, which is much smaller than either distance's own (both carry the same small-sample
bias and the same prompts). Evals made before session 37 have none.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def features_path(result: Path) -> Path:
    result = Path(result)
    return result.with_name(result.stem + ".features.npz")


def save_features(result: Path, generated: np.ndarray, rendered: np.ndarray, prompts: list[str]) -> Path:
    path = features_path(result)
    with path.open("wb") as f:  # np.savez would append ".npz" to a name without it; this one has it
        np.savez_compressed(f, generated=np.asarray(generated, np.float32), rendered=np.asarray(rendered, np.float32),
                            prompts=np.array(prompts))
    return path


def load_features(result: Path, prompts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(generated, rendered) features [N, D] of the result's clips, or None where none were kept.
    Features of another prompt list (a result overwritten without them) are an error, not None."""
    path = features_path(result)
    if not path.exists():
        return None
    with np.load(path) as kept:
        if kept["prompts"].tolist() != list(prompts):
            raise ValueError(f"{path} holds the features of another prompt list than {result}'s")
        return kept["generated"].astype(np.float64), kept["rendered"].astype(np.float64)
