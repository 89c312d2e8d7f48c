"""The numbers the eval command prints, as plain functions of classifier outputs and pixels.

- attribute accuracy: the clip's class per attribute is the argmax of its per-frame log-softmax
  averaged over all frames; accuracy = share of clips where that equals the prompt's value. The
  subject's answer may be "none" (no subject seen), which is always wrong: prompts name one.
- Fréchet distance: between Gaussians fitted to clip features (the classifier's penultimate
  per-frame features, averaged over the clip) of two sets of clips, as FID/FVD do.
- subject persistence: share of frames whose per-frame subject prediction is the prompted subject
  (a frame read as another subject, or as "none": scenery only, counts as a miss).
- flicker: mean absolute temporal second difference of luma, |Y[t+1] - 2 Y[t] + Y[t-1]|, in 8-bit
  levels (0-255), averaged over pixels and frames. A still clip scores 0, steady motion little (its
  first difference is large but nearly constant), frame-to-frame jitter and popping a lot. Reported
  beside the same measure on rendered clips, whose motion sets the floor, and separately at chunk
  seams (the second differences that straddle the boundary between two generated chunks).
"""
from __future__ import annotations

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) for feature sets [N, D]. With A and
    B the centred sets over sqrt(N - 1), Sa = A'A and Sb = B'B, and the trace of the square root is
    the sum of the singular values of A B' ([Na, Nb]): exact for the rank-deficient covariances that
    fewer clips than feature dimensions give, and cheap enough to recompute for every bootstrap
    draw (measure/spread.py)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.ndim == b.ndim == 2 and a.shape[1] == b.shape[1] and min(len(a), len(b)) >= 2, (a.shape, b.shape)
    ca = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    cb = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    tr_sqrt = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    d = ((a.mean(0) - b.mean(0)) ** 2).sum() + (ca**2).sum() + (cb**2).sum() - 2 * tr_sqrt
    return float(max(d, 0.0))


def flicker_per_frame(video: torch.Tensor) -> torch.Tensor:
    """video [B, T, 3, H, W] in [0, 1] -> [B, T - 2]: entry t - 1 is the mean over pixels of
    |Y[t+1] - 2 Y[t] + Y[t-1]| in 8-bit levels, for t = 1 .. T-2."""
    y = (video.float() * torch.tensor(LUMA, device=video.device).view(1, 1, 3, 1, 1)).sum(2) * 255
    return (y[:, 2:] - 2 * y[:, 1:-1] + y[:, :-2]).abs().mean((2, 3))


def flicker_summary(per_frame: np.ndarray, chunk: int) -> dict:
    """per_frame [N, T - 2] from flicker_per_frame -> mean over all frames, at chunk seams (centre
    frame t with t % chunk in {chunk - 1, 0}: the stencil spans a chunk boundary) and inside chunks."""
    per_frame = np.asarray(per_frame, np.float64)
    t = np.arange(1, per_frame.shape[1] + 1)
    seam = (t % chunk == 0) | (t % chunk == chunk - 1)
    out = {"mean": float(per_frame.mean()), "inside_chunks": float(per_frame[:, ~seam].mean())}
    out["at_seams"] = float(per_frame[:, seam].mean()) if seam.any() else None
    return out


def persistence(subject_frames: np.ndarray, target: np.ndarray, fps: int, full: float = 0.95) -> dict:
    """subject_frames [N, T] per-frame subject class, target [N] the prompted subject's class.
    Returns the share of frames with the prompted subject, that share per second of the clip
    (over all clips), the last second's, and the share of clips with it in >= `full` of frames."""
    hit = np.asarray(subject_frames) == np.asarray(target)[:, None]
    seconds = hit.shape[1] // fps
    per_second = hit[:, :seconds * fps].reshape(len(hit), seconds, fps).mean((0, 2)) if seconds else np.zeros(0)
    return {"frames": float(hit.mean()), "per_second": [round(float(x), 4) for x in per_second],
            "last_second": float(per_second[-1]) if seconds else None,
            "clips_at_least": full, "clips": float((hit.mean(1) >= full).mean())}


def clip_class(logits: torch.Tensor) -> int:
    """Per-frame logits [T, classes] -> the clip's class: argmax of the mean log-probability."""
    return int(torch.log_softmax(logits.float(), -1).mean(0).argmax())


def judged_right(pred: list[dict], target: list[dict], attrs, scored: list | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """[clips, attributes] booleans: whether the predicted class is the target's, and whether the
    clip is judged on that attribute (`scored[i]` names clip i's; without it, all are)."""
    right = np.array([[p[a] == t[a] for a in attrs] for p, t in zip(pred, target)], dtype=bool)
    judged = np.ones_like(right) if scored is None else np.array([[a in s for a in attrs] for s in scored], dtype=bool)
    return right.reshape(len(pred), len(attrs)), judged.reshape(len(pred), len(attrs))


def accuracy(pred: list[dict], target: list[dict], attrs, scored: list | None = None) -> dict:
    """Share of clips whose predicted class equals the target, per attribute; "overall" is the
    mean over (clip, attribute) pairs and "all_correct" the share of clips with every one right.
    `scored[i]`, where given, names the attributes clip i is judged on (the others are not visible
    in it); an attribute no clip is judged on gets None."""
    if not pred:
        return {}
    right, judged = judged_right(pred, target, attrs, scored)
    out = {a: float(right[judged[:, i], i].mean()) if judged[:, i].any() else None
           for i, a in enumerate(attrs)}
    out["overall"] = float(right[judged].mean())
    out["all_correct"] = float((right | ~judged).all(1).mean())
    return out
