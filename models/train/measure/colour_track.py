"""The colour track: a branch of the classifier's colour head that looks where the subject is.

The colour head reads the whole-frame mean and max of the 2-D features, so a small subject's colour
reaches it mixed with the scene's, and step 2005 names the colour of only about 0.69 of held-out
frames (train_track.py --track colour prints it). The 2-D part's spatial map still keeps what is
where: the track weighs its positions by a learnt attention (the subject's place), pools the
squeezed features there and beside that takes their max, and adds the logits it makes of them to
the colour head's. As the camera track does, it starts at zero, so a classifier grown by it reads
as before, and it is trained with the rest frozen, from cached maps. It needs no temporal reach: a
shot's colour is the same in every frame, and the eval already reads a clip as a whole.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ColourTrack(nn.Module):
    def __init__(self, channels: int, classes: int, squeeze: int = 32, dim: int = 64):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, squeeze, 1)
        self.attention = nn.Conv2d(channels, 1, 1)
        self.hidden = nn.Linear(2 * squeeze, dim)
        self.out = nn.Linear(dim, classes)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """maps [B, T, C, h, w] (the 2-D part's output) -> colour logits to add, [B, T, classes]."""
        B, T = maps.shape[:2]
        s, where = attend(maps, self.squeeze, self.attention)
        pooled = torch.cat([(s * where).sum(-1), s.amax(-1)], dim=1)
        return self.out(F.silu(self.hidden(pooled))).view(B, T, -1)


def attend(maps: torch.Tensor, squeeze: nn.Conv2d, attention: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """maps [B, T, C, h, w] -> the squeezed features [B*T, squeeze, h*w] and the attention's weights
    over the positions [B*T, 1, h*w], which sum to 1 per frame."""
    m = maps.flatten(0, 1).float()
    return F.silu(squeeze(m)).flatten(2), attention(m).flatten(2).softmax(-1)
