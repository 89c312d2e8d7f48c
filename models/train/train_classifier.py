#!/usr/bin/env python3
"""Train the attribute classifier (measure/classifier.py) on rendered clips; resumable like train.py.

  python train_classifier.py --run runs/main --minutes 8 [--toy]
  python train_classifier.py --run runs/main --steps 300 [--toy]

  <run>/classifier/  weights (f32, one shard: ≈ 5 MB full size) + state.json (step, config, classes)
  <run>/log.jsonl    one record per logged step, stage "classifier": loss, accuracy per attribute

Every step renders new clips (step-tied seeds: the data of step s is a pure function of (seed, s)),
so the batch accuracy logged before each update is already an accuracy on unseen clips. With
--reuse K, K steps train on each rendered batch (batch s // K; rendering costs more than this small
net) and the logged accuracies come from each batch's first step only, still on unseen clips. As in
train.py no optimiser state travels: a resumed session restarts AdamW with a short warm-up.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from measure.attributes import IGNORE, classifier_specs, render_labelled  # noqa: E402
from measure.classifier import (AttributeClassifier, ClassifierConfig, grow_classifier,  # noqa: E402
                                load_classifier, save_classifier)
from train import lr_at  # noqa: E402
from train_io import JsonlLog, SaveRequests, add_session_args, has_checkpoint  # noqa: E402
from world.spec import load_heldout  # noqa: E402

SALT = 53  # keeps the classifier's clips apart from every generator stage's (train.STAGE_SALT)
# (batch, frames, lr) per scale. Full: estimates to tune on the H100, not measurements.
REAL = dict(batch=16, frames=32, lr=1e-3)
TOY = dict(batch=4, frames=16, lr=3e-3)


def losses_and_accuracy(logits: dict, labels: dict) -> tuple[torch.Tensor, dict, dict]:
    """Summed per-frame cross-entropy over the heads, and per-head loss and accuracy over the
    labelled frames (a head with no labelled frame in the batch is left out)."""
    total, loss, acc = 0.0, {}, {}
    for a, lg in logits.items():
        lab = labels[a]
        keep = lab != IGNORE
        if not bool(keep.any()):
            continue
        la = F.cross_entropy(lg.flatten(0, 1), lab.flatten(), ignore_index=IGNORE)
        total = total + la
        loss[a] = float(la.detach())
        acc[a] = float((lg.argmax(-1) == lab)[keep].float().mean())
    return total, loss, acc


def source_frames(args, step: int) -> int:
    """How long step `step`'s clips are before the classifier's window is cut from them: one of
    --source-frames, step-tied (one length per batch: the renderer prepares a batch at one length)."""
    choices = args.source_frames or [args.frames]
    return int(choices[np.random.default_rng([args.seed, step, 11]).integers(len(choices))])


def batch(args, cfg: ClassifierConfig, step: int, heldout, device):
    source = source_frames(args, step)
    specs, empty, starts = classifier_specs(args.seed * 1000 + SALT, step, args.batch, args.frames, heldout,
                                            source_frames=source)
    video, labels = render_labelled(specs, cfg.video_height, cfg.video_width, device, empty, starts, args.frames)
    # Mild pixel noise on some clips, so grain in generated frames is not read as a style.
    g = torch.Generator(device).manual_seed(args.seed * 1_000_003 + step)
    B = video.shape[0]
    amp = torch.rand(B, generator=g, device=device) * 0.03 * (torch.rand(B, generator=g, device=device) < 0.5)
    video = (video + torch.randn(video.shape, generator=g, device=device) * amp.view(-1, 1, 1, 1, 1)).clamp(0, 1)
    return video, {a: torch.as_tensor(v, device=device) for a, v in labels.items()}


def train(args) -> int:
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes every step
    run = Path(args.run)
    ckdir = run / "classifier"
    log = JsonlLog(run / "log.jsonl")
    step, sessions, grown_from = 0, 0, None
    torch.manual_seed(args.seed * 1000 + SALT)  # the initial weights
    reach = {k: v for k, v in (("diff_strides", args.diff_strides), ("temporal_dilations", args.temporal_dilations),
                                ("pool_grid", args.pool_grid), ("motion_probe", args.motion_probe)) if v is not None}
    if has_checkpoint(ckdir) and args.grow_from:
        raise SystemExit(f"{ckdir} already holds a classifier; --grow-from makes a fresh run's, so give another --run folder")
    if args.grow_from:
        trained, state = load_classifier(Path(args.grow_from), dev)
        step, sessions = state["step"], state["sessions"]
        grown_from = f"{args.grow_from} at step {step}"
        try:
            model = grow_classifier(trained, ClassifierConfig(**{**dataclasses.asdict(trained.cfg), **reach}))
        except ValueError as e:
            raise SystemExit(f"--grow-from {args.grow_from}: {e}") from None
        print(f"grew the classifier of {args.grow_from} (step {step}) into {ckdir}: "
              + ", ".join(f"{k} {getattr(trained.cfg, k)} -> {getattr(model.cfg, k)}" for k in reach
                          if getattr(trained.cfg, k) != getattr(model.cfg, k)))
    elif has_checkpoint(ckdir):
        model, state = load_classifier(ckdir, dev)
        step, sessions, grown_from = state["step"], state["sessions"], state.get("grown_from")
        differ = {k: v for k, v in reach.items() if getattr(model.cfg, k) != v}
        if differ:
            raise SystemExit(f"{ckdir} holds a classifier with other settings ({', '.join(f'{k}={getattr(model.cfg, k)}' for k in differ)}); "
                             f"train a fresh one in another --run folder")
        print(f"resuming the classifier at step {step} from {ckdir}")
    else:
        base = ClassifierConfig.toy() if args.toy else ClassifierConfig()
        model = AttributeClassifier(ClassifierConfig(**{**dataclasses.asdict(base), **reach})).to(dev)
    cfg = model.cfg
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    heldout = load_heldout()
    nparams = sum(p.numel() for p in model.parameters())
    print(f"classifier: {nparams / 1e6:.3f} M params, batch {args.batch} x {args.frames} frames rendered at "
          f"{cfg.video_width}x{cfg.video_height}, read at {cfg.input_width}x{cfg.input_height}, device {dev}")

    def save():
        save_classifier(ckdir, model, {"stage": "classifier", "step": step, "toy": args.toy, "seed": args.seed,
                                       "batch": args.batch, "frames": args.frames, "reuse": args.reuse,
                                       "source_frames": args.source_frames or [args.frames],
                                       "sessions": sessions + 1,
                                       **({"grown_from": grown_from} if grown_from else {})})
        print(f"saved {ckdir} at step {step}", flush=True)

    t_start = last_save = t_log = time.time()
    s_sess, hist = 0, []
    video = None
    requests = SaveRequests(run, "classifier")
    try:
        while not ((args.minutes and time.time() - t_start > args.minutes * 60) or (args.steps and s_sess >= args.steps)):
            fresh = video is None or step % args.reuse == 0
            if fresh:
                video = None  # free the previous batch before rendering the next
                video, labels = batch(args, cfg, step // args.reuse, heldout, dev)
            logits, _ = model(video)
            loss, parts, acc = losses_and_accuracy(logits, labels)
            lr = lr_at(s_sess, args.lr, args.warmup)
            for gp in opt.param_groups:
                gp["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            s_sess += 1
            hist.append((float(loss.detach()), acc if fresh else {}))
            if not np.isfinite(hist[-1][0]):
                raise SystemExit(f"non-finite loss at step {step}: not saving")
            if step % args.log_every == 0:
                dt = time.time() - t_log
                accs = {f"acc_{a}": float(np.mean([h[1][a] for h in hist if a in h[1]])) for a in model.attrs
                        if any(a in h[1] for h in hist)}
                rec = dict(stage="classifier", step=step, loss=float(np.mean([h[0] for h in hist])), lr=lr,
                           clips_per_s=len(hist) * args.batch / dt, elapsed_s=round(time.time() - t_start, 1), **accs)
                log.write(**rec)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()), flush=True)
                hist, t_log = [], time.time()
            if requests.take() or (args.save_minutes and time.time() - last_save > args.save_minutes * 60):
                save()
                last_save = time.time()
    finally:
        requests.close()
    save()
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_session_args(ap, str(HERE / "runs" / "main"), "48x32 clips, a tiny net: CPU steps in a fraction of a second",
                     "frames per training clip", "steps of linear warm-up after every (re)start (100; toy 2)")
    ap.add_argument("--reuse", type=int, default=1, help="train K steps on each rendered batch")
    ap.add_argument("--source-frames", type=int, nargs="+",
                    help="clip lengths to cut each training window of --frames from, one picked per batch\n"
                         "(default: --frames). The world spreads a zoom over a whole shot, so a 15 s clip's\n"
                         "camera moves slowly: 240 trains on what the eval's 15 s clips show")
    ap.add_argument("--diff-strides", type=int, nargs="+", help="a fresh classifier's frame differences (default 1)")
    ap.add_argument("--temporal-dilations", type=int, nargs="+",
                    help="a fresh classifier's temporal convs, one per dilation (default 1 1)")
    ap.add_argument("--pool-grid", type=int, help="a fresh classifier's pooling grid (default 1: whole frame)")
    ap.add_argument("--motion-probe", action="store_const", const=True, default=None,
                    help="a fresh classifier reads measure/motion_probe.py's camera-move errors too")
    ap.add_argument("--grow-from", metavar="CLASSIFIER",
                    help="start a fresh --run from this trained classifier (a checkpoint or run folder) at its\n"
                         "step, grown by the reach options above (measure.classifier.grow_classifier): what\n"
                         "they add starts switched off, so it begins reading as that classifier does")
    args = ap.parse_args(argv)
    if args.reuse < 1:
        ap.error("--reuse takes a whole number >= 1")
    for name in ("diff_strides", "temporal_dilations"):
        if getattr(args, name) is not None and min(getattr(args, name)) < 1:
            ap.error(f"--{name.replace('_', '-')} takes whole numbers >= 1")
    if args.pool_grid is not None and args.pool_grid < 1:
        ap.error("--pool-grid takes a whole number >= 1")
    d = TOY if args.toy else REAL
    args.batch, args.frames, args.lr = args.batch or d["batch"], args.frames or d["frames"], args.lr or d["lr"]
    if args.source_frames is not None and min(args.source_frames) < args.frames:
        ap.error(f"--source-frames must not be shorter than --frames ({args.frames})")
    if args.warmup is None:
        args.warmup = 2 if args.toy else 100
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.minutes and not args.steps:
        ap.error("give --minutes or --steps")
    return train(args)


if __name__ == "__main__":
    main()
