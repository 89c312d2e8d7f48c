"""The eval prompt list: captions from the world's grammar with their known attributes.

One JSON object per line: {"prompt", "attrs" (the 8 target attributes), "heldout" (the held-out
combination it realises, or null), "seed" (the spec's seed, also the generation noise seed),
"spec" (the whole clip spec, so --reference can render exactly what the prompt describes)}.
Prompts are single shots (no cuts) with every attribute said (captions' full=True), so each
target is something the prompt asked for.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from world.captions import caption_clip
from world.spec import FPS, ClipSpec, Shot, load_heldout, matches, sample_clip, step_seed


def _entry(spec: ClipSpec, seed: int, combo: dict | None) -> dict:
    text = caption_clip(spec, np.random.default_rng([seed, 1]), full=True)["text"]
    return {"prompt": text, "attrs": spec.shots[0].attrs(), "heldout": combo, "seed": seed,
            "spec": spec.to_json()}


def build_prompts(in_dist: int, per_heldout: int, seconds: int, seed: int = 0) -> list[dict]:
    """`in_dist` prompts drawn as training draws them (never a held-out combination), then
    `per_heldout` prompts for each combination of heldout.json."""
    held = load_heldout()
    frames = seconds * FPS
    out = []
    for i in range(in_dist):
        s = step_seed(seed, 0, i)
        out.append(_entry(sample_clip(s, frames, held, "train", cut_prob=0.0), s, None))
    for j, combo in enumerate(held):
        for k in range(per_heldout):
            s = step_seed(seed, 1 + j, k)
            spec = sample_clip(s, frames, held, "heldout", cut_prob=0.0, fixed=combo)
            assert matches(spec.shots[0].attrs(), combo)
            out.append(_entry(spec, s, combo))
    return out


def write_prompts(path: Path, prompts: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(p) + "\n" for p in prompts))


def read_prompts(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def spec_of(entry: dict, reseed: int | None = None) -> ClipSpec:
    """The entry's clip spec; with `reseed`, the same attributes with other continuous parameters
    (positions, speeds, textures): a fresh render of what the prompt describes."""
    shots = [Shot(**s) for s in entry["spec"]["shots"]]
    if reseed is not None:
        shots = [dataclasses.replace(s, seed=int(step_seed(reseed, entry["seed"], i))) for i, s in enumerate(shots)]
    return ClipSpec(shots)


def check_evals_match(prompts: list[dict], *evals: dict) -> None:
    """Raise ValueError unless every eval read the prompt list's clips, in its order: a per-clip
    reading is only meaningful against the prompt that asked for it."""
    counts = [len(e["per_prompt"]) for e in evals]
    if any(n != len(prompts) for n in counts):
        read = " and ".join(str(n) for n in counts)
        raise ValueError(f"the eval{'s' if len(evals) > 1 else ''} read {read} clips; the prompt list has {len(prompts)}")
    for i, p in enumerate(prompts):
        if any(e["per_prompt"][i]["prompt"] != p["prompt"] for e in evals):
            raise ValueError(f"prompt {i + 1} differs between the eval{'s' if len(evals) > 1 else ''} and the "
                             "prompt list: use the prompt file the eval read")
