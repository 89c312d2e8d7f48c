"""What the classifier predicts: one head per clip attribute, with labels per frame (a cut changes
them mid-clip), and frames without a subject, made by moving the subject out of the world.

The subject head has an extra class, "none", so the classifier can say that a frame shows only
scenery: that is what subject persistence counts as a failure (a subject that dissolves into the
background), not just a subject that turns into another one.
"""
from __future__ import annotations

import numpy as np

from world.clips import draw, prepare, window
from world.spec import (ALL_MOTIONS, CAMERAS, COLOUR_NAMES, SCENES, STYLES, SUBJECTS, TIMES, WEATHERS,
                        load_heldout, sample_clip, step_seed)

NONE = "none"
ATTRS = {
    "subject": SUBJECTS + [NONE],
    "colour": COLOUR_NAMES,
    "motion": ALL_MOTIONS,
    "scene": SCENES,
    "time": TIMES,
    "weather": WEATHERS,
    "camera": CAMERAS,
    "style": STYLES,
}
# Attributes of the subject itself: undefined on a frame that does not show it.
SUBJECT_ATTRS = ("colour", "motion")
IGNORE = -100  # cross_entropy's ignore_index
# What a style draws away: manga ink is greyscale screentone on paper (world/render.style_manga), so
# no frame of it shows the subject's colour. Such labels are neither trained on nor scored.
HIDDEN_BY_STYLE = {"manga": ("colour",)}
AWAY = 1.0e4  # world units: far outside any camera's view, shadow and launch tower included


def hidden(attrs: dict) -> tuple[str, ...]:
    """The attributes of a shot (its attrs() or label dict) that its style makes invisible."""
    return HIDDEN_BY_STYLE.get(attrs["style"], ())


def remove_subject(prep: dict, clip: int, start: int) -> None:
    """Move clip `clip`'s subject out of the world from frame `start` on (in place, on the output
    of world.clips.prepare). Everything the renderer draws for a subject is placed relative to its
    x, so the frame keeps its scene, light, weather, style and camera and loses only the subject."""
    T = prep["T"]
    for _scene, _subject, _motion, idx, cat in prep["groups"]:
        sel = (idx // T == clip) & (idx % T >= start)
        cat["x"][sel] += AWAY


def frame_labels(labels: list[dict], T: int, empty_from: list[int | None] | None = None) -> dict:
    """Per-frame class indices {attribute: int64 [B, T]} from prepare()'s labels. Frames whose
    subject is out of view (or removed from `empty_from[b]` on) are subject "none", and their
    colour and motion are IGNORE; so is what a shot's style hides (HIDDEN_BY_STYLE)."""
    out = {a: np.full((len(labels), T), IGNORE, np.int64) for a in ATTRS}
    for b, lab in enumerate(labels):
        for sh in lab["shots"]:
            for a, vocab in ATTRS.items():
                out[a][b, sh["start"]:sh["end"]] = vocab.index(sh[a])
            for a in hidden(sh):
                out[a][b, sh["start"]:sh["end"]] = IGNORE
        gone = ~np.asarray(lab["visible"], dtype=bool)
        if empty_from is not None and empty_from[b] is not None:
            gone[empty_from[b]:] = True
        out["subject"][b, gone] = ATTRS["subject"].index(NONE)
        for a in SUBJECT_ATTRS:
            out[a][b, gone] = IGNORE
    return out


def render_labelled(specs, height: int, width: int, device="cpu", empty_from=None, starts=None,
                    frames: int | None = None):
    """Video [B, T, 3, H, W] and per-frame labels, with the subject removed where asked. With
    `starts` and `frames`, only those windows of the clips are drawn (T = frames) and
    `empty_from` counts from each window's start."""
    prep = prepare(specs, height, width, with_labels=True)
    if starts is not None:
        prep = window(prep, starts, frames or prep["T"])
    for b, start in enumerate(empty_from or []):
        if start is not None:
            remove_subject(prep, b, start)
    return draw(prep, device), frame_labels(prep["labels"], prep["T"], empty_from)


def classifier_specs(base_seed: int, step: int, batch: int, frames: int, heldout=None,
                     heldout_share: float = 0.15, empty_share: float = 0.1, cut_prob: float = 0.15,
                     source_frames: int | None = None):
    """The clips of classifier step `step`, a pure function of (base_seed, step) like the
    generator's data. Unlike the generator, the classifier does see the held-out combinations
    (a share `heldout_share`): it is the measuring instrument, and its own generalisation must not
    be what the held-out report measures. Returns (specs, empty_from, starts): `empty_from[b]` is
    the frame from which clip b's window is without its subject (None: never; 0 for half of those
    that are). Clips are `source_frames` long (default `frames`) and the classifier sees frames
    starts[b] .. starts[b] + frames of them (world.clips.window)."""
    heldout = load_heldout() if heldout is None else heldout
    source_frames = frames if source_frames is None else source_frames
    if source_frames < frames:
        raise ValueError(f"a window of {frames} frames does not fit a clip of {source_frames}")
    specs, empty_from, starts = [], [], []
    for i in range(batch):
        seed = step_seed(base_seed, step, i)
        rng = np.random.default_rng([seed, 3])
        mode = "heldout" if rng.random() < heldout_share else "train"
        specs.append(sample_clip(seed, source_frames, heldout, mode, cut_prob))
        empty = rng.random() < empty_share
        empty_from.append((0 if rng.random() < 0.5 else int(rng.integers(frames))) if empty else None)
        starts.append(int(rng.integers(source_frames - frames + 1)) if source_frames > frames else 0)
    return specs, empty_from, starts
