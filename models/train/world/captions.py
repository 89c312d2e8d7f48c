"""Captions from a small grammar: synonyms, optional attributes and varied clause order, so the
model learns the attributes rather than one sentence template. Every phrase is true of the
rendered pixels (the verbs match what sim.py simulates)."""
from __future__ import annotations

import numpy as np

from .spec import CHUNK_FRAMES, ClipSpec, Shot

NOUNS = {
    "ball": ["ball", "rubber ball", "bouncy ball", "beach ball"],
    "basketball": ["basketball", "basketball", "ball"],
    "cat": ["cat", "kitten", "kitty", "house cat"],
    "skier": ["skier", "skier", "downhill skier"],
    "snowboarder": ["snowboarder", "snowboarder", "boarder"],
    "skater": ["speed skater", "ice skater", "skater"],
    "car": ["car", "car", "automobile", "little car"],
    "bird": ["bird", "small bird", "songbird"],
    "fish": ["fish", "tropical fish", "little fish"],
    "rocket": ["rocket", "space rocket", "rocket ship"],
}
COLOUR_WORDS = {
    "red": ["red"], "orange": ["orange"], "yellow": ["yellow"], "green": ["green"], "blue": ["blue"],
    "purple": ["purple", "violet"], "pink": ["pink"], "white": ["white"], "black": ["black"],
    "brown": ["brown"], "grey": ["grey", "gray"],
}
CAT_COLOUR = {"orange": ["orange", "ginger"], "grey": ["grey", "gray", "tabby grey"]}
PEOPLE = {"skier", "snowboarder", "skater"}

# (finite verb phrase, gerund phrase)
MOTION_WORDS = {
    "bounce": [("bounces", "bouncing"), ("bounces up and down", "bouncing up and down"), ("is bouncing", "bouncing")],
    "roll": [("rolls", "rolling"), ("rolls along the ground", "rolling along the ground"), ("is rolling", "rolling")],
    "throw": [("is thrown and bounces", "being thrown and bouncing"), ("flies in an arc and bounces", "flying in an arc and bouncing"),
              ("is tossed through the air", "being tossed through the air")],
    "shoot": [("is shot at the hoop", "being shot at the hoop"), ("bounces off the rim and backboard", "bouncing off the rim and backboard"),
              ("flies toward the basket", "flying toward the basket")],
    "walk": [("walks", "walking"), ("is walking", "walking"), ("strolls", "strolling")],
    "run": [("runs", "running"), ("is running", "running"), ("dashes", "dashing")],
    "jump": [("jumps off a ramp", "jumping off a ramp"), ("launches off a kicker", "launching off a kicker"), ("takes a big jump", "taking a big jump")],
    "ride": [("rides down the slope", "riding down the slope"), ("carves through the snow", "carving through the snow"), ("is snowboarding", "snowboarding")],
    "skate": [("skates", "skating"), ("races across the ice", "racing across the ice"), ("speed skates", "speed skating")],
    "drive": [("drives", "driving"), ("drives along", "driving along"), ("speeds along", "speeding along")],
    "fly": [("flies", "flying"), ("is flying", "flying"), ("flaps its wings and flies", "flapping its wings")],
    "swim": [("swims", "swimming"), ("is swimming", "swimming"), ("glides through the water", "gliding through the water")],
    "launch": [("launches", "launching"), ("lifts off", "lifting off"), ("blasts off into the sky", "blasting off into the sky")],
}
HORIZONTAL = {"walk", "run", "roll", "throw", "jump", "ride", "skate", "drive", "fly", "swim"}
DIRECTION = {1: ["from left to right", "to the right", "rightward"], -1: ["from right to left", "to the left", "leftward"]}
SPEED = {"slow": ["slowly", "gently"], "fast": ["quickly", "fast"], "normal": [""]}
SCENE_WORDS = {
    "garden": ["in a spring garden", "through a garden full of flowers", "among cherry blossoms in a garden"],
    "park": ["in a park", "on the grass in a park", "in a green park"],
    "snow_slope": ["on a snowy slope", "on a ski slope", "on a snowy mountain"],
    "ice_rink": ["on an ice rink", "at an outdoor skating rink", "on the ice"],
    "court": ["on a basketball court", "at an outdoor court", "on the court"],
    "street": ["on a city street", "on a street in town", "in the city"],
    "beach": ["on a beach", "on the sand by the sea", "at the beach"],
    "underwater": ["underwater", "in the ocean", "under the sea"],
    "desert": ["in the desert", "in a desert", "among desert mesas"],
}
TIME_WORDS = {"day": ["during the day", "in daylight", "in the daytime"], "sunset": ["at sunset", "at dusk", "in the evening light"],
              "night": ["at night", "at nighttime", "under the night sky"]}
WEATHER_WORDS = {"clear": ["under a clear sky", "in clear weather"], "snow": ["while snow falls", "in falling snow", "as it snows"],
                 "rain": ["in the rain", "while it rains", "in a rainstorm"], "fog": ["in thick fog", "on a foggy day", "in the mist"]}
# Noun phrases can head "<phrase> of a red ball bouncing ..." and stand alone; clauses ("the
# camera pans left") are sentences, so they never head an "of" phrase.
CAMERA_SHOTS = {
    "static": ["static shot", "fixed-camera shot", "locked-off shot"],
    "pan": ["panning shot to the {pd}", "slow pan {pd}"],
    "zoom": ["slow zoom {zd}", "zoom-{zd} shot"],
    "follow": ["tracking shot", "follow cam", "follow shot"],
}
CAMERA_CLAUSES = {
    "static": ["the camera stays still"],
    "pan": ["the camera pans {pd}"],
    "zoom": ["the camera zooms {zd}", "zooming {zd}"],
    "follow": ["the camera follows it"],
}
CAMERA_WORDS = {c: CAMERA_SHOTS[c] + CAMERA_CLAUSES[c] for c in CAMERA_SHOTS}
STYLE_WORDS = {
    "flat": ["flat vector illustration", "flat cartoon style", "simple flat colors"],
    "manga": ["manga ink style", "black and white manga", "drawn like a manga panel"],
    "vangogh": ["in the style of Van Gogh", "Van Gogh swirls", "painted with swirling brush strokes"],
    "pixel": ["pixel art", "8-bit pixel art", "retro pixel style"],
    "neon": ["neon glow", "glowing neon lines", "neon outline style"],
}
# Whole sentences: the next shot's caption follows as a sentence of its own.
CUT_WORDS = ["Then it cuts to another shot.", "Cut to a new shot.", "The scene cuts.", "Then comes a new shot."]


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def _np(rng, shot: Shot) -> str:
    noun = _pick(rng, NOUNS[shot.subject])
    if shot.subject == "basketball":
        return "a " + noun
    if shot.subject in PEOPLE:
        cw = _pick(rng, COLOUR_WORDS[shot.colour])
        form = int(rng.integers(3))
        if form == 0:
            return f"a {noun} in a {cw} outfit"
        if form == 1:
            return f"a {noun} wearing {cw}"
        return f"a {cw}-clad {noun}"
    words = CAT_COLOUR.get(shot.colour, COLOUR_WORDS[shot.colour]) if shot.subject == "cat" else COLOUR_WORDS[shot.colour]
    adj = _pick(rng, words)
    art = "an" if adj[0] in "aeiou" else "a"
    return f"{art} {adj} {noun}"


def caption_shot(shot: Shot, rng: np.random.Generator, full: bool = False) -> str:
    """One sentence or two. `full` mentions every attribute (for evaluation prompts); otherwise
    weak defaults (clear weather, daytime, flat style) are often left unsaid, as people do."""
    fin, ger = _pick(rng, MOTION_WORDS[shot.motion])
    np_ = _np(rng, shot)
    adv = []
    if shot.motion in HORIZONTAL and (full or rng.random() < 0.6):
        adv.append(_pick(rng, DIRECTION[shot.direction]))
    sp = _pick(rng, SPEED[shot.speed])
    tails = [_pick(rng, SCENE_WORDS[shot.scene])]
    if full or shot.time != "day" or rng.random() < 0.4:
        tails.append(_pick(rng, TIME_WORDS[shot.time]))
    if full or shot.weather != "clear" or rng.random() < 0.2:
        tails.append(_pick(rng, WEATHER_WORDS[shot.weather]))
    order = rng.permutation(len(tails))
    tails = [tails[i] for i in order]
    form = int(rng.integers(3))
    cam = None
    if full or rng.random() < 0.8:
        words = CAMERA_SHOTS if form == 2 else CAMERA_WORDS
        cam = _pick(rng, words[shot.camera]).format(pd="right" if shot.pan_dir > 0 else "left",
                                                    zd="in" if shot.zoom_dir > 0 else "out")
    sty = None
    if full or shot.style != "flat" or rng.random() < 0.4:
        sty = _pick(rng, STYLE_WORDS[shot.style])

    if form == 0:  # "A red ball bounces slowly on a beach at night. Static shot, pixel art."
        core = " ".join(w for w in [np_, fin, sp if rng.random() < 0.5 else "", *adv, *tails] if w)
        extra = ", ".join(w for w in [cam, sty] if w)
        text = core[0].upper() + core[1:] + "." + (" " + extra[0].upper() + extra[1:] + "." if extra else "")
    elif form == 1:  # "Pixel art: at night, a red ball bounces on a beach, static shot."
        lead = tails.pop(0) if len(tails) > 1 else None
        core = " ".join(w for w in [np_, fin, *adv, *tails] if w)
        if lead:
            core = f"{lead}, {core}"
        parts = [core] + ([cam] if cam else [])
        text = ", ".join(parts) + "."
        if sty:
            text = f"{sty}: {text}"
        text = text[0].upper() + text[1:]
    else:  # "Static shot of a red ball bouncing on a beach at night, pixel art."
        head = cam if cam else "video"
        core = " ".join(w for w in [f"{head} of {np_}", ger, *adv, *tails] if w)
        text = core + (f", {sty}" if sty else "") + "."
        text = text[0].upper() + text[1:]
    return " ".join(text.split())


def caption_clip(spec: ClipSpec, rng: np.random.Generator, full: bool = False) -> dict:
    """{'text': the whole clip, 'shots': one caption per shot, 'chunks': one per 1 s chunk}."""
    shots = [caption_shot(s, rng, full) for s in spec.shots]
    text = shots[0]
    for c in shots[1:]:
        text += f" {_pick(rng, CUT_WORDS)} {c}"
    chunks = []
    for s, c in zip(spec.shots, shots):
        chunks += [c] * max(1, s.frames // CHUNK_FRAMES)
    return {"text": text, "shots": shots, "chunks": chunks}
