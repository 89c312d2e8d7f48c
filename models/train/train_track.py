#!/usr/bin/env python3
"""Grow a trained classifier by a track (measure/camera_track.py, colour_track.py, motion_track.py) and
train only that branch, with the rest frozen: every rendered clip is read once by the frozen
classifier and its 2-D maps and every head's logits are cached, so training costs what rendering
does once, not per step.

  python train_track.py --track camera --grow-from runs/main/classifier --run runs/cls-cam \\
      --clips 480 --frames 64 --source-frames 240 --test-clips 48 --steps 2000 --threads 2

  <run>/track-cache/train-*.pt, test-*.pt   the cached maps (f16), every head's base logits and
                                            labels, one file per rendered batch; a rerun reuses
                                            the files it finds
  <run>/classifier/                          the grown classifier, as train_classifier.py saves it

It prints the track's attribute accuracy of the held-out test clips (whole --test-frames clips, as
the eval reads them) before and after training (and every --eval-every steps): per frame, per
single-shot clip and per class. --cache points several runs (other steps, --weight-decay,
--map-dropout, the other track) at one cache, so trying them costs no rendering: a track changes
only its own attribute's logits, so the maps and the base logits a track trains on are the same
for every classifier grown from one base that lacks that track.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from measure.attributes import ATTRS, IGNORE  # noqa: E402
from measure.classifier import (TRACKED, ClassifierConfig, grow_classifier, load_classifier,  # noqa: E402
                                save_classifier)
from measure.metrics import clip_class  # noqa: E402
from train_classifier import batch as classifier_batch  # noqa: E402
from train_io import has_checkpoint  # noqa: E402
from world.spec import load_heldout  # noqa: E402

TEST_SEED = 4099  # the test clips' seed stream, apart from every training stream


@torch.no_grad()
def cache_batches(model, kind: str, folder: Path, count: int, batch: int, frames: int, source_frames: int,
                  seed: int, first_step: int, heldout) -> list[Path]:
    """Render `count` labelled clips in batches, read them with the frozen `model` and cache what
    the track trains on. Batch i is classifier step first_step + i of seed `seed`'s data stream."""
    folder.mkdir(parents=True, exist_ok=True)
    args = SimpleNamespace(seed=seed, batch=batch, frames=frames, source_frames=[source_frames])
    paths = [folder / f"{kind}-{i:04d}.pt" for i in range((count + batch - 1) // batch)]
    t0 = time.time()
    for i, path in enumerate(paths):
        if path.exists():
            continue
        video, labels = classifier_batch(args, model.cfg, first_step + i, heldout, "cpu")
        h, maps = model.features_and_maps(video, keep_maps=True)
        heads = model.add_tracks(model.head_logits(h), maps)
        tmp = path.with_suffix(".tmp")
        # every head's logits and labels, so that a track for any attribute can train on the cache
        torch.save({"maps": maps.half(), **{f"base.{a}": lg for a, lg in heads.items()},
                    **{f"label.{a}": lab.long() for a, lab in labels.items()}}, tmp)
        os.replace(tmp, path)
        print(f"cached {kind} batch {i + 1}/{len(paths)} ({batch} clips, {frames} frames of {source_frames}) "
              f"in {time.time() - t0:.0f} s", flush=True)
    return paths


def load_cache(paths: list[Path]) -> dict:
    parts = [torch.load(p) for p in paths]
    keys = set.intersection(*(set(p) for p in parts))  # caches from before every head was kept mix in
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k in keys}


@torch.no_grad()
def track_report(attr: str, track, data: dict, chunk: int = 8) -> dict:
    """`attr`'s accuracy of the base logits and of base + track: per labelled frame, per clip whose
    frames all carry one label (clip_class, as the eval reads clips), and per class."""
    classes = ATTRS[attr]
    out = {}
    for name, use in (("base", False), ("track", True)):
        logits = []
        for s in range(0, data["maps"].shape[0], chunk):
            lg = data[f"base.{attr}"][s:s + chunk]
            logits.append(lg + track(data["maps"][s:s + chunk]) if use else lg)
        logits = torch.cat(logits)
        lab = data[f"label.{attr}"]
        keep = lab != IGNORE
        per_frame = float((logits.argmax(-1) == lab)[keep].float().mean())
        right, per_class = [], {c: [] for c in classes}
        for b in range(lab.shape[0]):
            labs = lab[b][keep[b]].unique()
            if len(labs) != 1:
                continue  # a cut clip (the eval judges single shots) or one with no label at all
            ok = clip_class(logits[b][keep[b]]) == int(labs[0])
            right.append(ok)
            per_class[classes[int(labs[0])]].append(ok)
        clips = float(np.mean(right)) if right else float("nan")
        out[name] = {"frames": per_frame, "clips": clips, "n_clips": len(right),
                     "per_class": {c: (f"{sum(v)}/{len(v)}" if v else "-") for c, v in per_class.items()}}
    return out


def print_report(head: str, rep: dict) -> None:
    for name, r in rep.items():
        print(f"{head} {name}: frames {r['frames']:.3f}, clips {r['clips']:.3f} of {r['n_clips']}, "
              + ", ".join(f"{c} {v}" for c, v in r["per_class"].items()), flush=True)


def class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Per-class loss weights, labelled frames / (classes present x that class's frames): every
    class present weighs the same in the loss and the weighted frames still sum to the frames; a
    class with no frames gets weight 0."""
    counts = torch.bincount(labels[labels != IGNORE].flatten(), minlength=classes).float()
    present = (counts > 0).sum()
    return torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), torch.zeros(()))


def train_track(attr: str, track, data: dict, steps: int, batch: int, lr: float, seed: int,
                weight_decay: float = 0.01, map_dropout: float = 0.0, balance: bool = False,
                every=None) -> list[float]:
    """AdamW on random cached clips, on `attr`'s labels. `map_dropout` zeroes that share of the
    cached map's values per step (the maps are fixed, so without it every epoch shows the track the
    very same inputs); `balance` weighs each class's frames by the inverse of its share of the
    cache's frames; `every` = (n, fn) calls fn(step) with the track in eval mode every n steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(track.parameters(), lr=lr, weight_decay=weight_decay)
    base, labels = data[f"base.{attr}"], data[f"label.{attr}"]
    n, losses = data["maps"].shape[0], []
    weight = class_weights(labels, len(ATTRS[attr])) if balance else None
    track.train()
    for step in range(steps):
        idx = torch.randint(n, (batch,), generator=gen)
        if not (labels[idx] != IGNORE).any():
            continue  # no labelled frame (all manga, say): the loss would be 0/0
        maps = data["maps"][idx].float()
        if map_dropout:
            keep = torch.rand(maps.shape, generator=gen) >= map_dropout
            maps = maps * keep / (1.0 - map_dropout)
        logits = base[idx] + track(maps)
        loss = F.cross_entropy(logits.flatten(0, 1), labels[idx].flatten(), weight=weight, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            print(f"track step {step + 1}: loss {np.mean(losses[-100:]):.4f}", flush=True)
        if every and (step + 1) % every[0] == 0 and step + 1 < steps:
            track.eval()
            every[1](step + 1)
            track.train()
    track.eval()
    return losses


def grown_by(trained, attr: str, dilations: list):
    """`trained` grown by `attr`'s track, everything frozen but that track."""
    if getattr(trained.cfg, f"{attr}_track"):
        raise ValueError(f"it has a {attr} track already")
    extra = {f"{attr}_track": True if attr == "colour" else list(dilations)}
    model = grow_classifier(trained, ClassifierConfig(**{**dataclasses.asdict(trained.cfg), **extra})).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    track = model.tracks()[attr]
    for p in track.parameters():
        p.requires_grad_(True)
    return model, track


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--track", required=True, choices=list(TRACKED), help="the track to grow and train")
    ap.add_argument("--grow-from", required=True, metavar="CLASSIFIER",
                    help="a trained classifier (checkpoint or run folder)")
    ap.add_argument("--run", required=True, help="a fresh run folder for the grown classifier and the cache")
    ap.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4, 8],
                    help="the camera or motion track's temporal convs, one per dilation (default 1 2 4 8: 61 frames)")
    ap.add_argument("--clips", type=int, default=480, help="training clips to render and cache")
    ap.add_argument("--frames", type=int, default=64, help="frames per training window")
    ap.add_argument("--source-frames", type=int, default=240, help="clip length the windows are cut from")
    ap.add_argument("--test-clips", type=int, default=48, help="held-out clips, read whole")
    ap.add_argument("--test-frames", type=int, default=240, help="frames per held-out clip")
    ap.add_argument("--render-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000, help="track training steps on the cache")
    ap.add_argument("--batch", type=int, default=32, help="cached clips per track step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01, help="AdamW's decoupled weight decay")
    ap.add_argument("--map-dropout", type=float, default=0.0,
                    help="share of the cached maps' values zeroed per training step (0 to below 1)")
    ap.add_argument("--balance", action="store_true",
                    help="weigh the classes' frames so that each class counts the same in the loss")
    ap.add_argument("--eval-every", type=int, default=0, metavar="N",
                    help="also print the held-out report every N steps (0: only before and after)")
    ap.add_argument("--cache", help="the cache folder (default <run>/track-cache); runs grown from one base "
                                    "with the same clip settings can share one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    for name in ("clips", "frames", "test_clips", "test_frames", "render_batch", "batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} takes a whole number >= 1")
    if args.steps < 0 or args.eval_every < 0 or min(args.dilations) < 1:
        ap.error("--steps and --eval-every take whole numbers >= 0 and --dilations whole numbers >= 1")
    if not 0.0 <= args.map_dropout < 1.0 or args.weight_decay < 0.0:
        ap.error("--map-dropout takes a share from 0 to below 1 and --weight-decay a number >= 0")
    if args.source_frames < args.frames:
        ap.error(f"--source-frames must not be shorter than --frames ({args.frames})")
    if args.threads:
        torch.set_num_threads(args.threads)
    run, attr = Path(args.run), args.track
    if has_checkpoint(run / "classifier"):
        raise SystemExit(f"{run / 'classifier'} already holds a classifier; give another --run folder")
    trained, state = load_classifier(Path(args.grow_from))
    try:
        model, track = grown_by(trained, attr, args.dilations)
    except ValueError as e:
        raise SystemExit(f"--grow-from {args.grow_from}: {e}") from None
    print(f"grew {args.grow_from} (step {state['step']}) by a {attr} track"
          + (f", dilations {args.dilations}" if attr != "colour" else "")
          + f": {sum(p.numel() for p in track.parameters()):,} parameters to train, the rest frozen", flush=True)
    heldout, cache = load_heldout(), Path(args.cache) if args.cache else run / "track-cache"
    # The training windows continue the classifier's own data stream past its step: unseen clips.
    train_paths = cache_batches(trained, "train", cache, args.clips, args.render_batch, args.frames,
                                args.source_frames, args.seed, state["step"], heldout)
    test_paths = cache_batches(trained, "test", cache, args.test_clips, args.render_batch, args.test_frames,
                               args.test_frames, TEST_SEED, 0, heldout)
    train_data, test_data = load_cache(train_paths), load_cache(test_paths)
    print_report("test before", track_report(attr, track, test_data))
    every = (args.eval_every, lambda step: print_report(f"test at {step}", track_report(attr, track, test_data)))
    losses = train_track(attr, track, train_data, args.steps, args.batch, args.lr, args.seed, args.weight_decay,
                         args.map_dropout, args.balance, every if args.eval_every else None)
    print_report("train after", track_report(attr, track, train_data))
    print_report("test after", track_report(attr, track, test_data))
    # what earlier tracks were trained on stays in the state beside this one's
    earlier = {k: v for k, v in state.items() if k.endswith("_track")}
    save_classifier(run / "classifier", model, {
        "stage": "classifier", "step": state["step"], "toy": state.get("toy", False), "seed": state.get("seed", 0),
        "sessions": state["sessions"], "grown_from": f"{args.grow_from} at step {state['step']}", **earlier,
        f"{attr}_track": {"clips": args.clips, "frames": args.frames, "source_frames": args.source_frames,
                          "steps": args.steps, "batch": args.batch, "lr": args.lr,
                          "weight_decay": args.weight_decay, "map_dropout": args.map_dropout,
                          "balance": args.balance,
                          "last_loss": float(np.mean(losses[-100:])) if losses else None}})
    print(f"saved {run / 'classifier'}")


if __name__ == "__main__":
    main()
