"""kinema-tiny in PyTorch: the training-side mirror of crate/src/{text,denoise,decode}.

Everything follows models/ARCHITECTURE.md; parameter names are the safetensors names of the model
folder (a `Kinema` module's state_dict keys are exactly `text.*`, `dit.*`, `decoder.*`). All modules
are batch-first; the spec's unbatched shapes are the B = 1 case.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig, DiTConfig, KinemaConfig, TextConfig


# --------------------------------------------------------------------------------------------
# text: BERT (all-MiniLM-L6-v2)
# --------------------------------------------------------------------------------------------

class BertEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        # Only token type 0 is ever used (single-segment prompts).
        h = self.word_embeddings(ids) + self.position_embeddings(pos)[None] \
            + self.token_type_embeddings.weight[0]
        return self.LayerNorm(h)


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x.shape

        def split(t):
            return t.view(B, L, self.heads, D // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return o.transpose(1, 2).reshape(B, L, D)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, key_mask):
        h = self.output.dense(self.self(x, key_mask))
        return self.output.LayerNorm(h + x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)


class BertOutput(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)


class BertLayer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, key_mask):
        x = self.attention(x, key_mask)
        h = F.gelu(self.intermediate.dense(x))  # erf GELU, as BERT
        return self.output.LayerNorm(self.output.dense(h) + x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.layers)])


class TextEncoder(nn.Module):
    """Frozen MiniLM. `forward(ids [B,L], mask [B,L] bool)` -> tokens [B,L,H], pooled [B,H]."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None):
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h, mask)
        if mask is None:
            pooled = h.mean(dim=1)
        else:
            m = mask.to(h.dtype)[..., None]
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return h, F.normalize(pooled, p=2, dim=-1)


# --------------------------------------------------------------------------------------------
# denoise: the video DiT
# --------------------------------------------------------------------------------------------

def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """sincos(t·1000): first half cos, second half sin, freqs exp(-ln(10000)·i/(dim/2))."""
    half = dim // 2
    dtype = torch.promote_types(t.dtype, torch.float32)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype, device=t.device) / half)
    args = (t.to(dtype) * 1000.0)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope_tables(cfg: DiTConfig, f0: int, frames: int, device=None, dtype=torch.float32):
    """cos/sin [N, head_dim/2] for the tokens of frames f0..f0+frames, ordered (frame, row, col)."""
    return rope_tables_at(cfg, torch.arange(f0, f0 + frames), device, dtype)


def rope_tables_at(cfg: DiTConfig, frame_pos: torch.Tensor, device=None, dtype=torch.float32):
    """cos/sin [N, head_dim/2] for the tokens of the frames at absolute indices `frame_pos`.

    Column j of the table belongs to the pair (j, j + n/2) of its section; sections are laid out
    consecutively (t, y, x). Angles are computed in float64 so the reference is as exact as f32
    allows; the Rust side computing them in f32 differs by ~1e-6 at the largest frame index.
    """
    hp, wp = cfg.latent_height // cfg.patch, cfg.latent_width // cfg.patch
    f = torch.as_tensor(frame_pos, dtype=torch.float64).cpu()
    r = torch.arange(hp, dtype=torch.float64)
    c = torch.arange(wp, dtype=torch.float64)
    pos = torch.stack(torch.meshgrid(f, r, c, indexing="ij"), dim=-1).reshape(-1, 3)
    angles = []
    for axis, n in enumerate(cfg.rope_split):
        j = torch.arange(n // 2, dtype=torch.float64)
        inv = cfg.rope_theta ** (-2.0 * j / n)
        angles.append(pos[:, axis:axis + 1] * inv[None])
    a = torch.cat(angles, dim=-1)
    return torch.cos(a).to(device, dtype), torch.sin(a).to(device, dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, split) -> torch.Tensor:
    """x [..., N, head_dim]; rotate-half within each section of `split`."""
    outs, off, col = [], 0, 0
    for n in split:
        h = n // 2
        a, b = x[..., off:off + h], x[..., off + h:off + n]
        cs, sn = cos[:, col:col + h], sin[:, col:col + h]
        outs += [a * cs - b * sn, b * cs + a * sn]
        off += n
        col += h
    return torch.cat(outs, dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


@dataclass(frozen=True)
class ChunkKeys:
    """Block-sparse self-attention for training: for each query chunk (a token range), the token
    ranges of the chunks it may see. A dense boolean mask costs the whole N x N product and keeps
    SDPA off its flash kernels; here each query chunk attends to its own keys only, unmasked.
    At training's 4 chunks that is 10 of 16 blocks (block-causal) or 20 of 64 (teacher forcing).

    rows: ((q_start, q_end), ((k_start, k_end), ...)) in token units, queries in order."""

    rows: tuple

    def attend(self, q, k, v):
        outs = []
        for (q0, q1), keys in self.rows:
            if len(keys) == 1:
                (k0, k1), = keys
                kk, vv = k[:, :, k0:k1], v[:, :, k0:k1]
            else:
                kk = torch.cat([k[:, :, a:b] for a, b in keys], dim=2)
                vv = torch.cat([v[:, :, a:b] for a, b in keys], dim=2)
            outs.append(F.scaled_dot_product_attention(q[:, :, q0:q1], kk, vv))
        return torch.cat(outs, dim=2)

    def mask(self, device=None) -> torch.Tensor:
        """The same pattern as a dense [N, N] bool mask (True = may attend)."""
        n = self.rows[-1][0][1]
        m = torch.zeros(n, n, dtype=torch.bool, device=device)
        for (q0, q1), keys in self.rows:
            for a, b in keys:
                m[q0:q1, a:b] = True
        return m


def block_causal_keys(frames: int, cfg: DiTConfig) -> ChunkKeys:
    """A query in chunk q sees chunks q-window+1 .. q."""
    tc = cfg.tokens_per_chunk
    return ChunkKeys(tuple(((q * tc, (q + 1) * tc), ((max(0, q - cfg.window_chunks + 1) * tc, (q + 1) * tc),))
                           for q in range(frames // cfg.chunk_frames)))


def teacher_forced_keys(frames: int, cfg: DiTConfig) -> ChunkKeys:
    """The sequence [clean clip | noisy clip]: clean chunks attend block-causally among
    themselves; noisy chunk q attends to clean chunks q-window+1 .. q-1 and to itself."""
    tc, nc = cfg.tokens_per_chunk, frames // cfg.chunk_frames
    clean = block_causal_keys(frames, cfg).rows
    noisy = []
    for q in range(nc):
        ctx = ((max(0, q - cfg.window_chunks + 1) * tc, q * tc),) if q > 0 else ()
        noisy.append((((nc + q) * tc, (nc + q + 1) * tc), ctx + (((nc + q) * tc, (nc + q + 1) * tc),)))
    return ChunkKeys(clean + tuple(noisy))


def attend(q, k, v, mask):
    """Self-attention under `mask`: None (all visible), a bool tensor, or `ChunkKeys`."""
    if isinstance(mask, ChunkKeys):
        return mask.attend(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class KVCache:
    """Per-block k (after RMSNorm and RoPE) and v of the last `window_chunks - 1` clean chunks.

    k, v are [B, heads, tokens, head_dim]. Block i reads its entry before appending, so a
    cache-fill pass sees exactly the chunks that came before it.
    """

    def __init__(self, cfg: DiTConfig):
        self.max_tokens = (cfg.window_chunks - 1) * cfg.tokens_per_chunk
        self.k: list[torch.Tensor | None] = [None] * cfg.depth
        self.v: list[torch.Tensor | None] = [None] * cfg.depth

    def get(self, i):
        return (self.k[i], self.v[i]) if self.k[i] is not None else None

    def push(self, i, k, v):
        if self.k[i] is not None:
            k, v = torch.cat([self.k[i], k], dim=2), torch.cat([self.v[i], v], dim=2)
        keep = self.max_tokens
        start = max(0, k.shape[2] - keep)
        self.k[i], self.v[i] = (k[:, :, start:], v[:, :, start:]) if keep > 0 else (None, None)

    @property
    def tokens(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]


class SelfAttention(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads, self.split = cfg.heads, list(cfg.rope_split)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.q_norm = RMSNorm(cfg.head_dim)
        self.k_norm = RMSNorm(cfg.head_dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x, cos, sin, mask=None, past=None):
        """Returns (out, (k, v)) where k, v are this call's own keys/values (for the cache)."""
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = apply_rope(self.q_norm(q), cos, sin, self.split)
        k = apply_rope(self.k_norm(k), cos, sin, self.split)
        kk, vv = k, v
        if past is not None:
            kk, vv = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        o = attend(q, kk, vv, mask)
        return self.proj(o.transpose(1, 2).reshape(B, N, D)), (k, v)


class CrossAttention(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x, ctx, ctx_mask=None):
        B, N, D = x.shape
        L, hd = ctx.shape[1], D // self.heads
        q = self.q(x).view(B, N, self.heads, hd).transpose(1, 2)
        kv = self.kv(ctx).view(B, L, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        mask = None if ctx_mask is None else ctx_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask)
        return self.proj(o.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim)
        self.fc2 = nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def _ln(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        self.scale_shift_table = nn.Parameter(torch.randn(6, cfg.dim) / cfg.dim ** 0.5)
        self.attn = SelfAttention(cfg)
        self.cross_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.cross = CrossAttention(cfg)
        self.mlp = Mlp(cfg)

    def forward(self, x, m, ctx, ctx_mask, cos, sin, mask=None, past=None):
        """x [B, T·P, D]; m [B, T, 6, D] (adaLN-single output, one row per frame)."""
        B, N, D = x.shape
        T = m.shape[1]
        mod = (m + self.scale_shift_table)[:, :, :, None, :]  # [B, T, 6, 1, D]
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = mod.unbind(2)

        def per_frame(t):  # [B, N, D] <-> [B, T, P, D] so each token uses its own frame's row
            return t.view(B, T, N // T, D)

        h = (per_frame(_ln(x)) * (1 + sc_a) + sh_a).view(B, N, D)
        a, kv = self.attn(h, cos, sin, mask, past)
        x = x + (per_frame(a) * g_a).view(B, N, D)
        x = x + self.cross(self.cross_norm(x), ctx, ctx_mask)
        h = (per_frame(_ln(x)) * (1 + sc_m) + sh_m).view(B, N, D)
        x = x + (per_frame(self.mlp(h)) * g_m).view(B, N, D)
        return x, kv


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig, text_dim: int):
        super().__init__()
        self.cfg = cfg
        D, p, C = cfg.dim, cfg.patch, cfg.latent_channels
        self.patch_embed = nn.Linear(C * p * p, D)
        self.t_embed = nn.Sequential(nn.Linear(cfg.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.d_embed = nn.Sequential(nn.Linear(cfg.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.pooled_proj = nn.Linear(text_dim, D)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.text_proj = nn.Linear(text_dim, D)
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.final_scale_shift_table = nn.Parameter(torch.randn(2, D) / D ** 0.5)
        self.final_adaln = nn.Linear(D, 2 * D)
        self.final_proj = nn.Linear(D, C * p * p)
        self.init_weights()

    def init_weights(self):
        """Training init: xavier linears, zero biases; the layers that write into the velocity
        and into the shared adaLN start at zero, so a fresh model is a stable no-op (DiT/PixArt)."""
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        for emb in (self.t_embed, self.d_embed):
            nn.init.normal_(emb[0].weight, std=0.02)
            nn.init.normal_(emb[2].weight, std=0.02)
        for lin in (self.adaln[1], self.final_adaln, self.final_proj):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    # ---- pieces shared by both forwards ---------------------------------------------------
    def patchify(self, x):
        B, T, C, H, W = x.shape
        p = self.cfg.patch
        x = x.view(B, T, C, H // p, p, W // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(B, T * (H // p) * (W // p), C * p * p)

    def unpatchify(self, x, T):
        cfg = self.cfg
        B, p, C = x.shape[0], cfg.patch, cfg.latent_channels
        hp, wp = cfg.latent_height // p, cfg.latent_width // p
        x = x.view(B, T, hp, wp, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, T, C, hp * p, wp * p)

    def condition(self, t, d, pooled):
        """c [B, T, D] from per-frame t, d [B, T] and pooled [B, text_dim]."""
        fd = self.cfg.freq_dim
        return self.t_embed(timestep_embedding(t, fd)) + self.d_embed(timestep_embedding(d, fd)) \
            + self.pooled_proj(pooled)[:, None, :]

    def _run(self, x, t, d, tokens, pooled, text_mask, frame_pos, mask, cache, write_cache):
        B, T = x.shape[:2]
        D = self.cfg.dim
        h = self.patch_embed(self.patchify(x))
        c = self.condition(t, d, pooled)
        m = self.adaln(c).view(B, T, 6, D)
        ctx = self.text_proj(tokens)
        cos, sin = rope_tables_at(self.cfg, frame_pos, device=x.device, dtype=x.dtype)
        for i, blk in enumerate(self.blocks):
            past = cache.get(i) if cache is not None else None
            h, (k, v) = blk(h, m, ctx, text_mask, cos, sin, mask, past)
            if write_cache:
                cache.push(i, k, v)
        shift, scale = (self.final_scale_shift_table + self.final_adaln(F.silu(c))
                        .view(B, T, 2, D)).unbind(2)
        h = h.view(B, T, -1, D)
        h = _ln(h) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.unpatchify(self.final_proj(h.view(B, -1, D)), T)

    # ---- training: a whole clip of several chunks -----------------------------------------
    def forward(self, x, t, d, tokens, pooled, text_mask=None, f0: int = 0, dense_mask: bool = False):
        """x [B, T, C, h, w] (T a multiple of chunk_frames), t, d [B, T], tokens [B, L, text_dim],
        pooled [B, text_dim], text_mask [B, L] bool (True = real token). Returns v like x.

        Block-causal windowed self-attention; with the earlier chunks clean at t = d = 0 this
        equals chunk-by-chunk `forward_chunk` with the KV cache (tests/test_parity_props.py).
        dense_mask attends through one masked [N, N] product instead of chunk by chunk: the same
        values, kept so throughput.py can time what the chunks save."""
        T = x.shape[1]
        assert T % self.cfg.chunk_frames == 0
        mask = block_causal_keys(T, self.cfg)
        if dense_mask:
            mask = mask.mask(x.device)
        pos = torch.arange(f0, f0 + T)
        return self._run(x, t, d, tokens, pooled, text_mask, pos, mask, None, False)

    def forward_teacher_forced(self, noisy, clean, t, d, tokens, pooled, text_mask=None,
                               f0: int = 0):
        """Training that matches inference exactly, for every chunk in one pass (CausVid-style
        teacher forcing): the sequence is [clean clip at t = d = 0 | noisy clip]; clean tokens
        attend block-causally among themselves, a noisy chunk q attends to clean chunks
        q-window+1 .. q-1 and to itself. Both halves use the same absolute frame positions.
        Returns v for `noisy` [B, T, C, h, w]; costs a forward over 2T frames. Chunk q's output
        equals `forward_chunk` with a KV cache filled from `clean` (tests/test_model.py)."""
        B, T = noisy.shape[:2]
        cfg = self.cfg
        assert T % cfg.chunk_frames == 0 and clean.shape == noisy.shape
        z = torch.zeros(B, T, device=t.device, dtype=t.dtype)
        x = torch.cat([clean, noisy], dim=1)
        tt, dd = torch.cat([z, t], dim=1), torch.cat([z, d], dim=1)
        mask = teacher_forced_keys(T, cfg)
        pos = torch.arange(f0, f0 + T).repeat(2)
        v = self._run(x, tt, dd, tokens, pooled, text_mask, pos, mask, None, False)
        return v[:, T:]

    # ---- inference: one chunk against the KV cache ----------------------------------------
    def forward_chunk(self, x, t, d, tokens, pooled, f0: int, cache: KVCache | None = None,
                      text_mask=None, write_cache: bool = False):
        """x [B, F, C, h, w] one chunk starting at absolute latent frame f0. Attention over the
        cached chunks plus this one (all visible). With write_cache, this pass's k/v are appended
        (use `fill_cache`)."""
        assert x.shape[1] == self.cfg.chunk_frames
        pos = torch.arange(f0, f0 + x.shape[1])
        return self._run(x, t, d, tokens, pooled, text_mask, pos, None, cache, write_cache)

    def fill_cache(self, clean, tokens, pooled, f0: int, cache: KVCache, text_mask=None):
        z = torch.zeros(clean.shape[:2], device=clean.device, dtype=clean.dtype)
        self.forward_chunk(clean, z, z, tokens, pooled, f0, cache, text_mask, write_cache=True)


# --------------------------------------------------------------------------------------------
# decode: TAEHV-style causal decoder; encode: its training-only mirror
# --------------------------------------------------------------------------------------------

def _conv(cin, cout, bias=True, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


class MemBlock(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.conv = nn.Sequential(_conv(2 * n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))

    def forward(self, x, past):
        return F.relu(self.conv(torch.cat([x, past], dim=1)) + x)


class TGrow(nn.Module):
    """1×1 conv to n·s channels; channel block k becomes output frame k."""

    def __init__(self, n: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n, n * stride, 1, bias=False)

    def forward(self, x):  # [B, C, H, W] -> list of `stride` frames
        return list(self.conv(x).chunk(self.stride, dim=1))


class TPool(nn.Module):
    """Mirror of TGrow: `stride` consecutive frames stacked on channels (frame k = block k),
    then a 1×1 conv back to n channels."""

    def __init__(self, n: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(n * stride, n, 1, bias=False)


def _whole_clip(layers, x, carry: dict | None = None):
    """Run an indexed stack over [B, T, C, H, W], handling time for MemBlock/TGrow/TPool.
    `carry` (a dict, updated) holds each MemBlock's last input frame from the previous window of
    the same clips: run window by window with one dict, a clip gives what it gives whole, in a
    fraction of the memory (windows of whole TPool/TGrow groups)."""
    for idx, layer in enumerate(layers):
        B, T = x.shape[:2]
        if isinstance(layer, MemBlock):
            first = carry.get(idx) if carry is not None else None
            past = torch.cat([torch.zeros_like(x[:, :1]) if first is None else first, x[:, :-1]], dim=1)
            if carry is not None:
                carry[idx] = x[:, -1:]
            y = layer(x.flatten(0, 1), past.flatten(0, 1))
        elif isinstance(layer, TGrow):
            y = layer.conv(x.flatten(0, 1))
            C = y.shape[1] // layer.stride
            x = y.reshape(B, T * layer.stride, C, *y.shape[2:])  # a copy only in channels-last
            continue
        elif isinstance(layer, TPool):
            s = layer.stride
            assert T % s == 0
            y = layer.conv(x.reshape(B * (T // s), s * x.shape[2], *x.shape[3:]))
            x = y.view(B, T // s, *y.shape[1:])
            continue
        else:
            y = layer(x.flatten(0, 1))
        x = y.view(B, T, *y.shape[1:])
    return x


class Decoder(nn.Module):
    """latents [B, T, C, h, w] -> frames [B, 4T, 3, 8h, 8w] in [0, 1]. Children are named by
    their index in ARCHITECTURE.md's table (`decoder.{index}.…`)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        w0, w1, w2, w3 = cfg.widths
        layers = [Clamp(), _conv(cfg.latent_channels, w0), nn.ReLU(),
                  MemBlock(w0), MemBlock(w0), MemBlock(w0), nn.Upsample(scale_factor=2),
                  TGrow(w0, 1), _conv(w0, w1, bias=False),
                  MemBlock(w1), MemBlock(w1), MemBlock(w1), nn.Upsample(scale_factor=2),
                  TGrow(w1, 2), _conv(w1, w2, bias=False),
                  MemBlock(w2), MemBlock(w2), MemBlock(w2), nn.Upsample(scale_factor=2),
                  TGrow(w2, 2), _conv(w2, w3, bias=False), nn.ReLU(), _conv(w3, 3)]
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def forward(self, x, clamp: bool = True, carry: dict | None = None):
        """clamp=False is for training: the clamp's zero gradient outside [0, 1] would leave
        every overshooting pixel without a learning signal (a third of them at initialisation).
        `carry`: see `_whole_clip`."""
        y = _whole_clip(self.children(), x, carry)
        return y.clamp(0, 1) if clamp else y

    def init_state(self) -> dict:
        """Streaming state: for each MemBlock index, its input at the previous frame."""
        return {}

    def stream(self, x, state: dict):
        """Decode latent frames [B, T, C, h, w] that follow the frames already passed through
        `state`; equals the matching slice of `forward` over the whole concatenated clip."""
        out = []
        for f in range(x.shape[1]):
            frames = [x[:, f]]
            for idx, layer in enumerate(self.children()):
                if isinstance(layer, MemBlock):
                    nxt = []
                    for fr in frames:
                        past = state.get(idx)
                        nxt.append(layer(fr, torch.zeros_like(fr) if past is None else past))
                        state[idx] = fr
                    frames = nxt
                elif isinstance(layer, TGrow):
                    frames = [g for fr in frames for g in layer(fr)]
                else:
                    frames = [layer(fr) for fr in frames]
            out += [fr.clamp(0, 1) for fr in frames]
        return torch.stack(out, dim=1)


class Encoder(nn.Module):
    """Training only (not shipped, not in Rust): frames [B, 4T, 3, 8h, 8w] in [0, 1] ->
    latents [B, T, C, h, w]. The decoder's mirror: stride-2 convs for 8× space, TPool(2) twice
    for 4× time, MemBlocks for one frame of causal memory."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        w0, w1, w2, w3 = cfg.widths
        layers = [_conv(3, w3), nn.ReLU(),
                  _conv(w3, w2, bias=False, stride=2), MemBlock(w2), MemBlock(w2), MemBlock(w2),
                  TPool(w2, 2),
                  _conv(w2, w1, bias=False, stride=2), MemBlock(w1), MemBlock(w1), MemBlock(w1),
                  TPool(w1, 2),
                  _conv(w1, w0, bias=False, stride=2), MemBlock(w0), MemBlock(w0), MemBlock(w0),
                  _conv(w0, cfg.latent_channels)]
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def forward(self, x, carry: dict | None = None):
        """`carry`: see `_whole_clip` (windows of a multiple of 4 frames)."""
        assert x.shape[1] % 4 == 0
        return _whole_clip(self.children(), x, carry)


def init_autoencoder_(module: nn.Module, zero_residual: bool = True) -> None:
    """Training init for a fresh Encoder or Decoder (not in __init__: fixtures and the preview
    folder overwrite every weight with `random_init_`). He-normal 3×3 convs, zero biases, and the
    last conv of every MemBlock's branch at zero, so each MemBlock starts as the identity on its
    (non-negative) input. With torch's default init the signal shrinks through the ~20 layers:
    a fresh encoder's latents had std 0.02, and on the CPU (models/train/README.md, "The
    autoencoder's init") such an autoencoder learned colour far more slowly and collapsed at lr 1e-3."""
    for mod in module.modules():
        if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    for mod in module.modules():
        if zero_residual and isinstance(mod, MemBlock):
            nn.init.zeros_(mod.conv[-1].weight)
            nn.init.zeros_(mod.conv[-1].bias)


COLOUR_PATH = 3  # channels of the block-mean path (RGB)


def block_mean_init_(net: nn.ModuleDict, scale: float = 2.0) -> None:
    """Make a fresh autoencoder (after `init_autoencoder_`) start as the block-mean reconstruction
    (`train.block_mean`): in every layer the first 3 channels carry the mean colour of what they
    cover (stride-2 convs average 2×2, TPool averages its frames, TGrow and the upsampling copy),
    the latent's first 3 channels are (mean − 0.5)·`scale`, and the decoder's last conv reads only
    them. The other channels keep their random init and can add to the colour path but nothing
    reads them yet: their weights into the output start at zero, like the MemBlocks' branches.
    Why: a block's mean colour already lets the classifier name most subjects, where a randomly
    initialised autoencoder needs about a thousand CPU steps to match it, and the first GPU
    session's (507 steps) did not (models/train/README.md, "The block-mean start")."""
    k = COLOUR_PATH
    enc, dec = net["encoder"], net["decoder"]

    def own_rows(conv: nn.Conv2d, rows) -> torch.Tensor:
        """Zero the weights of output channels `rows` (and their bias); return the weight."""
        with torch.no_grad():
            conv.weight[rows] = 0
            if conv.bias is not None:
                conv.bias[rows] = 0
        return conv.weight

    def pass_through(conv: nn.Conv2d, gain: float = 1.0, shift: float = 0.0) -> None:
        w = own_rows(conv, slice(0, k))
        with torch.no_grad():
            for c in range(k):
                if conv.stride == (2, 2):  # output i covers input rows 2i-1 .. 2i+1: average 2i, 2i+1
                    w[c, c, 1:3, 1:3] = gain / 4
                else:
                    w[c, c, w.shape[2] // 2, w.shape[3] // 2] = gain
                if shift:
                    conv.bias[c] = shift

    convs = [m for m in enc.children() if isinstance(m, nn.Conv2d)]
    for i, layer in enumerate(enc.children()):
        if isinstance(layer, TPool):  # stacked frames: channel block f is frame f
            w = own_rows(layer.conv, slice(0, k))
            n = layer.conv.out_channels
            with torch.no_grad():
                for f in range(layer.stride):
                    for c in range(k):
                        w[c, f * n + c] = 1 / layer.stride
        elif isinstance(layer, nn.Conv2d) and layer is not convs[-1]:
            pass_through(layer)
    pass_through(convs[-1], gain=scale, shift=-0.5 * scale)

    convs = [m for m in dec.children() if isinstance(m, nn.Conv2d)]
    for layer in dec.children():
        if isinstance(layer, TGrow):  # output channel block f is frame f
            w = own_rows(layer.conv, [f * layer.conv.in_channels + c for f in range(layer.stride) for c in range(k)])
            n = layer.conv.in_channels
            with torch.no_grad():
                for f in range(layer.stride):
                    for c in range(k):
                        w[f * n + c, c] = 1
        elif isinstance(layer, nn.Conv2d) and layer is convs[0]:
            pass_through(layer, gain=1 / scale, shift=0.5)
        elif isinstance(layer, nn.Conv2d) and layer is convs[-1]:
            own_rows(layer, slice(None))
            pass_through(layer)
        elif isinstance(layer, nn.Conv2d):
            pass_through(layer)


@torch.no_grad()
def normalise_latents_(net: nn.ModuleDict, video: torch.Tensor, eps: float = 1e-3) -> dict:
    """Give each latent channel zero mean and unit variance on `video` (frames as the encoder
    reads them) by folding a per-channel affine into the encoder's last conv and its inverse into
    the decoder's first one. Before the decoder's soft input clamp and its zero padding the
    autoencoder computes what it did; after `block_mean_init_` the colour path (centre taps only)
    is unchanged but for the clamp. Why: the DiT's noise is N(0, 1) and `train.latent_reg` asks
    for unit variance, yet the block-mean start's latents had a std of 0.10-0.64 per channel (as
    train.py printed at full scale), so the autoencoder's noise of up to 0.3 swamped the channels
    that are to carry detail, and a DiT would see its signal drowned at noise levels far below
    nominal (models/train/README.md, "Unit-variance latents").
    Returns the mean and std it divided out."""
    enc_last = [m for m in net["encoder"].children() if isinstance(m, nn.Conv2d)][-1]
    dec_first = [m for m in net["decoder"].children() if isinstance(m, nn.Conv2d)][0]
    z = net["encoder"](video)
    mean, std = z.mean((0, 1, 3, 4)), z.std((0, 1, 3, 4)).clamp(min=eps)
    enc_last.weight.div_(std[:, None, None, None])
    enc_last.bias.sub_(mean).div_(std)
    dec_first.bias.add_((dec_first.weight * mean[None, :, None, None]).sum((1, 2, 3)))
    dec_first.weight.mul_(std[None, :, None, None])
    return {"mean": mean, "std": std}


# --------------------------------------------------------------------------------------------
# the whole model and the sampler
# --------------------------------------------------------------------------------------------

class Kinema(nn.Module):
    """state_dict keys are the model folder's tensor names (text.*, dit.*, decoder.*; encoder.*
    only when built with_encoder, and never exported)."""

    def __init__(self, cfg: KinemaConfig, with_encoder: bool = False):
        super().__init__()
        self.cfg = cfg.validate()
        self.text = TextEncoder(cfg.text)
        self.dit = DiT(cfg.dit, text_dim=cfg.text.hidden)
        self.decoder = Decoder(cfg.decoder)
        if with_encoder:
            self.encoder = Encoder(cfg.decoder)

    def shipped_state_dict(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


@dataclass
class ChunkOut:
    index: int
    latent: torch.Tensor  # [B, F, C, h, w] clean latents
    frames: torch.Tensor  # [B, 4F, 3, H, W]


@torch.no_grad()
def sample(model: Kinema, tokens, pooled, num_chunks: int, steps: int, noise=None,
           generator: torch.Generator | None = None, text_mask=None, on_chunk=None,
           uncond=None, guidance: float = 1.0, flow_dit: bool = False):
    """Chunk after chunk: K Euler steps from noise (t = 1 - i/K, d = 1/K), decode the finished
    chunk with the streaming decoder, then a cache-fill pass on it at t = d = 0 (skipped after the
    last chunk: nothing reads it). `noise` is an optional list of [B, F, C, h, w] per chunk.
    Returns frames [B, 4·F·num_chunks, 3, H, W].

    `uncond` (tokens, pooled, mask of the empty caption, B rows padded like `tokens`) with
    `guidance` g != 1 samples with classifier-free guidance, v_u + g (v_c - v_u): the velocity the
    shortcut stage bakes in (train.py --guidance), here as a second pass for measuring a flow DiT.
    The unconditional pass keeps its own cache (its k/v depend on the text), as rows B..2B-1 of one
    doubled batch. The browser never does this: its models have guidance baked in.

    `flow_dit`: the DiT is a flow stage's, trained only at d = 0 (the instantaneous velocity), so
    every step passes d = 0 instead of its size; only a shortcut DiT learned to read d. Fed 1/K,
    flow step 1063's clean-latent estimates were 6-24 % further off at every t (session 30)."""
    cfg = model.cfg.dit
    B = tokens.shape[0]
    shape = (B, cfg.chunk_frames, cfg.latent_channels, cfg.latent_height, cfg.latent_width)
    guided = uncond is not None and guidance != 1.0
    if guided:
        tu, pu, mu = uncond
        if tu.shape != tokens.shape or (text_mask is None) != (mu is None):
            raise ValueError(f"uncond text {tuple(tu.shape)} does not match the prompts' {tuple(tokens.shape)}")
        tokens, pooled = torch.cat([tokens, tu]), torch.cat([pooled, pu])
        text_mask = None if mu is None else torch.cat([text_mask, mu])
    rows = 2 if guided else 1
    cache = KVCache(cfg)
    dec_state = model.decoder.init_state()
    out = []
    for ci in range(num_chunks):
        x = noise[ci] if noise is not None else torch.randn(shape, generator=generator)
        x = x.to(tokens.device, tokens.dtype)
        f0 = ci * cfg.chunk_frames
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((rows * B, shape[1]), 1.0 - i / steps, device=x.device, dtype=x.dtype)
            d = torch.full_like(t, 0.0 if flow_dit else dt)
            v = model.dit.forward_chunk(x.repeat(rows, 1, 1, 1, 1), t, d, tokens, pooled, f0, cache, text_mask)
            if guided:
                vc, vu = v.chunk(2)
                v = vu + guidance * (vc - vu)
            x = x - dt * v
        frames = model.decoder.stream(x, dec_state)
        if on_chunk is not None:
            on_chunk(ChunkOut(ci, x, frames))
        out.append(frames)
        if ci + 1 < num_chunks:
            model.dit.fill_cache(x.repeat(rows, 1, 1, 1, 1), tokens, pooled, f0, cache, text_mask)
    return torch.cat(out, dim=1)


def to_numpy_state(state: dict) -> dict:
    """torch tensors -> numpy arrays for kinema.folder (which is torch-free). numpy has no
    bfloat16, so bf16 (and other non-numpy floats) go through float32, which holds them exactly."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point() and v.dtype not in (torch.float16, torch.float32, torch.float64):
            v = v.float()
        out[k] = v.contiguous().numpy()
    return out


def from_numpy_state(state: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in state.items()}


def param_counts(model: Kinema) -> dict:
    counts = {}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        counts[part] = counts.get(part, 0) + p.numel()
    return counts


@torch.no_grad()
def random_init_(module: nn.Module, generator: torch.Generator) -> None:
    """Seeded all-random weights for parity fixtures and the untrained preview model. Unlike the
    training init nothing is zero, so every weight changes the output and a parity test cannot pass
    by accident; scales keep activations O(1) so errors are not hidden by saturation."""
    for name, p in module.named_parameters():
        r = torch.randn(p.shape, generator=generator)
        leaf = name.rsplit(".", 1)[-1]
        if "embeddings." in name and p.ndim == 2:
            p.copy_(r)
        elif p.ndim >= 2:
            fan_in = math.prod(p.shape[1:])
            gain = math.sqrt(2.0) if p.ndim == 4 else 1.0
            p.copy_(r * gain / math.sqrt(fan_in))
        elif leaf == "bias":
            p.copy_(0.1 * r)
        elif "table" in leaf:
            p.copy_(0.3 * r)
        else:  # norm gains
            p.copy_(1.0 + 0.1 * r)


@torch.no_grad()
def calibrate_decoder_output_(decoder: Decoder, latent: torch.Tensor) -> None:
    """After `random_init_`: rescale the last conv so that on `latent` each RGB channel has mean
    0.5 and std 0.2 before the final clamp. Random convs otherwise saturate nearly every pixel at 0
    or 1, and a clamped pixel hides any error upstream of it.

    The parity fixtures pin these weights byte for byte, and float32 convolutions differ in the
    last bits between CPUs (their SIMD kernels do), so, like npinit.calibrate_decoder_output: the
    statistics in float64 and the factors rounded to a 2^-16 grid before they touch the weights."""
    with torch.no_grad():
        layers = [copy.deepcopy(m).double() for m in decoder.children()]
        h = _whole_clip(layers[:-1], latent.double())
        y = F.conv2d(h.flatten(0, 1), layers[-1].weight, None, padding=1)
        mean, std = y.mean(dim=(0, 2, 3)), y.std(dim=(0, 2, 3))
        grid = 2.0 ** 16
        scale = torch.round(0.2 / std * grid) / grid
        bias = torch.round((0.5 - mean * scale) * grid) / grid
        last = list(decoder.children())[-1]
        last.weight.mul_(scale.to(last.weight.dtype)[:, None, None, None])
        last.bias.copy_(bias.to(last.bias.dtype))
