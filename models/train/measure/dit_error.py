"""How far the DiT's estimate of the clean latents lands from the real ones, at the sampler's steps.

  python -m measure.dit_error --run runs/main --prompts ../kinema-tiny/card/prompts.jsonl
                              [--seconds 4] [--steps K] [--classifier runs/main] [--sample] [--json OUT]

Renders the prompts' clips cut to their first --seconds (`shortened`), encodes them with the run's
encoder, and at each Euler step of the K-step sampler (t = 1 - i/K, d = 1/K, or 0 for a flow DiT, as
`kinema.model.sample` steps) noises every chunk of the latents to t with one fixed draw per clip
and lets the run's DiT predict with the earlier chunks clean (teacher forced: the situation of a
chunk after finished ones, when those came out right). Its estimate of the clean latents,
x_t - t·v, is compared with the latents: RMS error over their std, for the first chunk (no
context) and the later ones.

The last step's error is where the sampler's output lands when its path so far was the true one:
the size of latent error the decoder must forgive (train.py --ae-noise; ae_convergence
--read-noise ranks decoders by how they read clips with white noise of a given size). Beside each
step, the error of the best per-channel linear estimate from x_t alone (shrinking it towards the
channel mean), which needs no model: a DiT at or above it knows nothing more about the clip at
that noise level than its latents' mean and variance.

--classifier also decodes the clips three ways and prints the share of frames whose prompted
subject the attribute classifier names: the latents themselves (the autoencoder's round trip), the
last step's estimate, and the latents plus white noise of the same RMS as that estimate's error.
The last two side by side say whether the DiT's errors cost the decoder more or less than white
noise of their size, which --read-noise assumes.

Each step's error is also split between the latents that cover the prompted subject's box (any
pixel of it, `train.latent_mask`) and the rest of the frame, beside the linear estimate's on the
same latents, and so is how far the estimate moves when each clip is given another clip's caption
(the same noise): where the DiT draws the subject from its caption, the move is largest on the
subject's latents; where it knows no more than shrinkage there, its error there is the linear one.

--sample also runs the sampler itself from noise (the prompts' seeds, as evaluate.py generates)
and compares its latents with the encoder's where no clip is there to compare them with: their
std, and their fine detail (each latent minus the mean of its 3x3 neighbourhood). Error carried
along the whole path shows there: latents rougher than the encoder's carry extra high-frequency
error, and its power, read as white noise, gives that noise's size (`noise_above`); smoother ones
were blurred. With --classifier, the subject is also read in the sampled clips.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

NOISE_SEED = 11  # the white-noise comparison's own draw, the same in every run


@torch.no_grad()
def x0_estimate(dit, z0, eps, t: float, d: float, tokens, pooled, text_mask):
    """The DiT's estimate of the clean latents `z0` [B, T, C, h, w] from x_t = (1 - t) z0 + t eps,
    every chunk at the same t with the earlier chunks clean (`forward_teacher_forced`):
    x_t - t v, where the sampler's last step lands from x_t."""
    tt = torch.full(z0.shape[:2], t, dtype=z0.dtype, device=z0.device)
    dd = torch.full_like(tt, d)
    xt = (1 - t) * z0 + t * eps
    v = dit.forward_teacher_forced(xt, z0, tt, dd, tokens, pooled, text_mask)
    return xt - t * v.float(), xt


def linear_estimate(xt, t: float, mean, var):
    """The best estimate of z from x_t = (1 - t) z + t eps (eps ~ N(0, 1)) that is linear in x_t,
    per channel, knowing only each channel's `mean` and `var` [C] (the Wiener shrinkage)."""
    m, v = mean.view(1, 1, -1, 1, 1), var.view(1, 1, -1, 1, 1)
    gain = (1 - t) * v / ((1 - t) ** 2 * v + t ** 2)
    return m + gain * (xt - (1 - t) * m)


class ErrorSums:
    """Squared errors summed per (step, part), for RMS figures over a whole prompt set."""

    def __init__(self):
        self.sq, self.n = {}, {}

    def add(self, key, err: torch.Tensor) -> None:
        self.sq[key] = self.sq.get(key, 0.0) + float((err.double() ** 2).sum())
        self.n[key] = self.n.get(key, 0) + err.numel()

    def add_where(self, key, err: torch.Tensor, where: torch.Tensor) -> None:
        """Only the latents where `where` ([B, T, 1, h, w], 0 or 1) is 1, over all channels."""
        self.sq[key] = self.sq.get(key, 0.0) + float((err.double() ** 2 * where).sum())
        self.n[key] = self.n.get(key, 0) + int(where.sum()) * err.shape[2]

    def rms(self, key) -> float | None:
        return (self.sq[key] / self.n[key]) ** 0.5 if self.n.get(key) else None


def encode(encoder, video: torch.Tensor, window: int = 16) -> torch.Tensor:
    """Frames [B, 4T, 3, H, W] -> latents, `window` frames at a time with the causal memory carried
    across (as `measure.round_trip`: whole 256x144 clips' activations are gigabytes)."""
    carry = {}
    parts = [encoder(video[:, i:i + window], carry=carry) for i in range(0, video.shape[1], window)]
    return torch.cat(parts, 1).float()


def fine_detail_power(z: torch.Tensor) -> float:
    """Mean square of latents [B, T, C, h, w] minus the mean of each one's 3x3 neighbourhood (in
    its own frame and channel; at the edges, of the neighbours there are)."""
    x = z.flatten(0, 2)[:, None].double()
    return float(((x - torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)) ** 2).mean())


def noise_above(real: torch.Tensor, other: torch.Tensor) -> float:
    """The std of white noise that, added to latents like `real`, would give `other`'s fine-detail
    power: 0 when `other` is no rougher. Noise and content are independent, so their powers add;
    a unit white noise's own fine-detail power (8/9 inside the frame) comes from one fixed draw.
    Two sets of the same kind of latents differ a little in fine detail too, so a small figure
    (under about 0.1 of their std, by the test on smooth random fields) is not yet noise."""
    gain = fine_detail_power(torch.randn(other.shape, generator=torch.Generator().manual_seed(NOISE_SEED)))
    return max(fine_detail_power(other) - fine_detail_power(real), 0.0) ** 0.5 / gain ** 0.5


def shortened(spec, frames: int):
    """The clip spec cut to its first `frames` (its last shot shortened): a clip of the length
    training draws, rendered without the rest. The motion of a shorter shot is not the first
    frames of the longer one (some paths are timed to the shot), but the attributes are the same."""
    from world.spec import ClipSpec
    shots, left = [], frames
    for shot in spec.shots:
        if left <= 0:
            break
        shots.append(dataclasses.replace(shot, frames=min(shot.frames, left)))
        left -= shots[-1].frames
    return ClipSpec(shots)


def decode(decoder, z: torch.Tensor, window: int = 4) -> torch.Tensor:
    """Latents [B, T, C, h, w] -> frames, clamped as shipped, `window` latent frames at a time with
    the causal memory carried across."""
    carry, out = {}, []
    for i in range(0, z.shape[1], window):
        out.append(decoder(z[:, i:i + window], clamp=True, carry=carry))
    return torch.cat(out, dim=1)


@torch.no_grad()
def subject_hits(clf, video: torch.Tensor, entries: list[dict]) -> torch.Tensor:
    """[B, T] bool: frames whose subject the classifier names as their prompt's."""
    from measure.attributes import ATTRS
    logits, _ = clf(video)
    subjects = torch.tensor([ATTRS["subject"].index(e["attrs"]["subject"]) for e in entries])
    return logits["subject"].argmax(-1).cpu() == subjects[:, None]


def load(run: Path, device):
    """The run's encoder, its DiT stage assembled as the sampler runs it, the tokenizer and a
    description."""
    from measure.generate import load_generator
    from measure.round_trip import load_autoencoder
    run = Path(run)
    if not (run / "ae" / "state.json").exists():
        raise SystemExit(f"{run}: not a train.py run folder (no ae/state.json); the encoder makes the latents, "
                         "and a model folder ships without it")
    if not any((run / s / "state.json").exists() for s in ("flow", "shortcut")):
        raise SystemExit(f"{run}: no DiT checkpoint (flow/ or shortcut/) to measure")
    ae, ae_state = load_autoencoder(run, device)
    model, tok, info = load_generator(run, device)
    return ae["encoder"], model, tok, {**info, "ae_step": ae_state["step"]}


def main(argv=None) -> dict:
    from measure.prompts import build_prompts, read_prompts, spec_of
    from world.clips import render_clips
    from world.spec import FPS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a train.py run folder with ae/ and flow/ or shortcut/")
    ap.add_argument("--prompts", help="prompt file (JSONL, measure/prompts.py); default: 30 built from the grammar")
    ap.add_argument("--clips", type=int, default=None, help="only the first N prompts")
    ap.add_argument("--seconds", type=int, default=4, help="the first S seconds of each clip (whole chunks)")
    ap.add_argument("--steps", type=int, default=None,
                    help="sampler steps K (default: the DiT stage's own, as evaluate.py samples)")
    ap.add_argument("--d-input", type=float, default=None,
                    help="the step-size input d given to the DiT at every step (default: as the sampler gives it, "
                         "1/K, or 0 for a flow DiT, which trains at d = 0 only); to see what another d costs")
    ap.add_argument("--classifier", help="also read decoded clips with this attribute classifier (a run folder)")
    ap.add_argument("--sample", action="store_true",
                    help="also run the sampler from noise and compare its latents' std and fine detail")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.time()
    encoder, model, tok, info = load(Path(a.run), dev)
    from measure.generate import is_flow_dit, steps_to_use
    steps, steps_from = steps_to_use(a.steps, info)
    cfg = model.cfg
    chunk_video = 4 * cfg.dit.chunk_frames
    frames = a.seconds * FPS
    if a.seconds < 1 or frames % chunk_video:
        raise SystemExit(f"--seconds {a.seconds}: give a whole number of chunks ({chunk_video} frames each), "
                         "at least one")
    entries = read_prompts(a.prompts) if a.prompts else build_prompts(24, 1, a.seconds)
    entries = entries[:a.clips] if a.clips else entries
    short = [e["prompt"] for e in entries if spec_of(e).frames < frames]
    if short:
        raise SystemExit(f"--seconds {a.seconds}: {len(short)} prompts' clips are shorter, e.g. {short[0]!r}")
    clf = None
    if a.classifier:
        from measure.classifier import load_classifier
        clf, _ = load_classifier(Path(a.classifier), dev)
        if (clf.cfg.video_height, clf.cfg.video_width) != (cfg.video.height, cfg.video.width):
            raise SystemExit(f"{a.classifier}: reads {clf.cfg.video_width}x{clf.cfg.video_height}, the model makes "
                             f"{cfg.video.width}x{cfg.video.height}")
    ts = [1.0 - i / steps for i in range(steps)]
    # the d the sampler passes: its step size, or 0 for a flow DiT (kinema.model.sample, flow_dit)
    flow_dit = is_flow_dit(info)
    d_input = (0.0 if flow_dit else 1.0 / steps) if a.d_input is None else a.d_input
    if a.d_input is not None and a.sample:
        raise SystemExit("--d-input sets the teacher-forced estimates' d; --sample runs the sampler as it is: "
                         "give one of them")
    F_ = cfg.dit.chunk_frames

    # the latents first: the linear baseline needs their per-channel statistics over the whole set
    from train import latent_mask, subject_mask
    latents, subjects = [], []
    for s in range(0, len(entries), a.batch):
        video, labels = render_clips([shortened(spec_of(e), frames) for e in entries[s:s + a.batch]],
                                     cfg.video.height, cfg.video.width, dev)
        latents.append(encode(encoder, video))
        z = latents[-1]
        subjects.append(latent_mask(subject_mask(labels, frames, cfg.video.height, cfg.video.width, device=dev),
                                    frames // z.shape[1], cfg.video.height // z.shape[3]))
    allz = torch.cat(latents)
    mean, var = allz.mean((0, 1, 3, 4)), allz.var((0, 1, 3, 4))
    std = float(var.mean() ** 0.5)
    print(f"{len(entries)} clips of {a.seconds} s: latents [{', '.join(map(str, allz.shape[1:]))}] each, std {std:.3f} "
          f"(channels {float(var.min() ** 0.5):.2f}-{float(var.max() ** 0.5):.2f}), "
          f"|mean| up to {float(mean.abs().max()):.2f} ({time.time() - t0:.0f} s)", flush=True)

    sums = ErrorSums()
    hits = {"latents": [], "last_step": [], "white_noise": []}
    for bi, z0 in enumerate(latents):
        part = entries[bi * a.batch:(bi + 1) * a.batch]
        eps = torch.stack([torch.randn(z0.shape[1:], generator=torch.Generator().manual_seed(int(e["seed"])))
                           for e in part]).to(dev)
        ids, mask = tok.batch([e["prompt"] for e in part])
        ids, mask = ids.to(dev), mask.to(dev)
        tokens, pooled = model.text(ids, mask)
        # each clip with another's caption (rotated by half the batch), for the caption's effect
        swap = [(i + len(part) // 2) % len(part) for i in range(len(part))]
        where = {"subject": subjects[bi], "elsewhere": 1 - subjects[bi]}
        for t in ts:
            est, xt = x0_estimate(model.dit, z0, eps, t, d_input, tokens, pooled, mask)
            err = est - z0
            lin = linear_estimate(xt, t, mean, var) - z0
            sums.add((t, "first"), err[:, :F_])
            sums.add((t, "later"), err[:, F_:])
            sums.add((t, "linear"), lin)
            moved = None
            if len(part) > 1:
                other, _ = x0_estimate(model.dit, z0, eps, t, d_input, tokens[swap], pooled[swap], mask[swap])
                moved = other - est
            for name, w in where.items():
                sums.add_where((t, name), err, w)
                sums.add_where((t, "linear_" + name), lin, w)
                if moved is not None:
                    sums.add_where((t, "caption_" + name), moved, w)
            if t == ts[-1]:
                if clf is not None:
                    hits["latents"].append(subject_hits(clf, decode(model.decoder, z0), part))
                    hits["last_step"].append(subject_hits(clf, decode(model.decoder, est), part))
        done = min((bi + 1) * a.batch, len(entries))
        print(f"  {done} of {len(entries)} clips ({time.time() - t0:.0f} s)", flush=True)

    rows = []
    for i, t in enumerate(ts):
        first, later, lin = sums.rms((t, "first")), sums.rms((t, "later")), sums.rms((t, "linear"))
        n_f, n_l = sums.n[(t, "first")], sums.n.get((t, "later"), 0)
        both = ((first ** 2 * n_f + (later or 0) ** 2 * n_l) / (n_f + n_l)) ** 0.5
        rel = lambda key: None if (v := sums.rms((t, key))) is None else v / std  # noqa: E731
        rows.append({"step": i + 1, "t": t, "d": d_input, "rms": both, "relative": both / std,
                     "first_chunk": first / std, "later_chunks": None if later is None else later / std,
                     "linear": lin / std,
                     "by_region": {name: {"error": rel(name), "linear": rel("linear_" + name),
                                          "caption_moves": rel("caption_" + name)}
                                   for name in ("subject", "elsewhere")}})
    last = rows[-1]
    if clf is not None:
        gen = torch.Generator().manual_seed(NOISE_SEED)
        for bi, z0 in enumerate(latents):
            part = entries[bi * a.batch:(bi + 1) * a.batch]
            noisy = z0 + last["rms"] * torch.randn(z0.shape, generator=gen).to(dev)
            hits["white_noise"].append(subject_hits(clf, decode(model.decoder, noisy), part))
    sampled = None
    if a.sample:
        from measure.generate import generate
        gen_latents = []
        for s in range(0, len(entries), a.batch):
            part, got = entries[s:s + a.batch], []
            video = generate(model, tok, [e["prompt"] for e in part], [e["seed"] for e in part],
                             frames // chunk_video, steps, on_chunk=lambda c: got.append(c.latent.float()),
                             flow_dit=flow_dit)
            gen_latents.append(torch.cat(got, 1))
            if clf is not None:
                hits.setdefault("sampled", []).append(subject_hits(clf, video, part))
            print(f"  sampled {min(s + a.batch, len(entries))} of {len(entries)} clips ({time.time() - t0:.0f} s)",
                  flush=True)
        genz = torch.cat(gen_latents)
        sampled = {"std": float(genz.var((0, 1, 3, 4)).mean() ** 0.5), "fine_detail": fine_detail_power(genz) ** 0.5,
                   "latents_fine_detail": fine_detail_power(allz) ** 0.5, "noise_above": noise_above(allz, genz)}
    result = {
        "run": str(a.run), "dit": info["id"], "dit_step": info.get("dit_step"), "ae_step": info["ae_step"],
        "clips": len(entries), "seconds": a.seconds, "steps": steps, "steps_from": steps_from,
        "latent_std": std, "latent_channel_std": [round(float(x), 4) for x in var.sqrt()], "per_step": rows,
        "subject_share": float(torch.cat(subjects).mean()),
        "sampled": sampled,
        "read": {k: float(torch.cat(v).float().mean()) for k, v in hits.items()} if clf is not None else None,
        "seconds_taken": round(time.time() - t0, 1),
    }
    print(table(result))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {a.json}")
    return result


def table(r: dict) -> str:
    f = lambda x: "    -" if x is None else f"{x:5.3f}"  # noqa: E731
    lines = [f"{r['dit']} (step {r['dit_step']}) on the latents of encoder step {r['ae_step']}: {r['clips']} clips of "
             f"{r['seconds']} s, {r['steps']} Euler steps ({r['steps_from']}); errors relative to the latents' std "
             f"{r['latent_std']:.3f}",
             f"{'step':>4s} {'t':>5s} {'d':>5s} {'x0 error':>8s} {'1st chunk':>9s} {'later':>6s} "
             f"{'linear from x_t':>15s}"]
    for row in r["per_step"]:
        lines.append(f"{row['step']:4d} {row['t']:5.3f} {row['d']:5.3f} {row['relative']:8.3f} "
                     f"{f(row['first_chunk']):>9s} {f(row['later_chunks']):>6s} {f(row['linear']):>15s}")
    lines.append(f"by region ({r['subject_share']:.3f} of the latents cover the subject's box): x0 error / linear "
                 "/ how far another clip's caption moves the estimate, all over the latents' std")
    lines.append(f"{'step':>4s} {'t':>5s} {'subject':>23s} {'elsewhere':>23s}")
    for row in r["per_step"]:
        cells = [" / ".join(f(row["by_region"][n][k]) for k in ("error", "linear", "caption_moves"))
                 for n in ("subject", "elsewhere")]
        lines.append(f"{row['step']:4d} {row['t']:5.3f} {cells[0]:>23s} {cells[1]:>23s}")
    last = r["per_step"][-1]
    lines.append(f"the sampler's last step from the true path lands {last['rms']:.3f} RMS from the latents "
                 f"({last['relative']:.3f} of their std)")
    if r["read"]:
        rd = r["read"]
        sampled = f", {rd['sampled']:.3f} in the clips sampled from noise" if "sampled" in rd else ""
        lines.append(f"prompted subject named in {rd['latents']:.3f} of frames decoded from the latents, "
                     f"{rd['last_step']:.3f} from the last step's estimate, {rd['white_noise']:.3f} from the latents "
                     f"plus white noise of the same RMS{sampled}")
    if r.get("sampled"):
        sm = r["sampled"]
        rough = (f"as white noise on the encoder's latents, std {sm['noise_above']:.3f} "
                 f"({sm['noise_above'] / r['latent_std']:.3f} of theirs)" if sm["noise_above"] > 0
                 else "no rougher than the encoder's")
        lines.append(f"the sampler's own latents, from noise: std {sm['std']:.3f} (the encoder's "
                     f"{r['latent_std']:.3f}); fine detail {sm['fine_detail']:.3f} RMS (the encoder's "
                     f"{sm['latents_fine_detail']:.3f}): {rough}")
    lines.append(f"({r['seconds_taken']:.0f} s)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
