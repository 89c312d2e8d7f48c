"""The motion track: a branch of the classifier's motion head that follows the subject over time.

The motion head reads whole-frame pools through temporal convs that see 9 frames, and step 2005
mixes up what differs only in the subject's path and pace: a ball's bounce with its roll and its
throw, a cat's walk with its run (evaluate.py's per-prompt predictions). Both show in where the
subject is from frame to frame and how fast its look changes, over about a second. The track finds
the subject as the colour track does (an attention over the 2-D features' spatial map), and per
frame takes the features pooled there together with the attention's centre and spread on screen;
dilated temporal convs then read their course over time. Its last layer starts at zero, so a
classifier grown by it reads as before, and it is trained with the rest frozen, from cached maps
(train_track.py --track motion).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .colour_track import attend


class MotionTrack(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int], classes: int, dilations: list, squeeze: int = 32,
                 dim: int = 64):
        super().__init__()
        from .classifier import TemporalBlock  # the classifier module builds this one

        self.squeeze = nn.Conv2d(channels, squeeze, 1)
        self.attention = nn.Conv2d(channels, 1, 1)
        h, w = size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()]), persistent=False)  # [2, h*w]
        self.inp = nn.Linear(squeeze + 4, dim)
        self.temporal = nn.Sequential(*[TemporalBlock(dim, dilation=d) for d in dilations])
        self.out = nn.Linear(dim, classes)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def attended(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """maps [B, T, C, h, w] -> per frame [B*T, ...]: the squeezed features pooled by the
        attention, and the attention's centre and spread (x, y, from -1 at the left or top edge's
        position to 1 at the right or bottom's)."""
        s, where = attend(maps, self.squeeze, self.attention)
        centre = (where * self.grid).sum(-1)
        spread = (where * (self.grid - centre[:, :, None]).square()).sum(-1).clamp(min=1e-6).sqrt()
        return (s * where).sum(-1), centre, spread

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """maps [B, T, C, h, w] (the 2-D part's output) -> motion logits to add, [B, T, classes]."""
        B, T = maps.shape[:2]
        h = self.inp(torch.cat(self.attended(maps), dim=1)).view(B, T, -1)
        return self.out(self.temporal(h.transpose(1, 2)).transpose(1, 2))
