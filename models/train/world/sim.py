"""Per-frame motion and camera for a shot, in numpy (float64, CPU).

Physics runs on the host because it is a sequential loop over frames with a handful of scalars per
clip: a few thousand tiny numpy ops, far cheaper than launching them as GPU kernels. Rendering,
where the pixels are, runs in torch.

World units are roughly metres, y up, ground at y = 0. At zoom 1 the view is 8 x 4.5 units, so a
1.8 unit person is 40 % of the frame height: big enough to survive the 8x latent downsampling.
"""
from __future__ import annotations

import math

import numpy as np

from .spec import FPS, Shot

VIEW_W, VIEW_H = 8.0, 4.5
G = 9.8
MARGIN = 0.7  # keep the subject's anchor this far (world units at zoom 1) inside the frame edge

# Subject size: scale factor and bounding box (x0, x1, y0, y1) around the anchor, in units of
# scale, for a subject facing +x. Used for labels and for fitting the camera.
SIZES = {
    "ball": (0.3, (-1, 1, -1, 1)),
    "basketball": (0.27, (-1, 1, -1, 1)),
    "cat": (1.0, (-0.62, 0.72, 0.0, 0.82)),
    "skier": (1.0, (-0.7, 0.7, 0.0, 1.8)),
    "snowboarder": (1.0, (-0.6, 0.6, 0.0, 1.75)),
    "skater": (1.0, (-0.75, 0.75, 0.0, 1.5)),
    "car": (1.0, (-1.15, 1.15, 0.0, 1.0)),
    "bird": (0.65, (-1.0, 1.0, -0.8, 0.8)),
    "fish": (0.75, (-1.0, 1.0, -0.6, 0.6)),
    "rocket": (1.0, (-0.45, 0.45, -0.2, 1.9)),
}
SPEED_MUL = {"slow": 0.7, "normal": 1.0, "fast": 1.35}

# Basketball court geometry (world units). The hoop sits at x = 0.
RIM_Y, RIM_R, BOARD_X, BOARD_Y0, BOARD_Y1 = 2.7, 0.42, 0.62, 2.5, 3.45


def ground_base_y(scene: str) -> float:
    """Camera y at zoom 1: the ground line sits 78 % of the way down (90 % on the court so the
    hoop fits, 60 % underwater so the fish have water above them)."""
    frac = {"court": 0.92, "underwater": 0.88}.get(scene, 0.78)
    return VIEW_H * (frac - 0.5)


def ramp_height(x: np.ndarray, ramp: tuple[float, float, float, float]) -> np.ndarray:
    """Periodic kicker ramps: (first tip x, spacing, length, height). Rising toward the tip in
    the direction of travel (+x in the ramp's own frame)."""
    r0, spacing, length, height = ramp
    if spacing <= 0:
        return np.zeros_like(x)
    u = np.mod(x - r0, spacing)  # distance past the last tip
    before = spacing - u  # distance before the next tip
    return np.where(before < length, height * (1.0 - before / length), 0.0)


def simulate(shot: Shot) -> dict:
    rng = np.random.default_rng(shot.seed)
    n = shot.frames
    t = np.arange(n) / FPS
    dur = max(t[-1], 1.0 / FPS)
    d = shot.direction
    mul = SPEED_MUL[shot.speed]
    scale, _ = SIZES[shot.subject]
    x = np.zeros(n)
    y = np.zeros(n)
    phase = np.zeros(n)  # gait / flap / wag phase, radians
    angle = np.zeros(n)  # body rotation (ball spin, skier tilt), radians
    aux = np.zeros(n)  # subject-specific: rocket flame, skier airborne, cat tail wag
    ramp = (0.0, 0.0, 1.0, 0.0)
    hoop_x = 0.0
    s = shot.subject
    m = shot.motion

    if s == "ball":
        r = scale
        if m == "bounce":
            vx = d * rng.uniform(0.0, 0.35) * mul
            y0 = rng.uniform(1.8, 2.7)
            e = rng.uniform(0.82, 0.9)
            x, y, vxs = _bounce(n, rng.uniform(-1, 1) - d * 1.0, y0, vx, 0.0, e, r, 0.995)
        elif m == "roll":
            v0 = rng.uniform(0.8, 1.6) * mul
            dec = v0 / max(dur * rng.uniform(1.2, 3.0), 1e-3)
            v = np.maximum(v0 - dec * t, 0.15)
            x = -d * 2.5 + d * np.concatenate([[0], np.cumsum(v[:-1] / FPS)])
            y = np.full(n, r)
        else:  # throw: an arc then bounces with friction
            x, y, vxs = _bounce(n, -d * 3.0, rng.uniform(0.4, 1.2), d * rng.uniform(1.2, 2.2) * mul,
                                rng.uniform(4.0, 6.0), rng.uniform(0.6, 0.75), r, 0.9)
        angle = -(x - x[0]) / r  # rolling without slipping
    elif s == "basketball":
        x, y, hoop_x = _basketball(n, rng, scale)
        angle = -(x - x[0]) / scale
    elif s == "cat":
        v = (0.85 if m == "walk" else 2.6) * mul * rng.uniform(0.9, 1.1)
        stride = 0.55 if m == "walk" else 1.1
        x = rng.uniform(-0.5, 0.5) - d * 2.0 + d * v * t
        phase = 2 * math.pi * (v * t) / stride
        aux = np.sin(2 * math.pi * t * rng.uniform(0.3, 0.6))
    elif s in ("skier", "snowboarder") and m == "jump":
        v = rng.uniform(5.5, 7.0) * mul
        spacing = v * rng.uniform(3.0, 4.5)
        length, height = 2.2, rng.uniform(0.6, 0.9)
        first_tip = rng.uniform(0.8, 2.0) * v
        x, y, angle, aux = _ramp_rider(n, v, (first_tip, spacing, length, height))
        x = x * d
        angle = angle * d
        ramp = (first_tip, spacing, length, height)
        phase = 2 * math.pi * 0.5 * t
    elif s == "snowboarder":  # ride: carving with the odd ollie
        v = rng.uniform(4.0, 5.5) * mul
        x = d * v * t
        hop_period = rng.uniform(2.0, 3.5)
        tp = np.mod(t, hop_period)
        hop_t = 0.5
        y = np.where(tp < hop_t, 0.5 * G * tp * (hop_t - tp), 0.0)
        angle = 0.15 * np.sin(2 * math.pi * t / 1.7) * d
        phase = 2 * math.pi * t / 1.7
        aux = (y > 0.01).astype(float)
    elif s == "skater":
        v = rng.uniform(5.0, 7.0) * mul
        x = d * v * t
        phase = 2 * math.pi * (v * t) / 4.0
    elif s == "car":
        v = rng.uniform(3.5, 7.0) * mul
        x = d * v * t
        angle = -d * v * t / 0.28  # wheel spin
    elif s == "bird":
        v = rng.uniform(1.3, 2.4) * mul
        x = -d * 2.5 + d * v * t
        y = rng.uniform(1.6, 2.5) + 0.25 * np.sin(2 * math.pi * t / rng.uniform(1.5, 3.0) + rng.uniform(0, 6))
        phase = 2 * math.pi * rng.uniform(2.5, 3.5) * t
    elif s == "fish":
        v = rng.uniform(0.5, 1.2) * mul
        x = -d * 2.5 + d * v * t
        y = rng.uniform(1.0, 2.3) + 0.3 * np.sin(2 * math.pi * t / rng.uniform(2.0, 4.0) + rng.uniform(0, 6))
        phase = 2 * math.pi * rng.uniform(1.5, 2.5) * t
        angle = 0.25 * np.gradient(y) * FPS / max(v, 0.1) * d
    elif s == "rocket":
        t_ign = rng.uniform(min(0.4, dur * 0.2), max(min(2.5, dur * 0.4), min(0.4, dur * 0.2) + 1e-3))
        a = rng.uniform(2.0, 4.0) * mul
        tt = np.maximum(t - t_ign, 0.0)
        y = 0.5 * a * tt**2
        x = np.full(n, rng.uniform(-0.5, 0.5))
        aux = np.clip((t - t_ign + 0.4) / 0.4, 0.0, 1.0)  # flame grows just before lift-off
        phase = t * 40.0  # flame flicker
    else:
        raise ValueError(f"no motion {m} for {s}")

    cam_x, cam_y, zoom = _camera(shot, rng, t, x, y, scale, hoop_x)
    facing = np.full(n, float(d))
    if s in ("ball", "basketball", "rocket"):
        facing[:] = 1.0
    return {"t": t, "x": x, "y": y, "phase": phase, "angle": angle, "aux": aux, "facing": facing,
            "scale": np.full(n, scale), "cam_x": cam_x, "cam_y": cam_y, "zoom": zoom,
            "ramp": np.array(ramp), "hoop_x": hoop_x}


def _bounce(n, x0, y0, vx, vy, e, r, fric, sub=8):
    """Ball under gravity with floor bounces (restitution e, horizontal friction per bounce)."""
    dt = 1.0 / FPS / sub
    xs, ys, vxs = np.zeros(n), np.zeros(n), np.zeros(n)
    x, y = x0, max(y0, r)
    for i in range(n):
        xs[i], ys[i], vxs[i] = x, y, vx
        for _ in range(sub):
            vy -= G * dt
            x += vx * dt
            y += vy * dt
            if y < r:
                y = r + (r - y) * e
                vy = abs(vy) * e if abs(vy) * e > 0.3 else 0.0
                vx *= fric
            if vy == 0.0 and y <= r + 1e-9:
                y = r
                vx *= 0.999
    return xs, ys, vxs


def _basketball(n, rng, r, sub=8):
    """Shots at a hoop at x = 0 from off-screen left, one every few seconds; collisions with the
    floor, the two rim edges (seen side-on a rim is two points) and the backboard."""
    dt = 1.0 / FPS / sub
    period = rng.uniform(2.6, 3.6)
    e_floor, e_rim, e_board = 0.75, 0.55, 0.6
    xs, ys = np.zeros(n), np.zeros(n)
    rims = [(-RIM_R, RIM_Y), (RIM_R, RIM_Y)]
    x = y = vx = vy = 0.0
    for i in range(n):
        tsec = i / FPS
        if i == 0 or (tsec % period) < (1.0 / FPS) * 0.999 and i > 0:
            x, y = -5.6, rng.uniform(1.4, 1.9)
            flight = rng.uniform(0.85, 1.0)
            tx = rng.uniform(-0.55, 0.6)  # aim: front rim, clean, back rim or board
            ty = RIM_Y + r + 0.05
            vx = (tx - x) / flight
            vy = (ty - y + 0.5 * G * flight**2) / flight
        xs[i], ys[i] = x, y
        for _ in range(sub):
            vy -= G * dt
            x += vx * dt
            y += vy * dt
            if y < r:
                y = r
                vy = abs(vy) * e_floor if abs(vy) > 0.5 else 0.0
                vx *= 0.97
            if BOARD_Y0 < y < BOARD_Y1 and x + r > BOARD_X and x < BOARD_X + 0.1 and vx > 0:
                x = BOARD_X - r
                vx = -vx * e_board
            for px, py in rims:
                dx, dy = x - px, y - py
                dist = math.hypot(dx, dy)
                if 1e-9 < dist < r:
                    nx, ny = dx / dist, dy / dist
                    vn = vx * nx + vy * ny
                    if vn < 0:
                        vx -= (1 + e_rim) * vn * nx
                        vy -= (1 + e_rim) * vn * ny
                    x, y = px + nx * r, py + ny * r
    return xs, ys, 0.0


def _ramp_rider(n, v, ramp, sub=8):
    """Rides flat ground and periodic kickers; leaves a kicker's tip along its slope and flies
    ballistically until it meets the ground again."""
    r0, spacing, length, height = ramp
    slope = height / length
    dt = 1.0 / FPS / sub
    xs, ys, ang, air = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    x, y, vy, flying = 0.0, 0.0, 0.0, False
    for i in range(n):
        xs[i], ys[i] = x, y
        ang[i] = math.atan2(vy, v) * 0.6 if flying else (math.atan(slope) if ramp_height(np.array([x]), ramp)[0] > 0 else 0.0)
        air[i] = float(flying)
        for _ in range(sub):
            x_new = x + v * dt
            if flying:
                vy -= G * dt
                y += vy * dt
                g = float(ramp_height(np.array([x_new]), ramp)[0])
                if y <= g and vy < 0:
                    y, vy, flying = g, 0.0, False
            else:
                g_old = float(ramp_height(np.array([x]), ramp)[0])
                g_new = float(ramp_height(np.array([x_new]), ramp)[0])
                if g_old > 0.2 and g_new < g_old - 1e-6:  # passed a tip: take off
                    flying = True
                    vy = v * slope + 1.0
                    y = g_old
                else:
                    y = g_new
            x = x_new
    return xs, ys, ang, air


def _camera(shot, rng, t, x, y, scale, hoop_x):
    n = len(t)
    dur = max(t[-1], 1.0 / FPS)
    base_y = ground_base_y(shot.scene)
    z0 = 1.0
    if shot.scene == "court":
        z0 = 0.95
    zoom = np.full(n, z0)
    cam_y = np.full(n, base_y)
    cam = shot.camera
    sub = shot.subject
    # Vertical centre of the subject's box, to keep tall things framed
    bx0, bx1, by0, by1 = SIZES[sub][1]
    cy_sub = y + 0.5 * (by0 + by1) * scale

    if sub == "basketball":
        # the hoop sits right of centre; the shooter is off-screen left
        cx = -1.6
        zoom = np.full(n, 1.1)
        if cam == "static" or cam == "follow":
            cam_x = np.full(n, cx)
            if cam == "follow":
                cam_x = cx + 0.35 * _smooth(x - cx, 0.4)
        elif cam == "pan":
            cam_x = cx - shot.pan_dir * 0.6 + shot.pan_dir * 1.2 * t / dur
        else:
            zoom = _zoom_curve(shot, t, dur, 0.95, 1.25)
            cam_x = np.full(n, cx) + (1 - 1.1 / zoom) * 1.2
        cam_y = 1.85 * 1.1 / zoom
        return cam_x, cam_y, zoom

    hw_fit = VIEW_W / 2 - MARGIN
    if cam == "static":
        lo, hi = x.min(), x.max()
        span = hi - lo
        zoom = np.full(n, float(np.clip(2 * hw_fit / max(span, 1e-6), 0.55, 1.0)))
        cam_x = np.full(n, 0.5 * (lo + hi))
    elif cam == "zoom":
        zoom = _zoom_curve(shot, t, dur, 0.8, 1.5)
        cam_x = np.full(n, 0.5 * (x.min() + x.max()))
        cam_x = _keep_in(cam_x, x, VIEW_W / 2 / zoom - MARGIN / zoom)
    elif cam == "pan":
        vbar = (x[-1] - x[0]) / dur
        rel = x - vbar * t
        room = max(2 * hw_fit - (rel.max() - rel.min()), 0.0)
        u = min(rng.uniform(0.35, 0.6), room / dur)
        u = max(u, 0.25)
        vp = vbar + shot.pan_dir * u
        c = x - vp * t
        cam_x = 0.5 * (c.min() + c.max()) + vp * t
        cam_x = _keep_in(cam_x, x, VIEW_W / 2 - MARGIN)
    else:  # follow
        lead = 0.6 * np.sign(np.gradient(x)) if n > 1 else 0.0
        cam_x = _smooth(x + lead, 0.35)
        cam_x = _keep_in(cam_x, x, VIEW_W / 2 - MARGIN)

    if cam == "follow" or (sub == "bird" and cam != "static"):
        over = np.maximum(cy_sub - (base_y + 0.6) / zoom, 0.0)
        cam_y = base_y / zoom + _smooth(over, 0.3)
    else:
        cam_y = base_y / zoom
    if sub == "rocket" and cam != "static":
        # tilt up with the rocket; a lagging camera would lose an accelerating subject
        cam_y = np.maximum(cam_y, cy_sub - 0.3)
    return cam_x, cam_y, zoom


def _zoom_curve(shot, t, dur, lo, hi):
    u = t / dur
    u = u * u * (3 - 2 * u)  # ease in and out
    a, b = (lo, hi) if shot.zoom_dir > 0 else (hi, lo)
    return a * (b / a) ** u  # geometric: constant perceived zoom rate


def _smooth(v, tau):
    """First-order lag (a camera operator's reaction), started at rest on the first value."""
    out = np.empty_like(v, dtype=float)
    k = 1.0 - math.exp(-1.0 / (FPS * tau))
    acc = float(v[0])
    for i, vi in enumerate(v):
        acc += k * (vi - acc)
        out[i] = acc
    return out


def _keep_in(cam_x, x, lim):
    lim = np.broadcast_to(lim, cam_x.shape)
    return np.clip(cam_x, x - lim, x + lim)


def labels_for(shot: Shot, sim: dict, width: int, height: int) -> dict:
    """Per-frame screen-space box of the subject (pixels) and whether its anchor is in view."""
    scale, (bx0, bx1, by0, by1) = SIZES[shot.subject]
    f = sim["facing"]
    x0 = sim["x"] + np.minimum(bx0 * f, bx1 * f) * scale
    x1 = sim["x"] + np.maximum(bx0 * f, bx1 * f) * scale
    y0 = sim["y"] + by0 * scale
    y1 = sim["y"] + by1 * scale
    ppu = width / VIEW_W * sim["zoom"]  # pixels per world unit
    u0 = (x0 - sim["cam_x"]) * ppu + width / 2
    u1 = (x1 - sim["cam_x"]) * ppu + width / 2
    v0 = height / 2 - (y1 - sim["cam_y"]) * ppu
    v1 = height / 2 - (y0 - sim["cam_y"]) * ppu
    cu, cv = 0.5 * (u0 + u1), 0.5 * (v0 + v1)
    visible = (cu >= 0) & (cu < width) & (cv >= 0) & (cv < height)
    return {"box": np.stack([u0, v0, u1, v1], -1).astype(np.float32), "visible": visible,
            "world_xy": np.stack([sim["x"], sim["y"]], -1).astype(np.float32)}
