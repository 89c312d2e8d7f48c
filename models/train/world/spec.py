"""What a clip contains: the attribute vocabulary and a seeded sampler of clip specs.

A spec is plain data (ints, floats, strings) so it can be logged, captioned and re-rendered
bit-for-bit from its seed alone: nothing but the seed and the step has to travel between
sessions.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, asdict

import numpy as np

FPS = 16
CHUNK_FRAMES = 16  # one 1 s chunk of video; cuts land on chunk boundaries so per-chunk prompts work

SUBJECTS = ["ball", "basketball", "cat", "skier", "snowboarder", "skater", "car", "bird", "fish", "rocket"]
SCENES = ["garden", "park", "snow_slope", "ice_rink", "court", "street", "beach", "underwater", "desert"]
TIMES = ["day", "sunset", "night"]
WEATHERS = ["clear", "snow", "rain", "fog"]
CAMERAS = ["static", "pan", "zoom", "follow"]
STYLES = ["flat", "manga", "vangogh", "pixel", "neon"]
COLOURS = {
    "red": (0.86, 0.16, 0.14), "orange": (0.97, 0.52, 0.10), "yellow": (0.98, 0.84, 0.18),
    "green": (0.20, 0.70, 0.25), "blue": (0.15, 0.38, 0.90), "purple": (0.55, 0.25, 0.75),
    "pink": (0.96, 0.50, 0.70), "white": (0.95, 0.95, 0.95), "black": (0.10, 0.10, 0.11),
    "brown": (0.50, 0.30, 0.15), "grey": (0.55, 0.56, 0.58),
}
COLOUR_NAMES = list(COLOURS)

# Motions per subject. Each is something the simulator really does (see sim.py), so the
# caption's verb is always true of the pixels.
MOTIONS = {
    "ball": ["bounce", "roll", "throw"],
    "basketball": ["shoot"],
    "cat": ["walk", "run"],
    "skier": ["jump"],
    "snowboarder": ["ride", "jump"],
    "skater": ["skate"],
    "car": ["drive"],
    "bird": ["fly"],
    "fish": ["swim"],
    "rocket": ["launch"],
}
ALL_MOTIONS = sorted({m for ms in MOTIONS.values() for m in ms})

SUBJECT_SCENES = {
    "ball": ["park", "beach", "garden", "street", "court"],
    "basketball": ["court"],
    "cat": ["garden", "park", "street", "beach"],
    "skier": ["snow_slope"],
    "snowboarder": ["snow_slope"],
    "skater": ["ice_rink"],
    "car": ["street", "desert", "beach"],
    "bird": ["park", "beach", "garden", "street", "snow_slope"],
    "fish": ["underwater"],
    "rocket": ["desert"],
}
SUBJECT_COLOURS = {
    "ball": COLOUR_NAMES,
    "basketball": ["orange"],
    "cat": ["orange", "black", "white", "grey", "brown"],
    "skier": ["red", "blue", "yellow", "green", "purple", "black", "orange", "pink"],
    "snowboarder": ["red", "blue", "yellow", "green", "purple", "black", "orange", "pink"],
    "skater": ["red", "blue", "yellow", "green", "purple", "black", "orange"],
    "car": ["red", "blue", "yellow", "green", "white", "black", "grey", "orange", "purple"],
    "bird": ["blue", "red", "yellow", "black", "white", "green"],
    "fish": ["orange", "yellow", "blue", "red", "purple", "pink", "green"],
    "rocket": ["white", "red", "grey", "blue"],
}
SCENE_WEATHERS = {s: WEATHERS for s in SCENES}
SCENE_WEATHERS["underwater"] = ["clear"]
SCENE_WEATHERS["snow_slope"] = ["clear", "snow", "fog"]
SCENE_WEATHERS["ice_rink"] = ["clear", "snow", "fog"]
SCENE_WEATHERS["desert"] = ["clear", "fog", "rain"]

# Subjects that cross the whole frame in about a second: a locked-off or zooming camera would
# lose them at once, so they are filmed as sport is, with a pan or a tracking shot.
FAST = {"skier", "snowboarder", "skater", "car"}

# Fastest horizontal speed (world units/s, sim.py's ranges times the "fast" factor) per motion.
# A locked-off camera sees about 13 units at its widest, so longer or faster shots get a moving
# camera instead of losing their subject halfway through.
VMAX = {"walk": 1.3, "run": 3.9, "fly": 3.3, "swim": 1.7, "roll": 2.2, "throw": 3.0, "bounce": 0.5,
        "launch": 0.0, "shoot": 0.0}
STATIC_SPAN = 12.0

HELDOUT_PATH = os.path.join(os.path.dirname(__file__), "heldout.json")


def load_heldout(path: str = HELDOUT_PATH) -> list[dict]:
    with open(path) as f:
        return json.load(f)["combinations"]


@dataclass
class Shot:
    subject: str
    colour: str
    motion: str
    direction: int  # +1: left to right, -1: right to left
    scene: str
    time: str
    weather: str
    camera: str
    style: str
    frames: int
    seed: int  # drives the continuous parameters (speeds, positions, textures)
    speed: str = "normal"  # "slow" | "normal" | "fast" (relative to the subject's usual speed)
    zoom_dir: int = 1  # +1 zoom in, -1 zoom out (camera == "zoom")
    pan_dir: int = 1  # +1 camera pans right, -1 left (camera == "pan")

    def attrs(self) -> dict:
        return {k: getattr(self, k) for k in ("subject", "colour", "motion", "scene", "time", "weather", "camera", "style")}


@dataclass
class ClipSpec:
    shots: list[Shot] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def to_json(self) -> dict:
        return {"shots": [asdict(s) for s in self.shots]}


def matches(attrs: dict, combo: dict) -> bool:
    return all(attrs.get(k) == v for k, v in combo.items())


def is_heldout(attrs: dict, heldout: list[dict]) -> bool:
    return any(matches(attrs, c) for c in heldout)


def _choice(rng: np.random.Generator, xs, p=None):
    return xs[int(rng.choice(len(xs), p=p))]


def sample_shot(rng: np.random.Generator, frames: int, heldout: list[dict], mode: str = "train",
                fixed: dict | None = None, style: str | None = None) -> Shot:
    """One shot. mode "train" never returns a held-out combination; "heldout" always does.

    Rejection sampling keeps the marginals simple; held-out combos are pairs, so at most a few
    percent of draws are rejected.
    """
    fixed = dict(fixed or {})
    if mode == "heldout" and not fixed:
        fixed = dict(heldout[int(rng.integers(len(heldout)))])
    for _ in range(1000):
        subject = fixed.get("subject") or _choice(rng, SUBJECTS)
        scene = fixed.get("scene") or _choice(rng, SUBJECT_SCENES[subject])
        if scene not in SUBJECT_SCENES[subject]:
            raise ValueError(f"scene {scene} is not used with {subject}")
        colour = fixed.get("colour") or _choice(rng, SUBJECT_COLOURS[subject])
        motion = fixed.get("motion") or _choice(rng, MOTIONS[subject])
        time = fixed.get("time") or _choice(rng, TIMES, p=[0.5, 0.25, 0.25])
        ws = SCENE_WEATHERS[scene]
        if subject == "snowboarder" and "snow" in ws and "weather" not in fixed:
            weather = "snow" if rng.random() < 0.5 else _choice(rng, ws)
        else:
            weather = fixed.get("weather") or _choice(rng, ws, p=[0.4] + [0.6 / (len(ws) - 1)] * (len(ws) - 1) if len(ws) > 1 else None)
        if subject in FAST:
            camera = fixed.get("camera") or _choice(rng, CAMERAS, p=[0.0, 0.4, 0.0, 0.6])
            if camera in ("static", "zoom"):
                raise ValueError(f"{subject} moves too fast for a {camera} camera")
        else:
            camera = fixed.get("camera") or _choice(rng, CAMERAS, p=[0.35, 0.2, 0.2, 0.25])
        if camera == "static" and VMAX.get(motion, 99) * frames / FPS > STATIC_SPAN:
            if "camera" in fixed:
                continue
            camera = _choice(rng, ["pan", "follow"])
        st = fixed.get("style") or style or _choice(rng, STYLES, p=[0.4, 0.15, 0.15, 0.15, 0.15])
        shot = Shot(subject=subject, colour=colour, motion=motion, direction=int(rng.choice([-1, 1])),
                    scene=scene, time=time, weather=weather, camera=camera, style=st, frames=frames,
                    seed=int(rng.integers(2**31 - 1)), speed=_choice(rng, ["slow", "normal", "fast"], p=[0.25, 0.5, 0.25]),
                    zoom_dir=int(rng.choice([-1, 1])), pan_dir=int(rng.choice([-1, 1])))
        if subject in ("rocket", "basketball"):
            shot.direction = 1
        held = is_heldout(shot.attrs(), heldout)
        if mode == "train" and held:
            continue
        if mode == "heldout" and not held:
            continue
        return shot
    raise RuntimeError(f"could not sample a shot with mode={mode} fixed={fixed}")


def sample_clip(seed: int, frames: int, heldout: list[dict] | None = None, mode: str = "train",
                cut_prob: float = 0.15, fixed: dict | None = None) -> ClipSpec:
    """A clip of `frames` frames from one integer seed. Cut clips (2-3 shots) keep one style:
    a cut changes what is shown, not how it is drawn."""
    if heldout is None:
        heldout = load_heldout()
    rng = np.random.default_rng(seed)
    n_chunks = max(1, frames // CHUNK_FRAMES)
    n_shots = 1
    if n_chunks >= 2 and rng.random() < cut_prob and mode == "train":
        n_shots = int(min(n_chunks, rng.choice([2, 3], p=[0.7, 0.3])))
    if n_shots == 1:
        return ClipSpec([sample_shot(rng, frames, heldout, mode, fixed)])
    cuts = np.sort(rng.choice(np.arange(1, n_chunks), size=n_shots - 1, replace=False)) * CHUNK_FRAMES
    bounds = [0, *cuts.tolist(), frames]
    first = sample_shot(rng, bounds[1] - bounds[0], heldout, mode, fixed)
    shots = [first]
    for i in range(1, n_shots):
        shots.append(sample_shot(rng, bounds[i + 1] - bounds[i], heldout, mode, fixed, style=first.style))
    return ClipSpec(shots)


def step_seed(base_seed: int, step: int, index: int) -> int:
    """The seed of clip `index` of training step `step`: a pure function, so a resumed run
    sees exactly the data a continuous one would have."""
    ss = np.random.SeedSequence([base_seed, step, index])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)
