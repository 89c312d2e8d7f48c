"""Rendered clips through a trained autoencoder and back (`evaluate.py --reference --through-ae`).

Every frame the generator makes comes out of this decoder, from latents in this encoder's space,
so what the attribute classifier still reads in a round-tripped clip is the most a generated clip
can show: the autoencoder's ceiling, between the rendered clips' (the classifier's ceiling) and
the generated ones'. Its PSNR on the same clips, beside the block-mean baseline, says how far the
reconstruction is from the rendered frames in the units the training log uses."""
from __future__ import annotations

from pathlib import Path

import torch

import train
from kinema.model import Decoder, Encoder
from train_io import has_checkpoint, load_checkpoint


def load_autoencoder(path: Path, device) -> tuple[torch.nn.ModuleDict, dict]:
    """The encoder and decoder of a run folder (its `ae/`) or of an `ae/` checkpoint folder
    itself, in eval mode, with the checkpoint's state.json."""
    path = Path(path)
    folder = path / "ae" if has_checkpoint(path / "ae") else path
    if not has_checkpoint(folder):
        raise SystemExit(f"{path}: no autoencoder checkpoint here or in {path / 'ae'}")
    sd, state = load_checkpoint(folder)
    if state.get("stage") not in (None, "autoencoder"):
        raise SystemExit(f"{folder}: a {state['stage']} checkpoint, not the autoencoder's")
    cfg = train.model_config(state.get("toy", False))
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return net.to(device).eval().requires_grad_(False), state


@torch.no_grad()
def round_trip(net: torch.nn.ModuleDict, video: torch.Tensor, window: int = 16) -> torch.Tensor:
    """Frames [B, T, 3, H, W] in [0, 1] encoded and decoded (clamped, as shipped), `window` frames
    at a time with the causal memory carried across (the same frames as whole clips: one 15 s
    clip's first activations are a gigabyte, whole)."""
    dev = next(net.parameters()).device
    enc, dec, out = {}, {}, []
    for t in range(0, video.shape[1], window):
        z = net["encoder"](video[:, t:t + window].to(dev), carry=enc)
        out.append(net["decoder"](z, clamp=True, carry=dec).to(video.device))
    return torch.cat(out, dim=1)


class Fidelity:
    """Mean PSNR of round-tripped clips against the rendered ones, and of the block-mean
    reconstruction (`train.block_mean`) of the same clips: an autoencoder below the block mean
    tells less about each 8×8-pixel, 4-frame block than its mean colour."""

    def __init__(self):
        self.psnr, self.block_psnr = [], []

    def add(self, rendered: torch.Tensor, rec: torch.Tensor) -> None:
        for a, b in zip(rendered.float(), rec.float()):
            self.psnr.append(float(train.psnr(b, a)))
            self.block_psnr.append(float(train.psnr(train.block_mean(a[None])[0], a)))

    def summary(self) -> dict:
        n = len(self.psnr)
        return {"clips": n, "psnr": sum(self.psnr) / n, "block_psnr": sum(self.block_psnr) / n}
