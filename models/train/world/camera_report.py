"""How visible each camera move is, from the simulator alone (no rendering): per camera class and
clip length, the median speed of the image at the frame edge (pan, tilt and zoom together) and of
the subject on screen, in pixels per frame at a given width.

  python -m world.camera_report [--frames 32 64 240] [--clips 400] [--width 128]

The attribute classifier sees each frame with its difference to the previous one, at 128 px wide,
so a move of a fraction of a pixel per frame is close to invisible to it over its short temporal
reach, whatever the caption says.
"""
from __future__ import annotations

import argparse

import numpy as np

from .sim import VIEW_W, simulate
from .spec import CAMERAS, load_heldout, sample_clip


def shot_speeds(shot, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame step: image speed at the frame edge and subject speed on screen (px/frame)."""
    s = simulate(shot)
    ppu = width / VIEW_W * s["zoom"]
    edge = (np.abs(np.diff(s["cam_x"])) + np.abs(np.diff(s["cam_y"]))) * ppu[1:] \
        + np.abs(np.diff(np.log(s["zoom"]))) * width / 2
    subject = np.abs(np.diff((s["x"] - s["cam_x"]) * ppu))
    return edge, subject


def report(frames: int, clips: int, width: int, seed: int = 0) -> dict:
    """{camera: {"clips", "edge", "subject"}}: medians over clips of each clip's median speed."""
    held = load_heldout()
    per: dict[str, list[tuple[float, float]]] = {c: [] for c in CAMERAS}
    for i in range(clips):
        shot = sample_clip(seed + i, frames, held, cut_prob=0.0).shots[0]
        edge, subject = shot_speeds(shot, width)
        per[shot.camera].append((float(np.median(edge)), float(np.median(subject))))
    return {c: {"clips": len(v), "edge": float(np.median([e for e, _ in v])) if v else None,
                "subject": float(np.median([s for _, s in v])) if v else None} for c, v in per.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 64, 240])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--width", type=int, default=128)
    args = ap.parse_args(argv)
    print(f"median px/frame at {args.width} px wide, {args.clips} single-shot clips per length")
    print(f"{'frames':>6s} {'camera':8s} {'clips':>5s} {'frame edge':>10s} {'subject':>8s}")
    out = {}
    for frames in args.frames:
        out[frames] = report(frames, args.clips, args.width)
        for cam, r in out[frames].items():
            if r["clips"]:
                print(f"{frames:6d} {cam:8s} {r['clips']:5d} {r['edge']:10.2f} {r['subject']:8.2f}")
    return out


if __name__ == "__main__":
    main()
