"""The batched renderer: per-frame parameters (from sim.py) -> RGB frames [N, 3, H, W] in [0, 1].

Everything is a pure function of per-frame tensors and integer hashes, so it runs the same on CPU
and GPU and a frame can be re-rendered from its shot seed alone. Frames are grouped by (scene,
subject) so each group runs only the code it needs; time, weather and style are per-frame weights
inside a group.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import sdf
from .sdf import Canvas, box, cells, circle, cover, ellipse, polygon, rotate, segment
from .sim import BOARD_X, BOARD_Y0, BOARD_Y1, RIM_R, RIM_Y, VIEW_W, ground_base_y
from .spec import COLOURS, SCENES, STYLES, SUBJECTS, TIMES, WEATHERS

# Sky: (top, horizon) per time of day; light multiplies albedo; fog colour per time.
SKY = {
    "day": ((0.33, 0.58, 0.95), (0.74, 0.87, 1.0)),
    "sunset": ((0.22, 0.18, 0.45), (1.0, 0.55, 0.25)),
    "night": ((0.01, 0.02, 0.08), (0.07, 0.09, 0.22)),
}
LIGHT = {"day": (1.0, 1.0, 1.0), "sunset": (1.0, 0.74, 0.58), "night": (0.26, 0.31, 0.50)}
FOG = {"day": (0.82, 0.84, 0.87), "sunset": (0.86, 0.68, 0.58), "night": (0.16, 0.18, 0.26)}
WEATHER_DIM = {"clear": 1.0, "snow": 0.92, "rain": 0.75, "fog": 0.9}
FLOWER_COLOURS = [(0.95, 0.2, 0.25), (0.98, 0.85, 0.2), (0.97, 0.55, 0.75), (0.98, 0.98, 0.98), (0.6, 0.35, 0.85)]


class Group:
    """Coordinates and per-frame parameters for frames sharing a scene and a subject."""

    def __init__(self, p: dict, H: int, W: int, device):
        self.p = p
        self.n = n = p["x"].shape[0]
        self.H, self.W = H, W
        self.dev = device
        b = self.b
        ppu = W / VIEW_W * p["zoom"]  # pixels per world unit, [n]
        v, u = torch.meshgrid(torch.arange(H, device=device, dtype=torch.float32) + 0.5,
                              torch.arange(W, device=device, dtype=torch.float32) + 0.5, indexing="ij")
        u = u.expand(n, H, W)
        v = v.expand(n, H, W)
        # Van Gogh: swirl the sampling positions themselves, so every edge in the scene wobbles
        # like a brush stroke (a post-filter could only smear it).
        amp = b(p["warp"])
        if float(p["warp"].abs().max()) > 0:
            tt = b(p["t"])
            u = u + amp * torch.sin(v * 0.11 + 1.7 * torch.sin(u * 0.05) + tt * 0.8)
            v = v + amp * torch.cos(u * 0.09 + 1.3 * torch.sin(v * 0.07) - tt * 0.6)
        self.u, self.v = u, v
        self.pix = 1.0 / b(ppu)
        self.U = (u - W / 2) * self.pix
        self.V = -(v - H / 2) * self.pix
        self.cam_x, self.cam_y = b(p["cam_x"]), b(p["cam_y"])
        self.X = self.cam_x + self.U
        self.Y = self.cam_y + self.V
        self.t = b(p["t"])
        self.seed = b(p["seed_i"])
        self.tw = p["time_w"]  # [n, 3] one-hot day/sunset/night
        self.night = b(self.tw[:, 2])
        self.ww = p["weather_w"]  # [n, 4]
        self.base_y = b(p["cam_y0"])

    def b(self, x):
        return x.view(-1, 1, 1)

    def r(self, k):
        """The k-th random number of each frame's shot, [n, 1, 1]."""
        return self.b(self.p["rand"][:, k])

    def layer(self, par):
        """Coordinates of a background layer with parallax `par` (0 = at infinity, 1 = ground)."""
        xp = par * self.cam_x + self.U
        yp = self.Y - (1 - par) * (self.cam_y - self.base_y)
        return xp, yp

    def mix_time(self, table):
        t = torch.tensor([table[k] for k in TIMES], dtype=torch.float32, device=self.dev)
        return self.tw @ t  # [n, 3]

    def row(self, xp, cw, salt, k=3):
        """One object per `cw`-wide column: local x offset and k random numbers per column."""
        dx, _, rs = cells(xp, torch.zeros_like(xp), cw, 1e6, self.seed + salt, k)
        return dx, rs


def _sky(g: Group, cv: Canvas, scene: str):
    top = g.mix_time({k: v[0] for k, v in SKY.items()})
    hor = g.mix_time({k: v[1] for k, v in SKY.items()})
    overcast = g.b(g.ww[:, 1:].sum(1)) * 0.65  # any weather greys the sky
    grey = g.mix_time(FOG)
    if scene == "underwater":
        top = torch.tensor([0.15, 0.62, 0.8], device=g.dev).expand_as(top) * g.mix_time(LIGHT)
        hor = torch.tensor([0.02, 0.22, 0.42], device=g.dev).expand_as(hor) * g.mix_time(LIGHT)
        k = ((g.Y - 0.0) / 4.5).clamp(0, 1).unsqueeze(1)
        sky = sdf.col(hor, cv.img) + (sdf.col(top, cv.img) - sdf.col(hor, cv.img)) * k
        rays = torch.sin((g.U * 0.9 + g.V * 0.35) * 3.0 + g.t * 0.7) * torch.sin((g.U * 0.5 - g.V * 0.2) * 5.0 - g.t * 0.4)
        sky = sky + 0.12 * (rays.clamp(min=0) * k.squeeze(1)).unsqueeze(1) * (1 - g.night.unsqueeze(1) * 0.7)
        cv.paint(torch.ones_like(g.X), sky, 1.0, emissive=True)
        return
    k = ((g.Y - 0.0) / 6.0).clamp(0, 1).sqrt().unsqueeze(1)
    sky = sdf.col(hor, cv.img) + (sdf.col(top, cv.img) - sdf.col(hor, cv.img)) * k
    sky = sky + (sdf.col(grey, cv.img) * 0.9 - sky) * overcast.unsqueeze(1)
    cv.paint(torch.ones_like(g.X), sky, 1.0, emissive=True)
    clear = 1.0 - overcast / 0.65
    # stars: angular coordinates, so they stay put when the camera pans (they are at infinity)
    dx, dy, rs = cells(g.U + 0.05 * g.cam_x, g.V + 0.05 * g.cam_y, 0.22, 0.22, g.seed + 7, 2)
    star = sdf.cover(torch.sqrt(dx * dx + dy * dy) - 0.011 - 0.01 * rs[0], g.pix) * (rs[1] < 0.35)
    cv.glow(star * g.night * clear, (0.9, 0.9, 1.0))
    side = torch.where(g.r(0) < 0.5, -1.0, 1.0)
    horizon_v = -g.cam_y  # where the ground line would be, in angular coords
    day, sunset = g.b(g.tw[:, 0]), g.b(g.tw[:, 1])
    sx = side * (1.6 + 1.2 * g.r(1))
    sy = horizon_v + 3.2 * day + 0.5 * sunset + 2.6 * g.night
    rad = 0.3 + 0.22 * sunset - 0.05 * g.night
    d = circle(g.U, g.V, sx, sy, rad)
    moon_cut = circle(g.U, g.V, sx + 0.12, sy + 0.08, rad * 0.95)
    d = torch.where(g.night > 0.5, torch.maximum(d, -moon_cut), d)
    sun_col = g.mix_time({"day": (1.0, 0.96, 0.75), "sunset": (1.0, 0.62, 0.3), "night": (0.95, 0.93, 0.8)})
    cv.paint(cover(d, g.pix) * clear, sun_col, 1.0, emissive=True)
    halo = torch.exp(-(circle(g.U, g.V, sx, sy, rad).clamp(min=0)) * 2.5) * 0.25 * clear * (1 - g.night * 0.6)
    cv.glow(halo, sun_col)
    # clouds: a few soft blobs on a slow far layer
    xp, yp = g.layer(0.1)
    dx, rs = g.row(xp, 3.0, 31, 3)
    cy = 2.9 + 0.8 * rs[0]
    dcl = torch.minimum(torch.minimum(ellipse(dx, yp, 0.0, cy, 0.7, 0.22), ellipse(dx, yp, 0.35, cy + 0.12, 0.4, 0.22)),
                        ellipse(dx, yp, -0.3, cy + 0.08, 0.35, 0.18))
    amount = (rs[1] < 0.45 + 0.5 * overcast).float()
    ccol = g.mix_time({"day": (1.0, 1.0, 1.0), "sunset": (1.0, 0.75, 0.65), "night": (0.25, 0.27, 0.38)})
    cv.paint(cover(dcl, g.pix * 4) * 0.85 * amount, ccol, 0.95, emissive=True)


def _hills(g, cv, par, base, amp, freq, colour, depth, salt, cap=None, flat=False):
    xp, yp = g.layer(par)
    ph = [g.r(salt + i) * 6.28 for i in range(3)]
    h = base + amp * (torch.sin(xp * freq + ph[0]) + 0.5 * torch.sin(xp * freq * 2.3 + ph[1]) + 0.25 * torch.sin(xp * freq * 5.1 + ph[2]))
    if flat:  # mesas: quantise the height into steps
        h = base + amp * torch.round((h - base) / amp * 1.5) / 1.5
    d = yp - h
    cv.paint(cover(d, g.pix), colour, depth)
    if cap is not None:
        cv.paint(cover(d, g.pix) * cover(h - 0.45 * amp - 0.25 - yp + 0.05 * torch.sin(xp * 9), g.pix), cap, depth)
    return xp, yp


def _ground(g, cv, top, bottom, depth=0.3):
    k = (-g.Y / 3.0).clamp(0, 1).unsqueeze(1)
    c = sdf.col(top, cv.img) + (sdf.col(bottom, cv.img) - sdf.col(top, cv.img)) * k
    a = cover(g.Y, g.pix)
    cv.paint(a, c, depth)
    return a


def scene_garden(g, cv):
    _hills(g, cv, 0.2, 1.0, 0.35, 0.35, (0.45, 0.68, 0.42), 0.85, 2)
    xp, yp = g.layer(0.55)
    cv.paint(cover(yp - 0.55 - 0.08 * torch.sin(xp * 4 + g.r(5) * 6), g.pix), (0.16, 0.45, 0.2), 0.6)  # hedge
    dx, rs = g.row(xp, 2.6, 41)
    on = (rs[0] < 0.75).float()
    trunk = segment(dx, yp, 0.0, 0.0, 0.05, 1.5, 0.09)
    cv.paint(cover(trunk, g.pix) * on, (0.42, 0.28, 0.2), 0.55)
    can = torch.minimum(torch.minimum(circle(dx, yp, 0.0, 1.9, 0.6), circle(dx, yp, -0.45, 1.6, 0.42)), circle(dx, yp, 0.45, 1.65, 0.45))
    cv.paint(cover(can, g.pix) * on, (0.97, 0.72, 0.82), 0.55)  # cherry blossom
    pdx, pdy, prs = cells(dx, yp, 0.18, 0.18, g.seed + 43, 1)
    petals = cover(torch.sqrt(pdx**2 + pdy**2) - 0.035, g.pix) * cover(can, g.pix) * on * (prs[0] < 0.5)
    cv.paint(petals, (1.0, 0.88, 0.93), 0.55)
    _ground(g, cv, (0.42, 0.74, 0.3), (0.28, 0.56, 0.2))
    _flowers(g, cv)


def _flowers(g, cv):
    dx, dy, rs = cells(g.X, g.Y, 0.3, 0.28, g.seed + 51, 3)
    below = (g.Y < -0.08).float()
    on = (rs[0] < 0.6).float() * below
    stem = segment(dx, dy, 0.0, -0.12, 0.0, 0.0, 0.012)
    cv.paint(cover(stem, g.pix) * on, (0.15, 0.45, 0.15), 0.28)
    idx = (rs[1] * len(FLOWER_COLOURS)).long().clamp(max=len(FLOWER_COLOURS) - 1)
    pal = torch.tensor(FLOWER_COLOURS, device=g.dev)[idx].permute(0, 3, 1, 2)
    cv.paint(cover(circle(dx, dy, 0.0, 0.0, 0.055), g.pix) * on, pal, 0.28)
    cv.paint(cover(circle(dx, dy, 0.0, 0.0, 0.02), g.pix) * on, (1.0, 0.9, 0.3), 0.28)


def scene_park(g, cv):
    _hills(g, cv, 0.2, 1.1, 0.4, 0.3, (0.5, 0.7, 0.5), 0.85, 2)
    xp, yp = g.layer(0.55)
    dx, rs = g.row(xp, 2.2, 61)
    on = (rs[0] < 0.7).float()
    cv.paint(cover(box(dx, yp, 0.0, 0.6, 0.08, 0.6), g.pix) * on, (0.4, 0.27, 0.18), 0.55)
    sz = 0.55 + 0.35 * rs[1]
    can = torch.minimum(circle(dx, yp, 0.0, 1.2 + sz, sz), circle(dx, yp, 0.3, 1.0 + sz * 0.7, sz * 0.7))
    cv.paint(cover(can, g.pix) * on, (0.2, 0.5, 0.22), 0.55)
    a = _ground(g, cv, (0.45, 0.75, 0.35), (0.32, 0.6, 0.25))
    stripe = (torch.sin(g.X * 1.2) > 0).float() * a
    cv.paint(stripe * 0.25, (0.55, 0.82, 0.4), 0.3)


def scene_snow_slope(g, cv, facing):
    _hills(g, cv, 0.12, 1.9, 0.9, 0.28, (0.5, 0.56, 0.7), 0.9, 2, cap=(0.95, 0.96, 1.0))
    xp, yp = g.layer(0.5)
    dx, rs = g.row(xp, 1.1, 71)
    on = (rs[0] < 0.8).float()
    hgt = 1.0 + 0.8 * rs[1]
    tree = None
    for k in range(3):
        y0 = 0.25 + k * hgt * 0.28
        w = 0.5 * hgt * (1 - 0.25 * k) * 0.8
        tri = polygon(dx, yp, [(-w, y0), (w, y0), (0.0 * w, y0 + hgt * 0.45)])
        tree = tri if tree is None else torch.minimum(tree, tri)
    cv.paint(cover(box(dx, yp, 0.0, 0.15, 0.06, 0.15), g.pix) * on, (0.35, 0.25, 0.18), 0.5)
    cv.paint(cover(tree, g.pix) * on, (0.1, 0.32, 0.2), 0.5)
    snowtip = cover(tree, g.pix) * on * (torch.sin(yp * 18 + dx * 3) > 0.75).float()
    cv.paint(snowtip, (0.92, 0.95, 1.0), 0.5)
    a = _ground(g, cv, (0.95, 0.97, 1.0), (0.78, 0.84, 0.95))
    track = cover((g.Y + 0.35 + 0.05 * torch.sin(g.X * 0.7)).abs() - 0.01, g.pix) * a
    cv.paint(track * 0.5, (0.7, 0.75, 0.88), 0.3)
    r0, spacing, length, height = (g.b(g.p["ramp"][:, i]) for i in range(4))
    if float(g.p["ramp"][:, 3].max()) > 0:
        xr = g.X * facing
        uu = torch.remainder(xr - r0, spacing.clamp(min=1e-3))
        before = spacing - uu
        h = torch.where(before < length, height * (1 - before / length), torch.zeros_like(before))
        dr = g.Y - h
        cv.paint(cover(dr, g.pix) * (g.Y > -0.02), (0.86, 0.9, 0.99), 0.3)
        edge = cover(dr.abs() - 0.02, g.pix) * (h > 0.01)
        cv.paint(edge, (0.35, 0.45, 0.7), 0.3)


def scene_ice_rink(g, cv):
    xp, yp = g.layer(0.2)
    dx, rs = g.row(xp, 1.3, 81)
    bh = 1.2 + 1.8 * rs[0]
    cv.paint(cover(box(dx, yp, 0.0, bh * 0.5, 0.6, bh * 0.5), g.pix), (0.55, 0.5, 0.6), 0.85)
    wdx, wdy, wrs = cells(dx, yp, 0.25, 0.3, g.seed + 83, 1)
    win = cover(box(wdx, wdy, 0.0, 0.0, 0.05, 0.07), g.pix) * cover(box(dx, yp, 0.0, bh * 0.5, 0.5, bh * 0.5 - 0.1), g.pix)
    cv.paint(win * (wrs[0] < 0.6) * g.night, (1.0, 0.85, 0.5), 0.85, emissive=True)
    cv.paint(win * (1 - g.night), (0.62, 0.7, 0.8), 0.85)
    xp, yp = g.layer(0.75)
    boards = cover(box(xp, yp, 0.0, 0.45, 1e4, 0.45), g.pix)
    cv.paint(boards, (0.96, 0.96, 0.97), 0.5)
    cv.paint(boards * cover((yp - 0.62).abs() - 0.05, g.pix), (0.15, 0.3, 0.8), 0.5)
    cv.paint(boards * cover((yp - 0.08).abs() - 0.05, g.pix), (0.85, 0.15, 0.15), 0.5)
    adx, ars = g.row(xp, 2.5, 87)
    ad = cover(box(adx, yp, 0.0, 0.33, 0.5, 0.12), g.pix) * (ars[0] < 0.6)
    adcol = torch.stack([ars[1], 0.3 + 0.0 * ars[1], 1 - ars[1]], 1)
    cv.paint(ad, adcol, 0.5)
    a = _ground(g, cv, (0.86, 0.93, 0.98), (0.72, 0.84, 0.94))
    line = cover((torch.remainder(g.X + 3, 9.0) - 4.5).abs() - 0.06, g.pix) * a
    cv.paint(line, (0.85, 0.25, 0.3), 0.3)
    scratch = (torch.sin(g.X * 7 + torch.sin(g.Y * 13) * 2) > 0.97).float() * a
    cv.paint(scratch * 0.4, (1.0, 1.0, 1.0), 0.3)


def _skyline(g, cv, par, cw, hmin, hmax, colour, depth, salt, lit=0.35):
    xp, yp = g.layer(par)
    dx, rs = g.row(xp, cw, salt, 3)
    bh = hmin + (hmax - hmin) * rs[0]
    bw = cw * (0.3 + 0.15 * rs[1])
    body = box(dx, yp, 0.0, bh * 0.5, bw, bh * 0.5)
    cv.paint(cover(body, g.pix), colour, depth)
    wdx, wdy, wrs = cells(dx, yp, 0.22, 0.3, g.seed + salt + 5, 1)
    inside = cover(box(dx, yp, 0.0, bh * 0.5, bw - 0.08, bh * 0.5 - 0.12), g.pix)
    win = cover(box(wdx, wdy, 0.0, 0.0, 0.05, 0.07), g.pix) * inside
    on = (wrs[0] < lit).float()
    cv.paint(win * on * g.night, (1.0, 0.85, 0.45), depth, emissive=True)
    cv.paint(win * (1 - g.night), (0.55, 0.65, 0.78), depth)


def scene_street(g, cv):
    _skyline(g, cv, 0.2, 1.0, 1.5, 3.8, (0.45, 0.48, 0.58), 0.85, 91)
    _skyline(g, cv, 0.45, 1.6, 0.9, 2.4, (0.62, 0.5, 0.45), 0.65, 95, lit=0.5)
    xp, yp = g.layer(0.8)
    cv.paint(cover(box(xp, yp, 0.0, 0.1, 1e4, 0.1), g.pix), (0.7, 0.7, 0.72), 0.45)  # far kerb
    ldx, _ = g.row(xp, 4.0, 97, 1)
    pole = segment(ldx, yp, 0.0, 0.0, 0.0, 2.2, 0.035)
    cv.paint(cover(pole, g.pix), (0.2, 0.2, 0.22), 0.45)
    lamp = ellipse(ldx, yp, 0.12, 2.2, 0.16, 0.07)
    cv.paint(cover(lamp, g.pix), (0.25, 0.25, 0.25), 0.45)
    cv.paint(cover(lamp, g.pix) * g.night, (1.0, 0.9, 0.6), 0.45, emissive=True)
    beam = torch.exp(-((ldx - 0.12).abs() * 2.5)) * ((2.2 - yp) / 2.2).clamp(0, 1) * (yp > -0.3)
    cv.glow(beam * 0.18 * g.night, (1.0, 0.85, 0.5))
    a = _ground(g, cv, (0.32, 0.32, 0.35), (0.22, 0.22, 0.25))
    dash = cover((g.Y + 0.8).abs() - 0.035, g.pix) * (torch.remainder(g.X, 1.6) < 0.8) * a
    cv.paint(dash, (0.95, 0.95, 0.9), 0.3)


def scene_court(g, cv):
    _skyline(g, cv, 0.25, 1.2, 1.2, 3.5, (0.5, 0.52, 0.6), 0.85, 101)
    xp, yp = g.layer(0.7)
    fence = cover(box(xp, yp, 0.0, 1.3, 1e4, 1.3), g.pix)
    mesh = cover(torch.minimum((torch.remainder(xp + yp, 0.3) - 0.15).abs(), (torch.remainder(xp - yp, 0.3) - 0.15).abs()) - 0.012, g.pix)
    cv.paint(fence * mesh * 0.8, (0.55, 0.58, 0.6), 0.5)
    pdx, _ = g.row(xp, 3.0, 103, 1)
    cv.paint(cover(segment(pdx, yp, 0.0, 0.0, 0.0, 2.6, 0.04), g.pix), (0.4, 0.42, 0.45), 0.5)
    a = _ground(g, cv, (0.84, 0.58, 0.32), (0.68, 0.42, 0.22))
    planks = cover((torch.remainder(g.Y, 0.22) - 0.11).abs() - 0.006, g.pix) * a
    cv.paint(planks * 0.5, (0.55, 0.33, 0.18), 0.3)
    cv.paint(cover((g.Y + 0.45).abs() - 0.03, g.pix) * a, (0.98, 0.98, 0.95), 0.3)
    # hoop (behind the ball); rim and net come after the subject
    cv.paint(cover(segment(g.X, g.Y, BOARD_X + 0.55, 0.0, BOARD_X + 0.55, BOARD_Y1 - 0.1, 0.07), g.pix), (0.3, 0.3, 0.33), 0.4)
    cv.paint(cover(segment(g.X, g.Y, BOARD_X + 0.55, BOARD_Y1 - 0.15, BOARD_X + 0.1, BOARD_Y1 - 0.15, 0.05), g.pix), (0.3, 0.3, 0.33), 0.4)
    cv.paint(cover(box(g.X, g.Y, BOARD_X + 0.05, 0.5 * (BOARD_Y0 + BOARD_Y1), 0.05, 0.5 * (BOARD_Y1 - BOARD_Y0)), g.pix), (0.97, 0.97, 0.97), 0.4)


def court_front(g, cv):
    rim = segment(g.X, g.Y, -RIM_R, RIM_Y, RIM_R + 0.18, RIM_Y, 0.035)
    cv.paint(cover(rim, g.pix), (0.95, 0.35, 0.1), 0.35)
    for k in range(4):
        fx = -RIM_R + 2 * RIM_R * k / 3
        bx = -RIM_R * 0.6 + 1.2 * RIM_R * k / 3
        cv.paint(cover(segment(g.X, g.Y, fx, RIM_Y, bx, RIM_Y - 0.5, 0.012), g.pix) * 0.8, (0.95, 0.95, 0.95), 0.35)
    cv.paint(cover(segment(g.X, g.Y, -RIM_R * 0.8, RIM_Y - 0.25, RIM_R * 0.8, RIM_Y - 0.25, 0.01), g.pix) * 0.7, (0.95, 0.95, 0.95), 0.35)


def scene_beach(g, cv):
    xp, yp = g.layer(0.15)
    sea = cover(yp - 0.55, g.pix)
    cv.paint(sea, (0.12, 0.45, 0.7), 0.8)
    isl = ellipse(xp, yp, 3.0 + g.r(3) * 4, 0.55, 1.5, 0.35)
    cv.paint(cover(torch.maximum(isl, 0.55 - yp), g.pix), (0.3, 0.5, 0.4), 0.85)
    wave = sea * (torch.sin(xp * 3.0 + g.t * 1.5 + torch.sin(yp * 20) * 0.8) > 0.85) * (yp < 0.5)
    cv.paint(wave * 0.6, (0.85, 0.95, 1.0), 0.8)
    xp, yp = g.layer(0.6)
    dx, rs = g.row(xp, 3.2, 111)
    on = (rs[0] < 0.55).float()
    lean = (rs[1] - 0.5) * 0.8
    trunk = torch.minimum(segment(dx, yp, 0.0, 0.0, lean * 0.5, 1.2, 0.08), segment(dx, yp, lean * 0.5, 1.2, lean, 2.3, 0.07))
    cv.paint(cover(trunk, g.pix) * on, (0.55, 0.4, 0.25), 0.55)
    fr = None
    for k in range(5):
        ang = -0.5 + k * 0.95
        ex = lean + 0.8 * math.cos(ang)
        ey = 2.3 + 0.35 * math.sin(ang) - 0.25
        s = segment(dx, yp, lean, 2.3, ex, ey, 0.07)
        fr = s if fr is None else torch.minimum(fr, s)
    cv.paint(cover(fr, g.pix) * on, (0.15, 0.55, 0.25), 0.55)
    a = _ground(g, cv, (0.95, 0.86, 0.64), (0.85, 0.72, 0.5))
    dx, dy, rs = cells(g.X, g.Y, 0.5, 0.4, g.seed + 113, 1)
    shell = cover(ellipse(dx, dy, 0.0, 0.0, 0.04, 0.025), g.pix) * (rs[0] < 0.3) * a
    cv.paint(shell, (0.98, 0.93, 0.88), 0.3)


def scene_underwater(g, cv):
    xp, yp = g.layer(0.25)
    h = 0.9 + 0.6 * torch.sin(xp * 0.6 + g.r(2) * 6) + 0.3 * torch.sin(xp * 1.7 + g.r(3) * 6)
    cv.paint(cover(yp - h, g.pix), (0.08, 0.3, 0.38), 0.8)
    xp, yp = g.layer(0.7)
    dx, rs = g.row(xp, 0.55, 121)
    hw = 0.9 + 1.4 * rs[1]
    sway = 0.12 * torch.sin(yp * 2.5 + g.t * 1.8 + rs[2] * 6) * (yp / hw).clamp(0, 1)
    weed = cover((dx - sway).abs() - 0.045 * (1 - yp / hw).clamp(0.3, 1), g.pix) * (yp < hw) * (yp > -0.1) * (rs[0] < 0.55)
    cv.paint(weed, (0.15, 0.55, 0.3), 0.5)
    coral = cover(torch.minimum(circle(dx, yp, 0.1, 0.15, 0.2), circle(dx, yp, -0.12, 0.1, 0.14)), g.pix) * (rs[0] > 0.8)
    cv.paint(coral, torch.stack([0.95 + 0 * rs[2], 0.4 + 0.3 * rs[2], 0.5 - 0.2 * rs[2]], 1), 0.5)
    a = _ground(g, cv, (0.78, 0.72, 0.52), (0.6, 0.55, 0.4))
    bx, by, brs = cells(g.X + 0.2 * torch.sin(g.Y * 2 + g.t), g.Y - g.t * 0.6, 0.6, 0.6, g.seed + 127, 1)
    ring = cover((torch.sqrt(bx * bx + by * by) - 0.05).abs() - 0.01, g.pix) * (brs[0] < 0.25) * (g.Y > 0.1)
    cv.paint(ring * 0.8, (0.85, 0.95, 1.0), 0.2)


def scene_desert(g, cv):
    _hills(g, cv, 0.15, 1.3, 0.6, 0.35, (0.78, 0.45, 0.3), 0.85, 2, flat=True)
    xp, yp = g.layer(0.35)
    cv.paint(cover(yp - 0.35 - 0.2 * torch.sin(xp * 0.8 + g.r(6) * 6), g.pix), (0.9, 0.66, 0.42), 0.7)
    xp, yp = g.layer(0.6)
    dx, rs = g.row(xp, 2.8, 131)
    on = (rs[0] < 0.6).float()
    hh = 0.8 + 0.6 * rs[1]
    cac = torch.minimum(segment(dx, yp, 0.0, 0.0, 0.0, hh, 0.1),
                        torch.minimum(segment(dx, yp, 0.0, hh * 0.5, 0.3, hh * 0.55, 0.06), segment(dx, yp, 0.3, hh * 0.55, 0.3, hh * 0.85, 0.06)))
    cv.paint(cover(cac, g.pix) * on, (0.25, 0.5, 0.25), 0.55)
    a = _ground(g, cv, (0.93, 0.74, 0.48), (0.82, 0.6, 0.36))
    rip = (torch.sin(g.X * 4 + torch.sin(g.Y * 5) * 2 + g.Y * 8) > 0.8).float() * a
    cv.paint(rip * 0.3, (0.75, 0.55, 0.32), 0.3)


# ---------------------------------------------------------------- subjects

def _shade(c, k):
    return c * k


def _tint(c, k):
    return c + (1 - c) * k


def _local(g):
    p = g.p
    s = g.b(p["scale"])
    f = g.b(p["facing"])
    lx = (g.X - g.b(p["x"])) * f / s
    ly = (g.Y - g.b(p["y"])) / s
    return lx, ly, g.pix / s


def subj_ball(g, cv, basket=False):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    d = circle(lx, ly, 0.0, 0.0, 1.0)
    a = cover(d, lp)
    sx = (torch.sin(g.b(g.p["angle"])))
    rx, ry = rotate(lx, ly, 0.0, 0.0, g.b(g.p["angle"]))
    if basket:
        cv.paint(a, (0.92, 0.45, 0.12), 0.15)
        seam = torch.minimum(torch.minimum(rx.abs(), ry.abs()), (torch.sqrt((rx - 1.2) ** 2 + ry**2) - 0.95).abs())
        seam = torch.minimum(seam, (torch.sqrt((rx + 1.2) ** 2 + ry**2) - 0.95).abs())
        cv.paint(a * cover(seam - 0.05, lp), (0.15, 0.08, 0.05), 0.15)
    else:
        cv.paint(a, c, 0.15)
        band = cover(ry.abs() - 0.28, lp) * a
        cv.paint(band, _tint(c, 0.85), 0.15)
    shade = ((lx * 0.5 + ly * 0.7) * 0.5 + 0.5).clamp(0, 1)
    cv.paint(a * (1 - shade).unsqueeze(1).squeeze(1) * 0.35, (0.0, 0.0, 0.0), 0.15)
    hl = cover(circle(lx, ly, -0.35, 0.4, 0.18), lp) * a
    cv.paint(hl * 0.7, (1.0, 1.0, 1.0), 0.15)
    del sx


def _shadow(g, cv, width):
    p = g.p
    s = g.b(p["scale"])
    h = g.b(p["y"]).clamp(min=0)
    k = (1.0 / (1.0 + h)).clamp(0.2, 1.0)
    d = ellipse(g.X, g.Y, g.b(p["x"]), 0.0 * s, width * s * k, 0.06 * s + 0.0 * k)
    cv.paint(cover(d, g.pix * 3) * 0.3 * k, (0.0, 0.0, 0.0), 0.3)


def subj_cat(g, cv, running):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    dark = _shade(c, 0.55) if True else c
    ph = g.b(g.p["phase"])
    amp = 0.22 if running else 0.12
    stretch = 1.15 if running else 1.0
    legs_far, legs_near = [], []
    for k, (hx, off) in enumerate([(0.25, 0.0), (-0.28, math.pi), (0.3, math.pi), (-0.22, 0.0)]):
        sw = torch.sin(ph + off)
        lift = 0.06 * torch.cos(ph + off).clamp(min=0)
        fx = hx * stretch + amp * sw
        leg = torch.minimum(segment(lx, ly, hx * stretch, 0.38, (hx * stretch + fx) / 2, 0.18 + lift, 0.055),
                            segment(lx, ly, (hx * stretch + fx) / 2, 0.18 + lift, fx, 0.03 + lift, 0.05))
        (legs_far if k < 2 else legs_near).append(leg)
    cv.paint(cover(torch.minimum(*legs_far), lp), dark, 0.15)
    tail_w = g.b(g.p["aux"])
    tail = torch.minimum(segment(lx, ly, -0.4 * stretch, 0.48, -0.62 * stretch, 0.62 + 0.04 * tail_w, 0.045),
                         segment(lx, ly, -0.62 * stretch, 0.62 + 0.04 * tail_w, -0.56 * stretch + 0.08 * tail_w, 0.8, 0.04))
    cv.paint(cover(tail, lp), c, 0.15)
    body = segment(lx, ly, -0.36 * stretch, 0.45, 0.3 * stretch, 0.47, 0.18)
    cv.paint(cover(body, lp), c, 0.15)
    stripes = cover(body, lp) * (torch.sin(lx * 26) > 0.55) * (ly > 0.45)
    cv.paint(stripes * 0.6, dark, 0.15)
    cv.paint(cover(torch.minimum(*legs_near), lp), c, 0.15)
    hx, hy = 0.5 * stretch, 0.64
    head = circle(lx, ly, hx, hy, 0.17)
    ears = torch.minimum(polygon(lx, ly, [(hx - 0.14, hy + 0.06), (hx - 0.1, hy + 0.26), (hx - 0.01, hy + 0.12)]),
                         polygon(lx, ly, [(hx + 0.02, hy + 0.13), (hx + 0.1, hy + 0.27), (hx + 0.14, hy + 0.06)]))
    cv.paint(cover(torch.minimum(head, ears), lp), c, 0.15)
    cv.paint(cover(circle(lx, ly, hx + 0.08, hy + 0.03, 0.035), lp), (0.25, 0.7, 0.3), 0.15)
    cv.paint(cover(circle(lx, ly, hx + 0.09, hy + 0.03, 0.015), lp), (0.02, 0.02, 0.02), 0.15)
    cv.paint(cover(circle(lx, ly, hx + 0.165, hy - 0.03, 0.025), lp), (0.95, 0.55, 0.6), 0.15)
    wh = torch.minimum(segment(lx, ly, hx + 0.15, hy - 0.05, hx + 0.3, hy - 0.02, 0.004), segment(lx, ly, hx + 0.15, hy - 0.06, hx + 0.3, hy - 0.1, 0.004))
    cv.paint(cover(wh, lp) * 0.8, (0.9, 0.9, 0.9), 0.15)


def _person(g, cv, kind):
    """Skier / snowboarder / speed skater, side view, feet at the anchor."""
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    dark = _shade(c, 0.6)
    ang = g.b(g.p["angle"]) * g.b(g.p["facing"])
    ph = g.b(g.p["phase"])
    air = g.b(g.p["aux"])
    lx, ly = rotate(lx, ly, 0.0, 0.0, ang)  # the whole rider tilts with the slope / in flight
    skin = (0.93, 0.75, 0.6)
    zero = torch.zeros_like(ph)
    if kind == "skater":
        hip = (zero, zero + 0.75)
        sh = (zero + 0.55, zero + 0.95)  # torso almost horizontal
        push = torch.sin(ph)
        f1 = (-0.45 - 0.25 * push, zero + 0.06)  # pushing leg extends back
        f2 = (0.15 + 0.05 * push, zero + 0.06)
        k1 = (-0.15 - 0.1 * push, zero + 0.42)
        k2 = (0.3 + 0.0 * push, zero + 0.45)
        hand1 = (-0.1 + 0.0 * push, zero + 1.0)  # arm on the back
        hand2 = (0.6 + 0.35 * torch.sin(ph + math.pi), zero + 0.55 + 0.15 * torch.cos(ph))
        head = (zero + 0.78, zero + 1.1)
    else:
        crouch = 0.18 + 0.12 * air
        if kind == "snowboarder":
            crouch = 0.25 + 0.1 * torch.sin(ph) * 0.5 + 0.1 * air
        hip = (zero - 0.05, 0.95 - crouch)
        sh = (zero + 0.12, 1.48 - crouch)
        if kind == "snowboarder":
            f1, f2 = (zero - 0.28, zero + 0.1), (zero + 0.28, zero + 0.1)
            k1, k2 = (zero - 0.18, 0.5 - crouch * 0.3), (zero + 0.25, 0.5 - crouch * 0.3)
            hand1 = (zero - 0.55, 1.2 - crouch + 0.1 * torch.sin(ph))
            hand2 = (zero + 0.6, 1.25 - crouch - 0.1 * torch.sin(ph))
        else:
            f1, f2 = (zero - 0.08, zero + 0.1), (zero + 0.08, zero + 0.1)
            k1, k2 = (zero + 0.18, 0.55 - crouch * 0.4), (zero + 0.25, 0.55 - crouch * 0.4)
            hand1 = (zero + 0.42, 1.05 - crouch)
            hand2 = (zero + 0.35, 1.0 - crouch)
        head = (sh[0] + 0.06, sh[1] + 0.2)

    def limb(a, b, r):
        return segment(lx, ly, a[0], a[1], b[0], b[1], r)

    # gear first (behind the body)
    if kind == "skier":
        ski = box(lx, ly, 0.05, 0.03, 0.75, 0.025, 0.02)
        tip = circle(lx, ly, 0.78, 0.09, 0.07)
        cv.paint(cover(torch.minimum(ski, torch.maximum(tip, -circle(lx, ly, 0.7, 0.16, 0.07))), lp), (0.15, 0.15, 0.2), 0.15)
        pole = torch.minimum(limb(hand1, (hand1[0] - 0.55, hand1[1] - 0.85), 0.015), limb(hand2, (hand2[0] - 0.5, hand2[1] - 0.85), 0.015))
        cv.paint(cover(pole, lp), (0.6, 0.6, 0.65), 0.15)
    elif kind == "snowboarder":
        board = box(lx, ly, 0.0, 0.04, 0.62, 0.045, 0.04)
        cv.paint(cover(board, lp), _tint(c, 0.5), 0.15)
    else:
        blades = torch.minimum(segment(lx, ly, f1[0] - 0.15, f1[1] - 0.05, f1[0] + 0.18, f1[1] - 0.05, 0.012),
                               segment(lx, ly, f2[0] - 0.15, f2[1] - 0.05, f2[0] + 0.18, f2[1] - 0.05, 0.012))
        cv.paint(cover(blades, lp), (0.75, 0.78, 0.82), 0.15)
    legs = torch.minimum(torch.minimum(limb(hip, k1, 0.08), limb(k1, f1, 0.07)), torch.minimum(limb(hip, k2, 0.08), limb(k2, f2, 0.07)))
    cv.paint(cover(legs, lp), (0.15, 0.15, 0.2) if kind != "skater" else dark, 0.15)
    boots = torch.minimum(box(lx, ly, f1[0] + 0.05, f1[1], 0.1, 0.06, 0.03), box(lx, ly, f2[0] + 0.05, f2[1], 0.1, 0.06, 0.03))
    cv.paint(cover(boots, lp), (0.1, 0.1, 0.1), 0.15)
    torso = limb(hip, sh, 0.15)
    cv.paint(cover(torso, lp), c, 0.15)
    arms = torch.minimum(limb(sh, hand1, 0.06), limb(sh, hand2, 0.06))
    cv.paint(cover(arms, lp), dark, 0.15)
    hd = circle(lx, ly, head[0], head[1], 0.13)
    cv.paint(cover(hd, lp), skin, 0.15)
    helmet = torch.maximum(circle(lx, ly, head[0], head[1] + 0.02, 0.14), head[1] - 0.0 - ly)
    cv.paint(cover(helmet, lp), _tint(c, 0.3) if kind != "skater" else dark, 0.15)
    if kind != "skater":
        gog = box(lx, ly, head[0] + 0.08, head[1] + 0.01, 0.06, 0.035, 0.01)
        cv.paint(cover(gog, lp), (0.95, 0.6, 0.15), 0.15)


def subj_car(g, cv):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    body = box(lx, ly, 0.0, 0.42, 1.1, 0.22, 0.12)
    cab = box(lx, ly, -0.12, 0.7, 0.62, 0.22, 0.16)
    cv.paint(cover(torch.minimum(body, cab), lp), c, 0.15)
    win = torch.minimum(box(lx, ly, -0.38, 0.72, 0.26, 0.14, 0.05), box(lx, ly, 0.14, 0.72, 0.22, 0.14, 0.05))
    cv.paint(cover(win, lp), (0.55, 0.75, 0.9), 0.15)
    cv.paint(cover(box(lx, ly, 0.0, 0.38, 1.08, 0.015), lp) * 0.5, _shade(c, 0.5), 0.15)
    head = box(lx, ly, 1.05, 0.47, 0.05, 0.05, 0.02)
    cv.paint(cover(head, lp), (1.0, 0.95, 0.7), 0.15, emissive=True)
    cv.paint(cover(box(lx, ly, -1.07, 0.47, 0.04, 0.05, 0.02), lp), (0.9, 0.1, 0.1), 0.15, emissive=True)
    beam = ((lx - 1.05) / 2.5).clamp(0, 1) * torch.exp(-((ly - 0.45) / (0.1 + 0.25 * (lx - 1.05).clamp(min=0))) ** 2) * (lx > 1.05)
    cv.glow(beam * g.night * 0.5, (1.0, 0.95, 0.7))
    spin = g.b(g.p["angle"])
    for wx in (-0.68, 0.68):
        cv.paint(cover(circle(lx, ly, wx, 0.2, 0.2), lp), (0.08, 0.08, 0.09), 0.15)
        cv.paint(cover(circle(lx, ly, wx, 0.2, 0.1), lp), (0.7, 0.7, 0.72), 0.15)
        rx, ry = rotate(lx, ly, wx, 0.2, spin)
        cv.paint(cover(box(rx, ry, wx, 0.2, 0.095, 0.018), lp), (0.3, 0.3, 0.32), 0.15)


def subj_bird(g, cv):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    flap = torch.sin(g.b(g.p["phase"]))
    cv.paint(cover(polygon(lx, ly, [(-0.5, 0.05), (-1.0, 0.3), (-1.0, -0.2)]), lp), _shade(c, 0.7), 0.15)
    wing_far = segment(lx, ly, 0.0, 0.1, -0.25, 0.1 + 0.75 * flap, 0.1)
    cv.paint(cover(wing_far, lp), _shade(c, 0.55), 0.15)
    body = ellipse(lx, ly, 0.0, 0.0, 0.6, 0.3)
    cv.paint(cover(body, lp), c, 0.15)
    cv.paint(cover(ellipse(lx, ly, 0.1, -0.12, 0.35, 0.14), lp) * 0.6, _tint(c, 0.6), 0.15)
    cv.paint(cover(circle(lx, ly, 0.55, 0.2, 0.24), lp), c, 0.15)
    cv.paint(cover(polygon(lx, ly, [(0.74, 0.28), (1.0, 0.17), (0.74, 0.1)]), lp), (0.98, 0.65, 0.1), 0.15)
    cv.paint(cover(circle(lx, ly, 0.62, 0.27, 0.05), lp), (0.02, 0.02, 0.02), 0.15)
    wing = segment(lx, ly, 0.05, 0.1, -0.2, 0.1 + 0.85 * flap, 0.12)
    cv.paint(cover(wing, lp), _shade(c, 0.8), 0.15)


def subj_fish(g, cv):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    rx, ry = rotate(lx, ly, 0.0, 0.0, g.b(g.p["angle"]))
    wag = 0.18 * torch.sin(g.b(g.p["phase"]))
    cv.paint(cover(polygon(rx, ry, [(-0.55, 0.0), (-1.0, 0.4 + wag), (-1.0, -0.4 + wag)]), lp), _shade(c, 0.75), 0.15)
    cv.paint(cover(polygon(rx, ry, [(-0.2, 0.3), (0.2, 0.3), (-0.25, 0.55)]), lp), _shade(c, 0.75), 0.15)
    body = ellipse(rx, ry, 0.0, 0.0, 0.7, 0.38)
    cv.paint(cover(body, lp), c, 0.15)
    band = cover(body, lp) * cover((rx - 0.05).abs() - 0.07, lp)
    cv.paint(band * 0.85, (0.97, 0.97, 0.97), 0.15)
    cv.paint(cover(circle(rx, ry, 0.42, 0.08, 0.08), lp), (0.97, 0.97, 0.97), 0.15)
    cv.paint(cover(circle(rx, ry, 0.44, 0.08, 0.04), lp), (0.02, 0.02, 0.02), 0.15)


def subj_rocket(g, cv):
    lx, ly, lp = _local(g)
    c = g.p["colour"]
    # launch tower at the pad (world coords: it stays when the rocket leaves)
    pad_x = g.b(g.p["x"])
    tx = g.X - pad_x - 0.85
    tower = torch.minimum(box(tx, g.Y, 0.0, 1.3, 0.18, 1.3), box(g.X - pad_x, g.Y, 0.0, 0.06, 1.0, 0.06))
    lattice = cover(torch.minimum((torch.remainder(tx + g.Y, 0.35) - 0.175).abs(), (torch.remainder(tx - g.Y, 0.35) - 0.175).abs()) - 0.02, g.pix)
    cv.paint(cover(tower, g.pix) * torch.maximum(lattice, cover(box(g.X - pad_x, g.Y, 0.0, 0.06, 1.0, 0.06), g.pix)), (0.45, 0.42, 0.4), 0.2)
    fl = g.b(g.p["aux"])
    flick = 1 + 0.2 * torch.sin(g.b(g.p["phase"]))
    flame_len = 0.6 * fl * flick
    flame = ellipse(lx, ly, 0.0, 0.0 - flame_len * 0.5, 0.14 + 0.0 * fl, (flame_len * 0.5).clamp(min=1e-3))
    cv.paint(cover(flame, lp) * (fl > 0.01), (1.0, 0.55, 0.1), 0.15, emissive=True)
    core = ellipse(lx, ly, 0.0, 0.0 - flame_len * 0.3, 0.07, (flame_len * 0.3).clamp(min=1e-3))
    cv.paint(cover(core, lp) * (fl > 0.01), (1.0, 0.95, 0.6), 0.15, emissive=True)
    cv.glow(torch.exp(-circle(lx, ly, 0.0, -flame_len * 0.5, 0.1).clamp(min=0) * 3) * fl * 0.35, (1.0, 0.6, 0.2))
    # smoke on the ground once the engine runs
    sdx, sdy, srs = cells(g.X - pad_x, g.Y + 0.0 * g.t, 0.35, 0.3, g.seed + 141, 1)
    smoke = cover(torch.sqrt(sdx**2 + sdy**2) - 0.16, g.pix) * ((g.X - pad_x).abs() < 0.6 + 1.5 * fl) * (g.Y < 0.45) * (g.Y > -0.1) * (srs[0] < 0.8)
    cv.paint(smoke * fl * 0.8 * (g.b(g.p["y"]) < 6).float(), (0.85, 0.85, 0.85), 0.18)
    fins = torch.minimum(polygon(lx, ly, [(-0.2, 0.55), (-0.45, 0.0), (-0.2, 0.15)]), polygon(lx, ly, [(0.2, 0.55), (0.45, 0.0), (0.2, 0.15)]))
    cv.paint(cover(fins, lp), _shade(c, 0.6) if True else c, 0.15)
    body = box(lx, ly, 0.0, 0.8, 0.22, 0.65, 0.12)
    cv.paint(cover(body, lp), c, 0.15)
    nose = polygon(lx, ly, [(-0.22, 1.4), (0.22, 1.4), (0.0, 1.9)])
    cv.paint(cover(nose, lp), (0.85, 0.15, 0.12), 0.15)
    cv.paint(cover(circle(lx, ly, 0.0, 1.05, 0.1), lp), (0.3, 0.3, 0.35), 0.15)
    cv.paint(cover(circle(lx, ly, 0.0, 1.05, 0.07), lp), (0.55, 0.8, 0.95), 0.15)


SCENE_FN = {"garden": scene_garden, "park": scene_park, "ice_rink": scene_ice_rink, "street": scene_street,
            "court": scene_court, "beach": scene_beach, "underwater": scene_underwater, "desert": scene_desert}


def _weather(g, cv):
    snow_w, rain_w = g.b(g.ww[:, 1]), g.b(g.ww[:, 2])
    if float(snow_w.max()) > 0:
        for cw, r, spd, salt in ((0.45, 0.035, 0.7, 151), (0.25, 0.018, 0.45, 153)):
            # flakes live in world space (they parallax with the camera) and drift as they fall
            sx = g.X * (1.0 if cw > 0.3 else 0.6) + 0.15 * torch.sin(g.t * 1.3 + g.Y * 1.7)
            sy = g.Y + g.t * spd
            dx, dy, rs = cells(sx, sy, cw, cw, g.seed + salt, 1)
            flake = cover(torch.sqrt(dx * dx + dy * dy) - r * (0.6 + 0.8 * rs[0]), g.pix) * snow_w
            cv.paint(flake * 0.9, (0.97, 0.98, 1.0), 0.1)
    if float(rain_w.max()) > 0:
        rx = g.U + 1.2 * g.cam_x + 0.22 * g.V
        ry = g.V + g.t * 9.0
        dx, dy, rs = cells(rx, ry, 0.16, 0.8, g.seed + 157, 1)
        streak = cover(torch.maximum(dx.abs() - 0.008, dy.abs() - 0.16), g.pix) * (rs[0] < 0.7) * rain_w
        cv.paint(streak * 0.5, (0.8, 0.85, 0.95), 0.1)


def render_group(p: dict, scene: str, subject: str, H: int, W: int) -> torch.Tensor:
    dev = p["x"].device
    g = Group(p, H, W, dev)
    cv = Canvas(g.n, H, W, dev)
    _sky(g, cv, scene)
    facing = g.b(p["facing"])
    if scene == "snow_slope":
        scene_snow_slope(g, cv, facing)
    else:
        SCENE_FN[scene](g, cv)
    if subject not in ("bird", "fish"):
        _shadow(g, cv, 0.5 if subject not in ("car",) else 1.1)
    if subject in ("ball", "basketball"):
        subj_ball(g, cv, basket=subject == "basketball")
    elif subject == "cat":
        subj_cat(g, cv, running=bool(p["motion_run"]))
    elif subject in ("skier", "snowboarder", "skater"):
        _person(g, cv, subject)
    else:
        {"car": subj_car, "bird": subj_bird, "fish": subj_fish, "rocket": subj_rocket}[subject](g, cv)
    if scene == "court":
        court_front(g, cv)
    _weather(g, cv)
    light = g.mix_time(LIGHT) * (g.ww @ torch.tensor([WEATHER_DIM[w] for w in WEATHERS], device=dev)[:, None])
    out = cv.img * light[:, :, None, None] + cv.emit
    fog = g.b(g.ww[:, 3]).unsqueeze(1) * 0.75
    fog_k = fog * (0.15 + 0.85 * cv.depth) ** 1.5
    out = out + (sdf.col(g.mix_time(FOG), out) - out) * fog_k
    return out.clamp(0, 1)


# ---------------------------------------------------------------- styles (post-process)

def _sobel(img):
    lum = img.mean(1, keepdim=True) if img.shape[1] == 3 else img
    kx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=img.dtype, device=img.device).view(1, 1, 3, 3) / 4
    gx = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), kx.expand(img.shape[1], 1, 3, 3), groups=img.shape[1])
    gy = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), kx.transpose(2, 3).expand(img.shape[1], 1, 3, 3), groups=img.shape[1])
    del lum
    return torch.sqrt(gx**2 + gy**2 + 1e-12).amax(1, keepdim=True)


def style_manga(img, t):
    lum = (img * torch.tensor([0.3, 0.59, 0.11], device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    H, W = img.shape[-2:]
    v, u = torch.meshgrid(torch.arange(H, device=img.device), torch.arange(W, device=img.device), indexing="ij")
    # screentone: a 45-degree dot grid whose dot size follows the darkness
    a = (u + v).float() * (math.pi / 3.0)
    b = (u - v).float() * (math.pi / 3.0)
    dots = (torch.cos(a) * torch.cos(b)).view(1, 1, H, W)
    tone = torch.where(lum > 0.55, torch.ones_like(lum),
                       torch.where(lum > 0.28, (dots > (0.55 - lum) * 3.0 - 0.75).float() * 0.9 + 0.05, 0.1 + 0.0 * lum))
    edge = (_sobel(img) > 0.06).float()
    out = tone * (1 - edge)
    paper = torch.tensor([0.97, 0.95, 0.9], device=img.device).view(1, 3, 1, 1)
    return out * paper


def style_pixel(img, t, block=4, levels=5):
    H, W = img.shape[-2:]
    small = F.avg_pool2d(img, block, ceil_mode=True)
    small = (small * 1.15 - 0.05).clamp(0, 1)  # a touch more contrast, as sprite palettes have
    q = torch.round(small * (levels - 1)) / (levels - 1)
    return F.interpolate(q, scale_factor=block, mode="nearest")[..., :H, :W]


def style_vangogh(img, t):
    H, W = img.shape[-2:]
    v, u = torch.meshgrid(torch.arange(H, device=img.device, dtype=img.dtype), torch.arange(W, device=img.device, dtype=img.dtype), indexing="ij")
    tt = t.view(-1, 1, 1, 1)
    theta = 1.8 * torch.sin(u * 0.035 + 0.7 * torch.cos(v * 0.05)) + 1.2 * torch.cos(v * 0.04 - u * 0.02)
    across = -u * torch.sin(theta) + v * torch.cos(theta)
    stroke = torch.sin(across * 1.6 + 0.5 * torch.sin(u * 0.3 + v * 0.2) + tt * 0.5)
    mean = img.mean(1, keepdim=True)
    sat = mean + (img - mean) * 1.45
    out = sat * (1.0 + 0.13 * stroke)
    # swirls in bright, smooth regions (the sky)
    cx, cy = W * 0.3, H * 0.22
    r = torch.sqrt((u - cx) ** 2 + (v - cy) ** 2)
    ang = torch.atan2(v - cy, u - cx)
    swirl = torch.sin(r * 0.35 - ang * 2 - tt * 0.8) * torch.exp(-r / 60)
    smooth = (_sobel(img) < 0.02).float()
    out = out + 0.1 * swirl * smooth * (v < H * 0.6).to(img.dtype)
    return out.clamp(0, 1)


def style_neon(img, t):
    edge = _sobel(img).clamp(0, 0.5) * 2
    mean = img.mean(1, keepdim=True)
    hue = ((img - mean) * 3.0 + 0.5).clamp(0, 1)
    hue = hue / hue.amax(1, keepdim=True).clamp(min=0.2)
    lines = edge * hue
    glow = F.avg_pool2d(F.avg_pool2d(lines, 5, 1, 2), 5, 1, 2)
    base = img * 0.12 * torch.tensor([0.6, 0.5, 1.0], device=img.device).view(1, 3, 1, 1)
    return (base + lines * 1.2 + glow * 1.6).clamp(0, 1)


STYLE_FN = {"manga": style_manga, "pixel": style_pixel, "vangogh": style_vangogh, "neon": style_neon}
