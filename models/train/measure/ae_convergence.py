"""How fast does the autoencoder learn from a given init and learning rate? A small CPU experiment.

  python -m measure.ae_convergence [--init training|blockmean|he|default] [--unit-latents] [--lr 3e-4]
                                   [--steps 400] [--subject-weight W]
                                   [--classifier RUN [--read-clips N] [--read-noise S ...]]

Renders one fixed set of clips (the last 8 held aside), then trains a fresh encoder + decoder of
the real widths on random crops of the rest with `train.autoencoder_loss` (noise on the latents
and the latent regulariser included), and prints, every --eval-every steps, the PSNR of the held
clips at full size and their colour saturation relative to the rendered frames (1 = as colourful,
0 = grey). Inits: `training` is `init_autoencoder_` (train.py's `--ae-init random`), `blockmean`
that followed by `block_mean_init_` (the autoencoder starts as the block-mean reconstruction; with
--unit-latents, then `normalise_latents_` too, as train.py starts a fresh autoencoder), `he` the
same without the zero-initialised MemBlock branches, `default` torch's own init (what the first
GPU session trained from). --subject-weight trains with the subject's box
weighted as train.py does; the held clips' PSNR inside their subject boxes is printed either way.
--classifier also reads --read-clips more rendered clips (their own seed, every frame labelled)
through the autoencoder with a trained attribute classifier and prints the share of frames whose
subject and scene it still names: the measure the round trip (evaluate.py --through-ae) judges
by, where PSNR is only a proxy. --read-noise also reads them with N(0, S²) noise added to their
latents (the same draw at every evaluation and in every run of the same --read-clips): how much a
latent error of that size costs the decoder, the thing --ae-noise trains it to forgive. A DiT's
errors are not white noise, so this ranks decoders rather than predicting the round trip.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from kinema.config import KinemaConfig
from kinema.model import Decoder, Encoder, block_mean_init_, init_autoencoder_, normalise_latents_
from world.clips import render_clips, sample_batch

INITS = ("training", "blockmean", "he", "default")
READ = ("subject", "scene")  # what the classifier read-out prints


def held_out_figures(net, video: torch.Tensor, subject: torch.Tensor) -> tuple[float, float, float]:
    """PSNR of the clamped reconstruction over all of `video` and inside the subject boxes
    (`subject`, train.subject_mask), and the colour saturation (max − min over RGB, per pixel) of
    the first 4 clips' reconstructions relative to theirs."""
    from train import masked_psnr
    with torch.no_grad():
        rec = torch.cat([net["decoder"](net["encoder"](video[i:i + 4])) for i in range(0, len(video), 4)])
        held_psnr = float(-10 * torch.log10(((rec - video) ** 2).mean()))
        subject_psnr = float(masked_psnr(rec, video, subject))
        v, r = video[:4], rec[:4]
        sat = float((r.max(dim=2).values - r.min(dim=2).values).mean()
                    / (v.max(dim=2).values - v.min(dim=2).values).mean())
    return held_psnr, subject_psnr, sat


def baselines(video: torch.Tensor, subject: torch.Tensor | None = None) -> dict:
    """PSNR of two reconstructions that need no training, as a scale for the autoencoder's: each
    frame as its mean colour, and each 8×8-pixel 4-frame block as its mean colour (what one latent
    position covers; `train.block_mean`). An autoencoder below the block mean has not yet learned
    what its latents could carry."""
    from train import block_mean, masked_psnr, psnr
    frame_mean = video.mean((3, 4), keepdim=True).expand_as(video)
    out = {"frame_mean_psnr": round(float(psnr(frame_mean, video)), 2),
           "block_mean_psnr": round(float(psnr(block_mean(video), video)), 2)}
    if subject is not None:
        out["subject_block_mean_psnr"] = round(float(masked_psnr(block_mean(video), video, subject)), 2)
    return out


class ClassifierReadout:
    """Per-frame accuracy of a trained attribute classifier on fixed labelled clips, as rendered
    and as some reconstruction of them shows them."""

    def __init__(self, run: str, clips: int, frames: int, seed: int = 4242):
        from measure.attributes import render_labelled
        from measure.classifier import load_classifier
        self.clf, _ = load_classifier(run)
        self.clf.eval()
        specs, _ = sample_batch(seed, 0, clips, frames, cut_prob=0.1)
        video, self.labels = render_labelled(specs, KinemaConfig.kinema_tiny().video.height,
                                             KinemaConfig.kinema_tiny().video.width)
        self.video = (video * 255).round() / 255

    @torch.no_grad()
    def accuracy(self, video: torch.Tensor) -> dict:
        from measure.attributes import IGNORE
        logits, _ = self.clf(video)
        out = {}
        for a in READ:
            target = torch.as_tensor(self.labels[a])
            judged = target != IGNORE
            out[a] = round(float((logits[a].argmax(-1)[judged] == target[judged]).float().mean()), 3)
        return out

    @torch.no_grad()
    def reconstruct(self, net, noise: float = 0.0) -> torch.Tensor:
        """The clips through `net`, with N(0, noise²) added to their latents; the noise is drawn
        from a generator of its own, so every call (and every run) adds the same draw."""
        gen = torch.Generator().manual_seed(7)
        out = []
        for i in range(0, len(self.video), 4):
            z = net["encoder"](self.video[i:i + 4])
            out.append(net["decoder"](z + noise * torch.randn(z.shape, generator=gen) if noise else z))
        return torch.cat(out)

    def of(self, net, noise: float = 0.0) -> dict:
        return self.accuracy(self.reconstruct(net, noise))


def main(argv=None) -> list[dict]:
    import train

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--init", choices=INITS, default="training")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ae-noise", type=float, default=0.3,
                    help="as train.py --ae-noise; 0.3, its earlier default, so that the README's runs reproduce")
    ap.add_argument("--latent-reg", type=float, default=0.05)
    ap.add_argument("--subject-weight", type=float, default=0.0, help="as train.py --subject-weight")
    ap.add_argument("--unit-latents", action="store_true",
                    help="after the init, normalise_latents_ on the first 8 training clips (unit-variance latents)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=2, help="clips per step")
    ap.add_argument("--frames", type=int, default=8, help="frames per clip (a multiple of 4)")
    ap.add_argument("--clips", type=int, default=40, help="training clips (8 more are held aside)")
    ap.add_argument("--crop", type=int, nargs=2, default=[72, 128], metavar=("H", "W"),
                    help="training crop, multiples of 8 (the held clips are read whole)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0,
                    help="the clips, the init and the batches drawn (0: as in README.md)")
    ap.add_argument("--classifier", default=None, help="a run (or classifier checkpoint) to read clips with")
    ap.add_argument("--read-clips", type=int, default=24, help="labelled clips the classifier reads")
    ap.add_argument("--read-noise", type=float, nargs="*", default=[], metavar="S",
                    help="with --classifier, also read the clips with N(0, S^2) noise on their latents")
    ap.add_argument("--json", default=None, help="write the printed records here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    t0 = time.time()
    specs, _ = sample_batch(a.seed, 0, a.clips + 8, a.frames, cut_prob=0.1)
    rendered, labels = render_clips(specs)
    video = (rendered * 255).round().to(torch.uint8).float() / 255  # as 8-bit frames
    boxes = train.subject_mask(labels, a.frames, video.shape[-2], video.shape[-1])
    clips, held = video[:a.clips], video[a.clips:]
    clip_boxes, held_boxes = boxes[:a.clips], boxes[a.clips:]
    print(f"rendered {a.clips} + 8 clips of {a.frames} frames in {time.time() - t0:.0f} s", flush=True)
    base = baselines(held, held_boxes)
    print(f"held clips without training: each frame as its mean colour {base['frame_mean_psnr']:.2f} dB, each "
          f"8x8-pixel 4-frame block as its mean colour {base['block_mean_psnr']:.2f} dB, inside the subject "
          f"boxes {base['subject_block_mean_psnr']:.2f} dB", flush=True)

    readout = None
    if a.classifier:
        readout = ClassifierReadout(a.classifier, a.read_clips, a.frames)
        rendered_acc = readout.accuracy(readout.video)
        blocks_acc = readout.accuracy(train.block_mean(readout.video))
        print(f"classifier on {a.read_clips} labelled clips, share of frames named right: as rendered "
              f"{rendered_acc}, as block means {blocks_acc}", flush=True)

    torch.manual_seed(a.seed)
    cfg = KinemaConfig.kinema_tiny()
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    if a.init != "default":
        init_autoencoder_(net, zero_residual=a.init != "he")
    if a.init == "blockmean":
        block_mean_init_(net)
    if a.unit_latents:
        normalise_latents_(net, clips[:8])
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(a.seed + 1)
    ch, cw = a.crop
    records = []
    t0 = time.time()
    for s in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = train.lr_at(s, a.lr, a.warmup)
        pick = torch.randint(0, a.clips, (a.batch,), generator=gen)
        batch, batch_boxes = clips[pick], clip_boxes[pick]
        y0 = int(torch.randint(0, (batch.shape[-2] - ch) // 8 + 1, (1,), generator=gen)) * 8
        x0 = int(torch.randint(0, (batch.shape[-1] - cw) // 8 + 1, (1,), generator=gen)) * 8
        crop = (..., slice(y0, y0 + ch), slice(x0, x0 + cw))
        loss, parts = train.autoencoder_loss(net, batch[crop], a.ae_noise, a.latent_reg, contextlib.nullcontext,
                                             subject=batch_boxes[crop], subject_weight=a.subject_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s == 0 or (s + 1) % a.eval_every == 0:
            held_psnr, subject_psnr, sat = held_out_figures(net, held, held_boxes)
            rec = dict(init=a.init, unit_latents=a.unit_latents, seed=a.seed, lr=a.lr, subject_weight=a.subject_weight, step=s + 1, held_psnr=round(held_psnr, 2),
                       held_subject_psnr=round(subject_psnr, 2), saturation=round(sat, 3),
                       batch_psnr=round(float(parts["psnr"]), 2), latent_std=round(float(parts["z_std"]), 3),
                       seconds=round(time.time() - t0, 1))
            read = ""
            if readout:
                rec["read"] = readout.of(net)
                read = f", classifier reads {rec['read']}"
                if a.read_noise:
                    rec["read_noisy"] = {str(s_): readout.of(net, s_) for s_ in a.read_noise}
                    read += "".join(f", with latent noise {k} {v}" for k, v in rec["read_noisy"].items())
            records.append(rec)
            print(f"step {rec['step']:5d}: held-out PSNR {held_psnr:5.2f} dB (subject boxes {subject_psnr:5.2f}), "
                  f"saturation {sat:.3f}, "
                  f"batch PSNR {rec['batch_psnr']:5.2f} dB, latent std {rec['latent_std']:.3f}{read} "
                  f"({rec['seconds']:.0f} s)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)
    return records


if __name__ == "__main__":
    main()
