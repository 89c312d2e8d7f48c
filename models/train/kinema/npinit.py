"""Tensor names/shapes of a model folder and the seeded random-init DiT and decoder, in numpy.

This is what lets the default folder be built without torch (default_folder.py). It mirrors
`kinema.model` (names and state-dict order: tests/test_npinit.py compares against `Kinema`) and
`random_init_` + `calibrate_decoder_output_` (the same scale rules; the random numbers themselves
come from numpy's PCG64, not torch's generator, so the values differ and the distributions match).
"""

from __future__ import annotations

import math

import numpy as np

from .config import DecoderConfig, DiTConfig, KinemaConfig, TextConfig

Spec = list[tuple[str, tuple[int, ...]]]


def _linear(name: str, cout: int, cin: int, bias: bool = True) -> Spec:
    return [(f"{name}.weight", (cout, cin))] + ([(f"{name}.bias", (cout,))] if bias else [])


def _norm(name: str, n: int) -> Spec:
    return [(f"{name}.weight", (n,)), (f"{name}.bias", (n,))]


def _conv(name: str, cout: int, cin: int, k: int = 3, bias: bool = True) -> Spec:
    return [(f"{name}.weight", (cout, cin, k, k))] + ([(f"{name}.bias", (cout,))] if bias else [])


def text_spec(c: TextConfig) -> Spec:
    """`text.*` in TextEncoder's state-dict order (module registration order)."""
    s = [("text.embeddings.word_embeddings.weight", (c.vocab_size, c.hidden)),
         ("text.embeddings.position_embeddings.weight", (c.max_positions, c.hidden)),
         ("text.embeddings.token_type_embeddings.weight", (c.type_vocab_size, c.hidden))]
    s += _norm("text.embeddings.LayerNorm", c.hidden)
    for i in range(c.layers):
        p = f"text.encoder.layer.{i}"
        for n in ("query", "key", "value"):
            s += _linear(f"{p}.attention.self.{n}", c.hidden, c.hidden)
        s += _linear(f"{p}.attention.output.dense", c.hidden, c.hidden)
        s += _norm(f"{p}.attention.output.LayerNorm", c.hidden)
        s += _linear(f"{p}.intermediate.dense", c.intermediate, c.hidden)
        s += _linear(f"{p}.output.dense", c.hidden, c.intermediate)
        s += _norm(f"{p}.output.LayerNorm", c.hidden)
    return s


def dit_spec(c: DiTConfig, text_dim: int) -> Spec:
    """`dit.*` in DiT's state-dict order. A module's own parameters come before its children's
    (torch's state_dict rule), hence final_scale_shift_table first."""
    D, pp = c.dim, c.latent_channels * c.patch * c.patch
    s = [("dit.final_scale_shift_table", (2, D))]
    s += _linear("dit.patch_embed", D, pp)
    for e in ("t_embed", "d_embed"):
        s += _linear(f"dit.{e}.0", D, c.freq_dim) + _linear(f"dit.{e}.2", D, D)
    s += _linear("dit.pooled_proj", D, text_dim)
    s += _linear("dit.adaln.1", 6 * D, D)
    s += _linear("dit.text_proj", D, text_dim)
    for i in range(c.depth):
        p = f"dit.blocks.{i}"
        s += [(f"{p}.scale_shift_table", (6, D))]
        s += _linear(f"{p}.attn.qkv", 3 * D, D)
        s += [(f"{p}.attn.q_norm.weight", (c.head_dim,)), (f"{p}.attn.k_norm.weight", (c.head_dim,))]
        s += _linear(f"{p}.attn.proj", D, D)
        s += _norm(f"{p}.cross_norm", D)
        s += _linear(f"{p}.cross.q", D, D) + _linear(f"{p}.cross.kv", 2 * D, D)
        s += _linear(f"{p}.cross.proj", D, D)
        s += _linear(f"{p}.mlp.fc1", c.mlp_ratio * D, D) + _linear(f"{p}.mlp.fc2", D, c.mlp_ratio * D)
    s += _linear("dit.final_adaln", 2 * D, D)
    s += _linear("dit.final_proj", pp, D)
    return s


def decoder_layers(c: DecoderConfig) -> list[tuple]:
    """ARCHITECTURE.md's decoder table as (kind, args) by index."""
    w0, w1, w2, w3 = c.widths
    L = [("clamp",), ("conv", c.latent_channels, w0, True), ("relu",)]
    for n, nxt, grow in ((w0, w1, 1), (w1, w2, 2), (w2, w3, 2)):
        L += [("mem", n)] * 3 + [("up",), ("tgrow", n, grow), ("conv", n, nxt, False)]
    return L + [("relu",), ("conv", w3, 3, True)]


def decoder_spec(c: DecoderConfig) -> Spec:
    s = []
    for i, layer in enumerate(decoder_layers(c)):
        p = f"decoder.{i}"
        if layer[0] == "conv":
            s += _conv(p, layer[2], layer[1], bias=layer[3])
        elif layer[0] == "mem":
            n = layer[1]
            s += _conv(f"{p}.conv.0", n, 2 * n) + _conv(f"{p}.conv.2", n, n) + _conv(f"{p}.conv.4", n, n)
        elif layer[0] == "tgrow":
            s += _conv(f"{p}.conv", layer[1] * layer[2], layer[1], k=1, bias=False)
    return s


def shipped_spec(cfg: KinemaConfig) -> dict[str, Spec]:
    return {"text": text_spec(cfg.text), "dit": dit_spec(cfg.dit, cfg.text.hidden),
            "decoder": decoder_spec(cfg.decoder)}


# ------------------------------------------------------------------------------- random init

def random_init(spec: Spec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 weights by `kinema.model.random_init_`'s rules: nothing zero (so a parity test
    cannot pass by accident), scales that keep activations O(1): matrices N(0, 1/fan_in) (×2 in
    variance for convs, which feed ReLUs), embeddings N(0, 1), biases N(0, 0.1²), adaLN tables
    N(0, 0.3²), norm gains 1 + N(0, 0.1²). One draw of shape p per parameter, in spec order."""
    out = {}
    for name, shape in spec:
        r = rng.standard_normal(shape, dtype=np.float32)
        leaf = name.rsplit(".", 1)[-1]
        if "embeddings." in name and len(shape) == 2:
            v = r
        elif len(shape) >= 2:
            gain = math.sqrt(2.0) if len(shape) == 4 else 1.0
            v = r * np.float32(gain / math.sqrt(math.prod(shape[1:])))
        elif leaf == "bias":
            v = r * np.float32(0.1)
        elif "table" in leaf:
            v = r * np.float32(0.3)
        else:  # norm gains
            v = np.float32(1.0) + np.float32(0.1) * r
        out[name] = v.astype(np.float32)
    return out


def random_dit(cfg: KinemaConfig, seed: int) -> dict[str, np.ndarray]:
    return random_init(dit_spec(cfg.dit, cfg.text.hidden), np.random.default_rng(seed))


def random_decoder(cfg: KinemaConfig, seed: int) -> dict[str, np.ndarray]:
    """Random decoder, then its last conv calibrated on a probe of 3 latent frames drawn from the
    same stream (as export.py's torch version does)."""
    rng = np.random.default_rng(seed)
    w = random_init(decoder_spec(cfg.decoder), rng)
    d = cfg.dit
    probe = rng.standard_normal((3, d.latent_channels, d.latent_height, d.latent_width),
                                dtype=np.float32)
    calibrate_decoder_output(w, cfg.decoder, probe)
    return w


# ------------------------------------------------------------------ decoder forward (numpy)

def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x [C, H, W], w [O, C, k, k] (k 1 or 3, stride 1, zero padding k//2) -> [O, H, W]."""
    k = w.shape[-1]
    if k == 1:
        y = np.tensordot(w[:, :, 0, 0], x, axes=([1], [0]))
    else:
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # [C, H, W, 3, 3]
        y = np.tensordot(w, win, axes=([1, 2, 3], [0, 3, 4]))
    return y if b is None else y + b[:, None, None]


def decode_stream(w: dict[str, np.ndarray], c: DecoderConfig, latents: np.ndarray,
                  upto: int | None = None, dtype=np.float64) -> list[np.ndarray]:
    """Latent frames [T, C, h, w] -> the list of output frames [3, H, W] (clamped to [0, 1]), frame
    by frame like `Decoder.stream`. With `upto`, stops before layer index `upto` and returns that
    layer's inputs (no clamp). Computes in `dtype` (float64 for calibration: see below)."""
    layers = decoder_layers(c)[:upto]
    W = {k: v.astype(dtype) for k, v in w.items()}
    past: dict[int, np.ndarray] = {}
    out = []
    for f in range(latents.shape[0]):
        frames = [latents[f].astype(dtype)]
        for i, layer in enumerate(layers):
            p, kind = f"decoder.{i}", layer[0]
            nxt = []
            for x in frames:
                if kind == "clamp":
                    nxt.append(np.tanh(x / 3) * 3)
                elif kind == "relu":
                    nxt.append(np.maximum(x, 0))
                elif kind == "up":
                    nxt.append(x.repeat(2, axis=1).repeat(2, axis=2))
                elif kind == "conv":
                    nxt.append(conv2d(x, W[f"{p}.weight"], W.get(f"{p}.bias")))
                elif kind == "tgrow":
                    y = conv2d(x, W[f"{p}.conv.weight"], None)
                    nxt += np.split(y, layer[2], axis=0)
                elif kind == "mem":
                    prev = past.get(i, np.zeros_like(x))
                    past[i] = x
                    h = np.concatenate([x, prev], axis=0)
                    for j in (0, 2, 4):
                        h = conv2d(h, W[f"{p}.conv.{j}.weight"], W[f"{p}.conv.{j}.bias"])
                        if j < 4:
                            h = np.maximum(h, 0)
                    nxt.append(np.maximum(h + x, 0))
            frames = nxt
        out += frames if upto is not None else [np.clip(x, 0, 1) for x in frames]
    return out


def calibrate_decoder_output(w: dict[str, np.ndarray], c: DecoderConfig, latent: np.ndarray) -> None:
    """In place, like `calibrate_decoder_output_`: rescale the last conv so that on `latent` each
    RGB channel has mean 0.5 and std 0.2 before the final clamp (random convs otherwise saturate
    nearly every pixel at 0 or 1).

    The committed manifest pins the sha256 of the f16 result, so it must not depend on the machine:
    BLAS and numpy's SIMD tanh may differ in the last bits between CPUs. Hence float64, and the
    factors rounded to a 2^-16 grid before they touch the weights; a last-bit difference can then
    only matter if it straddles a grid point (odds ~1e-11 per factor)."""
    last = len(decoder_layers(c)) - 1
    h = np.stack(decode_stream(w, c, latent, upto=last))  # [frames, w3, H, W]
    key = f"decoder.{last}"
    y = np.stack([conv2d(x, w[f"{key}.weight"].astype(np.float64), None) for x in h])
    mean, std = y.mean(axis=(0, 2, 3)), y.std(axis=(0, 2, 3), ddof=1)  # torch.std is unbiased
    grid = 2.0 ** 16
    scale = np.round(0.2 / std * grid) / grid
    bias = np.round((0.5 - mean * scale) * grid) / grid
    w[f"{key}.weight"] = (w[f"{key}.weight"] * scale[:, None, None, None].astype(np.float32))
    w[f"{key}.bias"] = bias.astype(np.float32)
