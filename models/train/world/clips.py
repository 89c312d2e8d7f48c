"""Clip specs -> video tensors [B, T, 3, H, W] and labels. The one entry point training uses."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .captions import caption_clip
from .render import STYLE_FN, render_group
from .sim import labels_for, simulate
from .spec import (COLOURS, FPS, STYLES, TIMES, WEATHERS, ClipSpec, load_heldout, sample_clip, step_seed)
from .sim import ground_base_y

N_RAND = 16


def _shot_frames(shot, sim, W):
    n = shot.frames
    rng = np.random.default_rng([shot.seed, 7])
    return {
        "x": sim["x"], "y": sim["y"], "phase": sim["phase"], "angle": sim["angle"], "aux": sim["aux"],
        "facing": sim["facing"], "scale": sim["scale"], "cam_x": sim["cam_x"], "cam_y": np.broadcast_to(sim["cam_y"], (n,)),
        "zoom": sim["zoom"], "t": sim["t"],
        "cam_y0": ground_base_y(shot.scene) / sim["zoom"],
        "seed_i": np.full(n, shot.seed % 1000003, dtype=np.int64),
        "rand": np.broadcast_to(rng.random(N_RAND), (n, N_RAND)),
        "time_w": np.broadcast_to(np.eye(len(TIMES))[TIMES.index(shot.time)], (n, len(TIMES))),
        "weather_w": np.broadcast_to(np.eye(len(WEATHERS))[WEATHERS.index(shot.weather)], (n, len(WEATHERS))),
        "colour": np.broadcast_to(np.array(COLOURS[shot.colour]), (n, 3)),
        "ramp": np.broadcast_to(sim["ramp"], (n, 4)),
        "warp": np.full(n, 2.2 * W / 256 if shot.style == "vangogh" else 0.0),
    }


def prepare(specs: list[ClipSpec], height: int = 144, width: int = 256, with_labels: bool = True) -> dict:
    """The host half of rendering: physics, cameras and per-frame parameters as numpy arrays.
    Picklable, so worker processes can prepare later steps while the GPU draws this one."""
    T = specs[0].frames
    assert all(s.frames == T for s in specs), "a batch holds clips of one length"
    B = len(specs)
    groups = defaultdict(list)  # (scene, subject, motion) -> list of (frame offset, per-frame dict)
    styles = np.empty(B * T, dtype=object)
    times = np.zeros(B * T, dtype=np.float32)
    labels = []
    for b, spec in enumerate(specs):
        f0 = b * T
        shot_labels = []
        boxes, vis, wxy = [], [], []
        for shot in spec.shots:
            sim = simulate(shot)
            groups[(shot.scene, shot.subject, shot.motion)].append((f0, _shot_frames(shot, sim, width)))
            styles[f0:f0 + shot.frames] = shot.style
            times[f0:f0 + shot.frames] = sim["t"]
            if with_labels:
                lab = labels_for(shot, sim, width, height)
                boxes.append(lab["box"]); vis.append(lab["visible"]); wxy.append(lab["world_xy"])
                start = f0 - b * T
                shot_labels.append({**shot.attrs(), "direction": shot.direction, "speed": shot.speed,
                                    "start": start, "end": start + shot.frames})
            f0 += shot.frames
        if with_labels:
            labels.append({"shots": shot_labels, "box": np.concatenate(boxes), "visible": np.concatenate(vis),
                           "world_xy": np.concatenate(wxy)})
    packed = []
    for (scene, subject, motion), items in groups.items():
        idx = np.concatenate([np.arange(f0, f0 + len(p["x"])) for f0, p in items])
        cat = {k: np.ascontiguousarray(np.concatenate([np.asarray(p[k]) for _, p in items])) for k in items[0][1]}
        packed.append((scene, subject, motion, idx, cat))
    return {"B": B, "T": T, "H": height, "W": width, "groups": packed, "styles": styles, "times": times,
            "labels": labels}


def window(prep: dict, starts, length: int) -> dict:
    """Frames starts[b] .. starts[b] + length of each clip of prepare()'s output, as if prepared
    that long. The world times a shot's camera move and physics by its whole length, so a window
    of a long clip shows a 15 s clip's slow zoom and long-shot motion at a short clip's cost."""
    B, T = prep["B"], prep["T"]
    starts = np.asarray(starts, dtype=np.int64)
    if starts.shape != (B,) or (starts < 0).any() or (starts + length > T).any() or length < 1:
        raise ValueError(f"windows of {length} frames at {starts.tolist()} do not fit {B} clips of {T} frames")
    kept = (np.arange(B)[:, None] * T + starts[:, None] + np.arange(length)).ravel()  # old index of each new frame
    new_index = np.full(B * T, -1, dtype=np.int64)
    new_index[kept] = np.arange(B * length)
    groups = []
    for scene, subject, motion, idx, cat in prep["groups"]:
        new = new_index[idx]
        sel = new >= 0
        if sel.any():
            groups.append((scene, subject, motion, new[sel], {k: np.ascontiguousarray(v[sel]) for k, v in cat.items()}))
    labels = []
    for b, lab in enumerate(prep["labels"]):
        s = int(starts[b])
        shots = [{**sh, "start": max(sh["start"] - s, 0), "end": min(sh["end"] - s, length)}
                 for sh in lab["shots"] if sh["end"] > s and sh["start"] < s + length]
        labels.append({"shots": shots, **{k: lab[k][s:s + length] for k in ("box", "visible", "world_xy")}})
    return {**prep, "T": length, "groups": groups, "styles": prep["styles"][kept], "times": prep["times"][kept],
            "labels": labels}


@torch.no_grad()
def draw(prep: dict, device="cpu", max_frames: int = 256) -> torch.Tensor:
    """The device half: per-frame parameters -> video [B, T, 3, H, W] float32 in [0, 1]."""
    B, T, height, width = prep["B"], prep["T"], prep["H"], prep["W"]
    device = torch.device(device)
    out = torch.empty(B * T, 3, height, width, device=device)
    for scene, subject, motion, idx, cat in prep["groups"]:
        for s in range(0, len(idx), max_frames):
            sl = slice(s, s + max_frames)
            p = {k: torch.as_tensor(v[sl], device=device, dtype=torch.int64 if k == "seed_i" else torch.float32)
                 for k, v in cat.items()}
            p["motion_run"] = motion == "run"
            out[torch.as_tensor(idx[sl], device=device)] = render_group(p, scene, subject, height, width)
    t_all = torch.as_tensor(prep["times"], device=device)
    styles = prep["styles"]
    for st in STYLES:
        if st == "flat":
            continue
        sel = np.nonzero(styles == st)[0]
        for s in range(0, len(sel), max_frames):
            ii = torch.as_tensor(sel[s:s + max_frames], device=device)
            out[ii] = STYLE_FN[st](out[ii], t_all[ii])
    return out.view(B, T, 3, height, width)


def render_clips(specs: list[ClipSpec], height: int = 144, width: int = 256, device="cpu",
                 max_frames: int = 256, with_labels: bool = True):
    """Render clips (all the same length). Returns video [B, T, 3, H, W] float32 in [0, 1] and,
    per clip, a label dict: its shots (attributes and frame range), per-frame subject boxes in
    pixels, visibility, and world positions."""
    prep = prepare(specs, height, width, with_labels)
    return draw(prep, device, max_frames), prep["labels"]


def sample_batch(base_seed: int, step: int, batch: int, frames: int, mode: str = "train",
                 heldout=None, cut_prob: float = 0.15, fixed: dict | None = None, groups: int = 0):
    """The specs and captions of training step `step`: a pure function of (base_seed, step).

    groups > 0 splits the batch into that many runs of clips, and each run's first shots share
    the subject, scene and motion of the run's first clip. The renderer draws one code path per
    (scene, subject, motion), so its kernel launches fall with the number of distinct triples in
    a batch; time, weather, colour, camera, style and seeds still vary clip by clip."""
    if groups > 0 and mode != "train":
        raise ValueError("grouped batches are for training: held-out sampling picks its own triples")
    heldout = load_heldout() if heldout is None else heldout
    specs, caps = [], []
    run_len = -(-batch // groups) if groups > 0 else batch
    run_fixed = fixed
    for i in range(batch):
        seed = step_seed(base_seed, step, i)
        if groups > 0 and i % run_len == 0:
            run_fixed = fixed
        spec = sample_clip(seed, frames, heldout, mode, cut_prob, run_fixed)
        if groups > 0 and i % run_len == 0:
            # the run's triple comes from a shot the sampler accepted, so it admits a clip even
            # where a held-out combination names two of its three attributes
            first = spec.shots[0]
            run_fixed = {**(fixed or {}), "subject": first.subject, "scene": first.scene, "motion": first.motion}
        specs.append(spec)
        caps.append(caption_clip(spec, np.random.default_rng([seed, 1])))
    return specs, caps
