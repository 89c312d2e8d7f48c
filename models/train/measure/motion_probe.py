"""A parameter-free reading of global motion between consecutive frames, for the classifier's
camera head: how well the previous frame, shifted by each of a few pixel offsets or scaled by a few
zoom factors, matches the current one, over the whole frame, its centre and its border.

A pan moves the whole frame; a tracking shot moves the border while its subject holds the centre; a
zoom matches a scaled frame, not a shifted one; a locked-off camera matches unshifted. A small conv
net fed frame differences does not learn this quickly (`python -m measure.camera_reach`), while
block matching states it directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFTS = [(dx, dy) for dy in range(-2, 3) for dx in range(-3, 4)]  # pixels at half the input size
ZOOMS = (0.96, 0.98, 1.02, 1.04)
REGIONS = 3  # whole, centre, border
MARGIN = 4  # > the largest shift or zoom displacement at the border, so no wrapped pixel counts


def probe_dim() -> int:
    return REGIONS * (len(SHIFTS) + len(ZOOMS) + 1)


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H/2, W/2]."""
    y = 0.299 * frames[:, 0:1] + 0.587 * frames[:, 1:2] + 0.114 * frames[:, 2:3]
    return F.avg_pool2d(y, 2)


def _region_means(err: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """err [N, 1, h, w], centre mask [h, w] -> [N, 3] means over whole, centre, border."""
    whole = err.mean((1, 2, 3))
    c = (err * centre).sum((1, 2, 3)) / centre.sum()
    b = (err * (1 - centre)).sum((1, 2, 3)) / (1 - centre).sum()
    return torch.stack([whole, c, b], dim=1)


@torch.no_grad()
def motion_probe(video: torch.Tensor) -> torch.Tensor:
    """video [B, T, 3, H, W] (any value range) -> [B, T, probe_dim()]: per frame and region, the
    match error of each candidate move relative to their mean, and the log of that mean (how much
    changed at all). Frame 0 is compared with itself."""
    B, T = video.shape[:2]
    y = _luma(video.flatten(0, 1).float())
    y = y.view(B, T, *y.shape[1:])
    cur = y.flatten(0, 1)
    prev = torch.cat([y[:, :1], y[:, :-1]], dim=1).flatten(0, 1)
    h, w = cur.shape[-2:]
    m = MARGIN
    core = cur[..., m:h - m, m:w - m]
    ch, cw = core.shape[-2:]
    centre = torch.zeros(ch, cw, device=video.device)
    centre[ch // 4: ch - ch // 4, cw // 4: cw - cw // 4] = 1
    errs = []
    for dx, dy in SHIFTS:
        moved = prev[..., m + dy:h - m + dy, m + dx:w - m + dx]
        errs.append(_region_means((core - moved).abs(), centre))
    for s in ZOOMS:
        theta = torch.tensor([[1 / s, 0, 0], [0, 1 / s, 0]], device=video.device, dtype=cur.dtype)
        grid = F.affine_grid(theta.expand(prev.shape[0], 2, 3), list(prev.shape), align_corners=False)
        scaled = F.grid_sample(prev, grid, mode="bilinear", padding_mode="border", align_corners=False)
        errs.append(_region_means((core - scaled[..., m:h - m, m:w - m]).abs(), centre))
    err = torch.stack(errs, dim=2)  # [N, 3, K]
    mean = err.mean(2, keepdim=True)
    out = torch.cat([err / (mean + 1e-4), torch.log(mean + 1e-4)], dim=2)
    return out.view(B, T, -1)
