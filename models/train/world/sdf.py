"""Signed-distance primitives and compositing on batched frame tensors [N, H, W].

Every primitive takes coordinates as tensors and parameters as floats or per-frame tensors
already shaped [N, 1, 1], so one call draws one shape on every frame of a batch.
"""
from __future__ import annotations

import torch

M32 = 0xFFFFFFFF


def col(c, like: torch.Tensor) -> torch.Tensor:
    """A colour as [1, 3, 1, 1] (tuple) or [N, 3, 1, 1] (per-frame [N, 3] tensor)."""
    if isinstance(c, torch.Tensor):
        if c.dim() == 2:
            return c[:, :, None, None]
        return c
    return torch.tensor(c, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def circle(x, y, cx, cy, r):
    return torch.sqrt((x - cx) ** 2 + (y - cy) ** 2 + 1e-12) - r


def ellipse(x, y, cx, cy, a, b):
    """Approximate (scaled-circle) distance; exact on the axes, good enough for anti-aliasing."""
    k = torch.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + 1e-12)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (k - 1.0) * torch.minimum(torch.as_tensor(a, dtype=x.dtype, device=x.device), torch.as_tensor(b, dtype=x.dtype, device=x.device))
    return (k - 1.0) * min(a, b)


def segment(x, y, ax, ay, bx, by, r):
    pax, pay = x - ax, y - ay
    bax, bay = bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-12)).clamp(0.0, 1.0)
    return torch.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2 + 1e-12) - r


def box(x, y, cx, cy, hx, hy, r=0.0):
    qx = (x - cx).abs() - hx + r
    qy = (y - cy).abs() - hy + r
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2 + 1e-12)
    return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx)) - r


def polygon(x, y, pts):
    """Convex polygon as the intersection of half-planes: exact on edges, slightly rounded
    outside corners, which only matters for the anti-aliasing band. Either winding works."""
    n = len(pts)
    # orientation from the shoelace sum; per frame when vertices are tensors
    area = 0.0
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        area = area + (x0 * y1 - x1 * y0)
    s = torch.sign(torch.as_tensor(area, dtype=x.dtype, device=x.device)) if not isinstance(area, torch.Tensor) else torch.sign(area)
    d = None
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        ex, ey = x1 - x0, y1 - y0
        ln = (ex * ex + ey * ey) ** 0.5 if not isinstance(ex, torch.Tensor) else torch.sqrt(ex * ex + ey * ey + 1e-12)
        di = s * ((x - x0) * ey - (y - y0) * ex) / ln
        d = di if d is None else torch.maximum(d, di)
    return d


def rotate(x, y, cx, cy, ang):
    """Coordinates in a frame rotated by `ang` about (cx, cy): draw a shape upright in (x', y')
    and it appears rotated by +ang."""
    c, s = torch.cos(ang), torch.sin(ang)
    dx, dy = x - cx, y - cy
    return cx + c * dx + s * dy, cy - s * dx + c * dy


def cover(d, pix):
    """Anti-aliased coverage of the inside (d < 0) with a one-pixel ramp."""
    return (0.5 - d / pix).clamp(0.0, 1.0)


def hash3(ix: torch.Tensor, iy: torch.Tensor, seed) -> torch.Tensor:
    """Integer hash -> [0, 1). Pure int64 arithmetic masked to 32 bits, so it is identical on
    CPU and GPU (a sin-based hash is not)."""
    h = (ix * 374761393 + iy * 668265263 + seed * 2246822519) & M32
    h = ((h ^ (h >> 13)) * 1274126177) & M32
    h = h ^ (h >> 16)
    h = ((h ^ (h >> 7)) * 2654435761) & M32
    h = h ^ (h >> 15)
    return (h & 0xFFFFFF).to(torch.float32) / float(1 << 24)


def cells(x, y, cw, ch, seed, k: int = 3):
    """Scatter one point per cell of a cw x ch grid: returns the local offset from that point and
    `k` random numbers per cell. Points stay in the middle 60 % of their cell so shapes up to
    0.2 cells wide never need the neighbour cells."""
    gx = torch.floor(x / cw)
    gy = torch.floor(y / ch)
    ix, iy = gx.to(torch.int64), gy.to(torch.int64)
    rs = [hash3(ix, iy, seed + 1013 * j) for j in range(k + 2)]
    px = (gx + 0.2 + 0.6 * rs[0]) * cw
    py = (gy + 0.2 + 0.6 * rs[1]) * ch
    return x - px, y - py, rs[2:]


class Canvas:
    """Albedo, emission and depth for a batch of frames.

    Lighting (time of day) multiplies albedo only; emissive things (sky, stars, windows at night,
    flames, headlights) are added after, and anything opaque painted over them hides them.
    Depth (0 near .. 1 sky) drives fog.
    """

    def __init__(self, n, h, w, device):
        self.img = torch.zeros(n, 3, h, w, device=device)
        self.emit = torch.zeros(n, 3, h, w, device=device)
        self.depth = torch.ones(n, 1, h, w, device=device)

    def paint(self, a, c, depth: float, emissive: bool = False):
        a = a.unsqueeze(1) if a.dim() == 3 else a
        c = col(c, self.img)
        if emissive:
            self.emit = self.emit + (c - self.emit) * a
            self.img = self.img * (1 - a)
        else:
            self.img = self.img + (c - self.img) * a
            self.emit = self.emit * (1 - a)
        self.depth = self.depth + (depth - self.depth) * a

    def glow(self, a, c):
        """Additive light that hides nothing (a halo, a light beam)."""
        a = a.unsqueeze(1) if a.dim() == 3 else a
        self.emit = self.emit + col(c, self.img) * a
