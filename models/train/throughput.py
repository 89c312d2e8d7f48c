#!/usr/bin/env python3
"""Where a training step's time goes on this machine: host preparation, rendering a batch (as
sampled, and with --batch-groups), encoding it to latents, and one optimiser step of the
autoencoder and of the DiT, in the layouts train.py offers, and of the attribute classifier. Weights are random (timings do not
depend on their values), so it needs no checkpoint and no text encoder.

  python throughput.py                      # real scale, on CUDA when there is one
  python throughput.py --toy --repeat 1     # the tiny config on the CPU (the test suite runs this)
  python throughput.py --dit-only --flow-batch 4 --repeat 2 --threads 2   # the DiT step alone, real size

The DiT step is timed as train.py runs it (attention chunk by chunk) and, last of all so that
session.sh's cut-off never costs the suggestions, with one dense masked product as before.

Every figure is the median of --repeat timed runs after one untimed warm-up (which absorbs cuDNN's
algorithm search and lazy initialisation). The last lines combine measured figures into the time
of a flow step at each --reuse K: rendering and encoding happen once per K steps.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from kinema.model import DiT, Decoder, Encoder  # noqa: E402
from measure.classifier import AttributeClassifier, ClassifierConfig  # noqa: E402
from train import REAL, TOY, autoencoder_loss, model_config  # noqa: E402
from train_classifier import REAL as CLASSIFIER_REAL, TOY as CLASSIFIER_TOY, losses_and_accuracy  # noqa: E402
from world.clips import draw, prepare, sample_batch  # noqa: E402


class Timer:
    def __init__(self, device: torch.device, repeat: int):
        self.device, self.repeat = device, repeat
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn) -> tuple[float, float | None]:
        """Median seconds of fn() and, on CUDA, its peak memory in GB."""
        fn()
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(self.repeat):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 1e9 if self.cuda else None
        return statistics.median(times), peak


def report(name: str, seconds: float, peak: float | None, extra: str = ""):
    mem = f"  peak {peak:5.1f} GB" if peak is not None else ""
    print(f"{name:<52} {seconds * 1000:9.1f} ms{mem}  {extra}".rstrip(), flush=True)


def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--toy", action="store_true", help="tiny config and clips (CPU test scale)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--render", default="0:256 4:256 4:1024",
                    help="renderer settings to time, each --batch-groups:--render-frames")
    ap.add_argument("--reuse", default="1 2 4 8", help="--reuse values for the combined flow-step lines")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--suggest", default=None, metavar="FILE",
                    help="write the fastest measured settings as shell exports for device/session.sh")
    ap.add_argument("--dit-only", action="store_true", help="time only the DiT (no rendering, autoencoder or classifier)")
    ap.add_argument("--flow-batch", type=int, default=0, help="clips per DiT step (default: train.py's)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat takes a whole number >= 1")
    if args.flow_batch < 0:
        ap.error("--flow-batch takes a whole number >= 1")
    if args.dit_only and args.suggest:
        ap.error("--suggest needs every part timed: drop --dit-only")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as train.py sets it
    cfg = model_config(args.toy)
    scale = TOY if args.toy else REAL
    H, W = cfg.video.height, cfg.video.width
    timer = Timer(dev, args.repeat)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"throughput on {name}, torch {torch.__version__}, {'toy' if args.toy else 'real'} scale, "
          f"median of {args.repeat}")

    fb, ff = args.flow_batch or scale["flow"]["batch"], scale["flow"]["frames"]
    if args.dit_only:
        time_dit(cfg, dev, timer, fb, ff, chunked_s=time_dit(cfg, dev, timer, fb, ff))
        return
    clf_scale = CLASSIFIER_TOY if args.toy else CLASSIFIER_REAL
    ab, af = scale["autoencoder"]["batch"], scale["autoencoder"]["frames"]

    # ---- data: host preparation and rendering
    draw_s = {}
    try:
        settings = [tuple(int(v) for v in x.split(":")) for x in args.render.split()]
        assert all(len(x) == 2 and x[0] >= 0 and x[1] >= 1 for x in settings)
    except (ValueError, AssertionError):
        ap.error(f"--render takes GROUPS:FRAMES pairs such as 4:1024, not {args.render!r}")
    for g, mf in settings:
        specs, _ = sample_batch(1, 0, fb, ff, groups=g)
        t0 = time.perf_counter()
        prep = prepare(specs, H, W, with_labels=False)
        host = time.perf_counter() - t0
        s, peak = timer(lambda: draw(prep, dev, max_frames=mf))
        draw_s[(g, mf)] = s
        report(f"render flow batch {fb}x{ff}, groups {g}, frames/call {mf}", s, peak,
               f"{len(prep['groups'])} render groups; host prepare {host * 1000:.0f} ms")
    specs, _ = sample_batch(1, 0, ab, af)
    prep = prepare(specs, H, W, with_labels=False)
    render_ae_s, peak = timer(lambda: draw(prep, dev))
    report(f"render autoencoder batch {ab}x{af}", render_ae_s, peak, f"{len(prep['groups'])} render groups")
    video_flow = draw(prepare(sample_batch(1, 0, fb, ff)[0], H, W, with_labels=False), dev)
    video_ae = draw(prep, dev)

    # ---- the autoencoder: encoding for the DiT stages, and its own training step
    def ae_step_time(video, layout, tag):
        net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
        net.to(dev, memory_format=layout)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=dev.type == "cuda")

        def ae_step():
            loss, _ = autoencoder_loss(net, video, 0.1, 0.05, lambda: autocast(dev))  # train.py's defaults
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        s, peak = timer(ae_step)
        n, f = video.shape[:2]
        report(f"autoencoder step {n}x{f}, {tag}", s, peak, f"{n * f / s:.0f} frames/s")
        return s

    encode_s, ae_s = {}, {}
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    for tag, layout in layouts.items():
        enc = Encoder(cfg.decoder).to(dev, memory_format=layout).eval().requires_grad_(False)

        def encode():
            with torch.no_grad(), autocast(dev):
                return enc(video_flow)
        s, peak = timer(encode)
        encode_s[tag] = s
        report(f"encode flow batch, {tag}", s, peak)
        del enc
        ae_s[tag] = ae_step_time(video_ae, layout, tag)
    # a quarter of the batch, in the faster layout (suggest() says when it pays)
    small = max(1, ab // 4)
    ae_layout = min(ae_s, key=ae_s.get)
    ae_small_s = ae_step_time(video_ae[:small], layouts[ae_layout], ae_layout) if small < ab else None

    dit_s = time_dit(cfg, dev, timer, fb, ff)

    # ---- the attribute classifier (measuring only): it renders its own batches
    cb, cf = clf_scale["batch"], clf_scale["frames"]
    ccfg = ClassifierConfig.toy() if args.toy else ClassifierConfig()
    cprep = prepare(sample_batch(2, 0, cb, cf)[0], ccfg.video_height, ccfg.video_width, with_labels=False)
    render_clf_s, peak = timer(lambda: draw(cprep, dev))
    report(f"render classifier batch {cb}x{cf}", render_clf_s, peak, f"{len(cprep['groups'])} render groups")
    clf = AttributeClassifier(ccfg).to(dev)
    copt = torch.optim.AdamW(clf.parameters(), lr=1e-4)
    cvideo = draw(cprep, dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    labels = {a: torch.randint(len(v), (cb, cf), device=dev, generator=gen) for a, v in clf.attrs.items()}

    def classifier_step():
        logits, _ = clf(cvideo)
        loss, _, _ = losses_and_accuracy(logits, labels)
        copt.zero_grad(set_to_none=True)
        loss.backward()
        copt.step()
    clf_s, peak = timer(classifier_step)
    report(f"classifier step {cb}x{cf}", clf_s, peak, f"{cb / clf_s:.0f} clips/s")

    # ---- combined: a flow step renders and encodes once per K steps
    best_enc = min(encode_s.values())
    for (g, mf), rs in draw_s.items():
        for k in [int(x) for x in args.reuse.split()]:
            step = (rs + best_enc) / k + dit_s
            print(f"flow step = (render {g}:{mf} + encode) / {k} + DiT step: {step * 1000:7.1f} ms "
                  f"= {fb * ff / step:.0f} frames/s", flush=True)
    if args.suggest:
        lines = suggest(draw_s, encode_s, ae_s, render_ae_s, dit_s, [int(x) for x in args.reuse.split()],
                        render_clf_s, clf_s, ae_small=(small, ae_small_s) if ae_small_s else None)
        Path(args.suggest).write_text("".join(f"export {line}\n" for line in lines))
        print("suggested (" + args.suggest + "): " + " ".join(lines), flush=True)
    time_dit(cfg, dev, timer, fb, ff, chunked_s=dit_s)


def time_dit(cfg, dev, timer: Timer, fb: int, ff: int, chunked_s: float | None = None) -> float:
    """Seconds of one flow-matching step of the DiT, as train.py attends (chunk by chunk), and of
    the no-grad forward the shortcut targets use. Given `chunked_s` (that step's time), the step
    with one dense masked product instead, and how the two compare."""
    d = cfg.dit
    dit = DiT(d, text_dim=cfg.text.hidden).to(dev)
    opt = torch.optim.AdamW(dit.parameters(), lr=1e-4, fused=dev.type == "cuda")
    Tl = ff // 4
    gen = torch.Generator(device=dev).manual_seed(0)
    z = torch.randn(fb, Tl, d.latent_channels, d.latent_height, d.latent_width, device=dev, generator=gen)
    t = torch.rand(fb, Tl, device=dev, generator=gen)
    zero = torch.zeros_like(t)
    L = 16  # text tokens: a typical caption's length after tokenisation
    tokens = torch.randn(fb, L, cfg.text.hidden, device=dev, generator=gen)
    pooled = torch.randn(fb, cfg.text.hidden, device=dev, generator=gen)
    mask = torch.ones(fb, L, dtype=torch.bool, device=dev)
    dense = chunked_s is not None

    def dit_step():
        with autocast(dev):
            pred = dit(z, t, zero, tokens, pooled, mask, dense_mask=dense)
        loss = ((pred.float() - z) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step_s, peak = timer(dit_step)
    if dense:
        report(f"DiT step {fb}x{ff}, dense mask", step_s, peak,
               f"{fb * ff / step_s:.0f} frames/s; chunk by chunk takes {chunked_s / step_s:.2f} of this")
        return step_s
    nparams = sum(p.numel() for p in dit.parameters())
    report(f"DiT step {fb}x{ff} ({nparams / 1e6:.1f} M params)", step_s, peak, f"{fb * ff / step_s:.0f} frames/s")

    def dit_forward():
        with torch.no_grad(), autocast(dev):
            return dit(z, t, zero, tokens, pooled, mask)
    s, peak = timer(dit_forward)
    report(f"DiT forward without grad {fb}x{ff}", s, peak)
    return step_s


def suggest(draw_s: dict, encode_s: dict, ae_s: dict, render_ae_s: float, dit_s: float, reuses: list[int],
            render_clf_s: float, clf_s: float, share: float = 0.25, ae_small: tuple[int, float] | None = None,
            small_share: float = 0.4) -> list[str]:
    """Per-stage train.py arguments from the measured figures: the faster convolution layout,
    the fastest renderer setting, and the smallest --reuse that brings rendering and encoding
    under `share` of a DiT step (more reuse only repeats data for no speed). And the autoencoder's
    `--batch` of `ae_small` = (a quarter of its batch, that batch's step time) where that step
    takes at most `small_share` as long: on the CPU a quarter of the batch learned about as much
    in twice the steps as the whole batch did (README.md, "The autoencoder's batch"), so where it
    gets clearly more than twice the steps it learns more per second."""
    layout = min(encode_s, key=encode_s.get)
    (g, mf), render = min(draw_s.items(), key=lambda kv: kv[1])
    k = next((k for k in sorted(reuses) if (render + encode_s[layout]) / k <= share * dit_s), max(reuses))
    dit_args = f"--batch-groups {g} --render-frames {mf} --reuse {k}" + (" --channels-last" if layout == "channels-last" else "")
    ae_layout = min(ae_s, key=ae_s.get)
    ae_k = next((k for k in sorted(reuses) if render_ae_s / k <= share * ae_s[ae_layout]), max(reuses))
    ae_args = f"--reuse {ae_k}" + (" --channels-last" if ae_layout == "channels-last" else "")
    if ae_small and ae_small[1] <= small_share * ae_s[ae_layout]:
        ae_args += f" --batch {ae_small[0]}"
    clf_k = next((k for k in sorted(reuses) if render_clf_s / k <= share * clf_s), max(reuses))
    return [f'AE_ARGS="{ae_args}"', f'FLOW_ARGS="{dit_args}"', f'SHORTCUT_ARGS="{dit_args}"',
            f'CLASSIFIER_ARGS="--reuse {clf_k}"']


if __name__ == "__main__":
    main()
