"""The camera track: a long-reach branch of the classifier's camera head.

What tells a pan from a tracking shot in this world is where the subject drifts on screen: about
0.44 px/frame in a pan against 0.00-0.27 in a follow (python -m world.camera_report), so 4 px over
the 9 frames the classifier's temporal convs see, but 27 px over 61. A 15 s zoom is as slow. The
track reads the 2-D features' spatial map (where things are, which every whole-frame pool loses),
squeezes it per position, and runs dilated temporal convs over it; its logits are added to the
camera head's. Its last layer starts at zero, so a classifier grown by it reads as before, and it
can be trained with the rest of the classifier frozen (train_track.py --track camera), from cached maps.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class CameraTrack(nn.Module):
    def __init__(self, channels: int, positions: int, classes: int, dilations: list, squeeze: int = 16,
                 dim: int = 64):
        super().__init__()
        from .classifier import TemporalBlock  # the classifier module builds this one

        self.squeeze = nn.Conv2d(channels, squeeze, 1)
        self.inp = nn.Linear(squeeze * positions, dim)
        self.temporal = nn.Sequential(*[TemporalBlock(dim, dilation=d) for d in dilations])
        self.out = nn.Linear(dim, classes)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """maps [B, T, C, h, w] (the 2-D part's output) -> camera logits to add, [B, T, classes]."""
        B, T = maps.shape[:2]
        s = torch.nn.functional.silu(self.squeeze(maps.flatten(0, 1).float()))
        h = self.inp(s.flatten(1)).view(B, T, -1)
        return self.out(self.temporal(h.transpose(1, 2)).transpose(1, 2))


def reach(dilations: list, kernel: int = 5) -> int:
    """Frames one output sees: 1 + (kernel - 1) * sum(dilations)."""
    return 1 + (kernel - 1) * sum(dilations)
