#!/usr/bin/env python3
"""A PNG strip of sample frames for the model card: one row per prompt, frames evenly spaced in time.

  python strip.py --model ../kinema-tiny --out ../kinema-tiny/samples.png [--prompt TEXT ...]
  python strip.py --model ../kinema-tiny --prompts prompts.jsonl --first 4 --reference --out s.png

Generates with the same sampler as the eval command (measure/generate.py). With --reference (prompt
files only: they carry the clip spec) each generated row is followed by the rendered clip the prompt
describes. The prompts, row by row, go to a JSON file beside the PNG.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from measure.generate import (clip_chunks, generate, guidance_to_use, is_flow_dit, load_generator,  # noqa: E402
                              steps_to_use)
from measure.prompts import read_prompts, spec_of  # noqa: E402
from world.clips import render_clips  # noqa: E402
from world.preview import contact_sheet, write_png  # noqa: E402
from world.spec import FPS  # noqa: E402

# The examples, in the grammar's words.
SHOWCASE = [
    "A ginger cat walks through a garden full of flowers during the day. Tracking shot, flat cartoon style.",
    "A red-clad skier jumps off a ramp on a snowy slope at sunset. The camera follows it.",
    "Static shot of a basketball bouncing off the rim and backboard on a basketball court at night.",
    "A snowboarder in a blue outfit rides down the slope in falling snow, tracking shot, manga ink style.",
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (manifest.json) or train.py run folder")
    ap.add_argument("--out", required=True, help="PNG path; the prompts go to the same name with .json")
    ap.add_argument("--prompt", action="append", help="a prompt (repeat for more rows); default: a showcase list")
    ap.add_argument("--prompts", help="prompt file (JSONL, measure/prompts.py) instead of --prompt")
    ap.add_argument("--first", type=int, default=4, help="with --prompts: how many rows")
    ap.add_argument("--reference", action="store_true", help="with --prompts: a rendered row under each generated one")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--steps", type=int, default=None,
                    help="Euler steps per chunk (default: the model's training.sampler_steps, else 2)")
    ap.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance for a flow DiT (default: the model's training.sampler_guidance, "
                         "else 1 = none; evaluate.py --guidance)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed of --prompt rows (prompt files carry their own)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reference and not args.prompts:
        ap.error("--reference needs --prompts (a free-text prompt has no clip spec to render)")
    if args.guidance is not None and not args.guidance > 0:
        ap.error(f"--guidance {args.guidance}: give a scale > 0 (1 = none)")
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tok, info = load_generator(Path(args.model), dev)
    steps, steps_from = steps_to_use(args.steps, info)
    guidance, guidance_from = guidance_to_use(args.guidance, info)
    print(f"Euler steps per chunk: {steps} ({steps_from}); guidance {guidance:g} ({guidance_from})")
    entries = read_prompts(args.prompts)[:args.first] if args.prompts else [
        {"prompt": p, "seed": args.seed + i} for i, p in enumerate(args.prompt or SHOWCASE)]
    frames = round(args.seconds * FPS)
    video = generate(model, tok, [e["prompt"] for e in entries], [e["seed"] for e in entries],
                     clip_chunks(model, args.seconds), steps, guidance=guidance,
                     flow_dit=is_flow_dit(info))[:, :frames].cpu()
    rows = [{"row": i, "kind": "generated", "prompt": e["prompt"]} for i, e in enumerate(entries)]
    if args.reference:
        vc = model.cfg.video
        specs = [spec_of(e) for e in entries]
        ref, _ = render_clips(specs, vc.height, vc.width, with_labels=False)
        # generated, rendered, generated, rendered, ... (a rendered row shows the spec's own length)
        n = min(frames, ref.shape[1])
        video = torch.stack([video[:, :n], ref[:, :n]], dim=1).flatten(0, 1)
        rows = [{"row": 2 * i + k, "kind": kind, "prompt": e["prompt"]} for i, e in enumerate(entries)
                for k, kind in enumerate(("generated", "rendered"))]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(str(out), contact_sheet(video, args.cols))
    meta = {"model": str(args.model), "model_id": info["id"], "trained": info["trained"], "steps": steps,
            "guidance": guidance, "seconds": frames / FPS, "cols": args.cols, "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out} ({len(rows)} rows x {args.cols} frames) and {out.with_suffix('.json')}")
    return meta


if __name__ == "__main__":
    main()
