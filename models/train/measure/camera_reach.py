"""Does the attribute classifier's camera head need a longer reach in time? A small CPU experiment.

  python -m measure.camera_reach [--train-clips 320 --frames 96 --steps 400 --test-clips 48]

Renders one fixed training set and test sets of several clip lengths at a reduced size, trains a
camera-only classifier per architecture on the same data from the same seed, and prints each one's
clip-level camera accuracy per test length (the eval's rule: argmax of the mean log-probability).
In 15 s shots the world's zoom moves the frame edge a fifth as fast as in 2 s shots
(`python -m world.camera_report`), and the classifier's default reach is 9 frames.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from world.spec import CAMERAS, load_heldout, sample_clip, step_seed

from .attributes import frame_labels
from .classifier import AttributeClassifier, ClassifierConfig
from .metrics import clip_class

ARCHS = {
    "default (diff 1; temporal 1,1)": dict(diff_strides=[1], temporal_dilations=[1, 1]),
    "long (diff 1,4; temporal 1,2,4,8)": dict(diff_strides=[1, 4], temporal_dilations=[1, 2, 4, 8]),
    "long + 2x2 pooling": dict(diff_strides=[1, 4], temporal_dilations=[1, 2, 4, 8], pool_grid=2),
    "default + motion probe": dict(motion_probe=True),
}


def camera_set(seed: int, clips: int, frames: int, height: int, width: int):
    """Single-shot clips (a cut would change the camera mid-clip) and per-frame camera labels."""
    from world.clips import draw, prepare
    held = load_heldout()
    specs = [sample_clip(step_seed(seed, 0, i), frames, held, cut_prob=0.0) for i in range(clips)]
    video, labels = [], []
    for s in range(0, clips, 16):
        prep = prepare(specs[s:s + 16], height, width, with_labels=True)
        video.append(draw(prep))
        labels.append(frame_labels(prep["labels"], frames)["camera"])
    return torch.cat(video), torch.from_numpy(np.concatenate(labels))


def train_and_test(arch: dict, train, tests: dict, args) -> dict:
    torch.manual_seed(args.seed)
    cfg = ClassifierConfig(video_height=args.height, video_width=args.width, input_height=args.height,
                           input_width=args.width, channels=args.channels, features=args.features, **arch)
    net = AttributeClassifier(cfg, {"camera": CAMERAS})
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    video, labels = train
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for _ in range(args.steps):
        idx = torch.randint(len(video), (args.batch,), generator=gen)
        logits = net(video[idx])[0]["camera"]
        loss = F.cross_entropy(logits.flatten(0, 1), labels[idx].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    out = {"train_s": time.time() - t0, "params": sum(p.numel() for p in net.parameters())}
    with torch.no_grad():
        for frames, (tv, tl) in tests.items():
            pred = np.array([clip_class(net(tv[i:i + 1])[0]["camera"][0]) for i in range(len(tv))])
            true = tl[:, 0].numpy()
            out[frames] = float(np.mean(pred == true))
            out[f"{frames}_recall"] = {c: float(np.mean(pred[true == k] == k)) for k, c in enumerate(CAMERAS)
                                       if (true == k).any()}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-clips", type=int, default=320)
    ap.add_argument("--frames", type=int, default=96, help="training clip length")
    ap.add_argument("--test-frames", type=int, nargs="+", default=[32, 240])
    ap.add_argument("--test-clips", type=int, default=48)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--height", type=int, default=54)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--arch", type=int, nargs="+", default=list(range(len(ARCHS))),
                    help="which architectures, by index: " + "; ".join(f"{i} {n}" for i, n in enumerate(ARCHS)))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    train = camera_set(1000 + args.seed, args.train_clips, args.frames, args.height, args.width)
    tests = {f: camera_set(2000 + args.seed + f, args.test_clips, f, args.height, args.width) for f in args.test_frames}
    print(f"rendered {args.train_clips} x {args.frames} training frames and {args.test_clips} test clips per length "
          f"at {args.width}x{args.height} in {time.time() - t0:.0f} s; {args.steps} steps of {args.batch} clips, lr {args.lr}")
    for f, (_, tl) in tests.items():
        counts = np.bincount(tl[:, 0].numpy(), minlength=len(CAMERAS))
        print(f"  test {f} frames: " + ", ".join(f"{c} {n}" for c, n in zip(CAMERAS, counts)))
    results = {}
    for name, arch in [list(ARCHS.items())[i] for i in args.arch]:
        r = results[name] = train_and_test(arch, train, tests, args)
        accs = "  ".join(f"{f} frames {r[f]:.3f}" for f in args.test_frames)
        print(f"{name:36s} {r['params']:7d} params, trained in {r['train_s']:.0f} s; clip camera accuracy: {accs}")
        for f in args.test_frames:
            print(f"    recall at {f} frames: " + ", ".join(f"{c} {v:.2f}" for c, v in r[f"{f}_recall"].items()))
    return results


if __name__ == "__main__":
    main()
