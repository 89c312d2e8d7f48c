"""Contact sheets of rendered clips (PNG, no image library needed) and a render-speed probe.

    python -m world.preview --out world/samples/sheet.png --seed 1 --clips 8 --frames 48
    python -m world.preview --bench --clips 8 --frames 64
"""
from __future__ import annotations

import argparse
import json
import struct
import time
import zlib

import numpy as np
import torch


def write_png(path: str, rgb: np.ndarray) -> None:
    """rgb: uint8 [H, W, 3]."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def contact_sheet(video: torch.Tensor, cols: int = 4) -> np.ndarray:
    """video [B, T, 3, H, W] -> one row per clip, `cols` frames evenly spaced in time."""
    B, T, _, H, W = video.shape
    idx = np.linspace(0, T - 1, cols).round().astype(int)
    rows = []
    for b in range(B):
        frames = [video[b, i] for i in idx]
        rows.append(torch.cat([torch.nn.functional.pad(f, (1, 1, 1, 1), value=1.0) for f in frames], dim=2))
    sheet = torch.cat(rows, dim=1)
    return (sheet.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def main():
    from .clips import render_clips, sample_batch

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="sheet.png")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--mode", default="train")
    ap.add_argument("--fixed", default=None, help='JSON attributes, e.g. {"style": "manga"}')
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fixed = json.loads(args.fixed) if args.fixed else None
    specs, caps = sample_batch(args.seed, 0, args.clips, args.frames, mode=args.mode, fixed=fixed)
    t0 = time.perf_counter()
    video, labels = render_clips(specs, device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    n = args.clips * args.frames
    print(f"rendered {args.clips} clips x {args.frames} frames in {dt:.2f} s: {n / dt:.1f} frames/s, "
          f"{args.clips / dt:.2f} clips/s ({args.device}, {torch.get_num_threads()} threads)")
    for c in caps:
        print(" -", c["text"])
    if not args.bench:
        write_png(args.out, contact_sheet(video, args.cols))
        print("wrote", args.out)


if __name__ == "__main__":
    main()
