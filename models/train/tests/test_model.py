import dataclasses

import pytest
import torch

from kinema.config import KinemaConfig
from kinema.model import (Kinema, KVCache, apply_rope, block_causal_keys, calibrate_decoder_output_,
                          random_init_, rope_tables, sample, teacher_forced_keys)


def tiny(seed=0, **dit_overrides):
    cfg = KinemaConfig.parity_tiny()
    cfg.dit = dataclasses.replace(cfg.dit, **dit_overrides)
    m = Kinema(cfg, with_encoder=True)
    g = torch.Generator().manual_seed(seed)
    random_init_(m, g)
    calibrate_decoder_output_(m.decoder, latents(cfg, 1, 3, g))
    return m.eval(), g


def latents(cfg, B, T, g):
    d = cfg.dit
    return torch.randn(B, T, d.latent_channels, d.latent_height, d.latent_width, generator=g)


def test_shapes():
    m, g = tiny()
    cfg, d = m.cfg, m.cfg.dit
    ids = torch.tensor([[101, 2000, 3000, 102], [101, 2000, 102, 0]])
    mask = ids != 0
    mask[0, -1] = True
    tokens, pooled = m.text(ids, mask)
    assert tokens.shape == (2, 4, cfg.text.hidden) and pooled.shape == (2, cfg.text.hidden)
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2))
    T = 2 * d.chunk_frames
    x = latents(cfg, 2, T, g)
    v = m.dit(x, torch.rand(2, T, generator=g), torch.rand(2, T, generator=g), tokens, pooled, mask)
    assert v.shape == x.shape
    v1 = m.dit.forward_chunk(x[:, :d.chunk_frames], torch.rand(2, d.chunk_frames),
                             torch.zeros(2, d.chunk_frames), tokens, pooled, 0, KVCache(d), mask)
    assert v1.shape == (2, d.chunk_frames) + x.shape[2:]
    frames = m.decoder(x)
    assert frames.shape == (2, 4 * T, 3, cfg.video.height, cfg.video.width)
    assert frames.min() >= 0 and frames.max() <= 1
    z = m.encoder(frames)
    assert z.shape == x.shape


def test_text_padding_does_not_change_prompt():
    m, _ = tiny()
    ids = torch.tensor([[101, 2000, 3000, 102]])
    t1, p1 = m.text(ids)
    padded = torch.tensor([[101, 2000, 3000, 102, 0, 0]])
    t2, p2 = m.text(padded, padded != 0)
    assert torch.allclose(t1, t2[:, :4], atol=1e-5) and torch.allclose(p1, p2, atol=1e-6)


def test_decoder_streaming_equals_whole_clip():
    m, g = tiny()
    x = latents(m.cfg, 2, 5, g)
    calibrate_decoder_output_(m.decoder, x)
    whole = m.decoder(x)
    state = m.decoder.init_state()
    parts = [m.decoder.stream(x[:, :1], state), m.decoder.stream(x[:, 1:3], state),
             m.decoder.stream(x[:, 3:], state)]
    streamed = torch.cat(parts, dim=1)
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() < 1e-5
    # The memory really carries information: decoding frame 1 without its past differs.
    alone = m.decoder(x[:, 1:2])
    assert (alone - whole[:, 4:8]).abs().max() > 1e-3


def test_autoencoder_window_by_window_equals_the_whole_clip():
    """`carry` hands each MemBlock's last frame to the next window: encoder and decoder run in
    windows (as measure/round_trip does for 15 s clips) give the whole clip's numbers."""
    from measure.round_trip import round_trip
    m, g = tiny()
    x = latents(m.cfg, 2, 6, g)
    calibrate_decoder_output_(m.decoder, x)
    frames = m.decoder(x)  # 24 frames
    z = m.encoder(frames)
    for window in (4, 8, 12):
        enc, dec = {}, {}
        zs = [m.encoder(frames[:, t:t + window], carry=enc) for t in range(0, 24, window)]
        assert (torch.cat(zs, dim=1) - z).abs().max() < 1e-5
        rec = torch.cat([m.decoder(zw, carry=dec) for zw in zs], dim=1)
        assert (rec - m.decoder(z)).abs().max() < 1e-5
    net = torch.nn.ModuleDict({"encoder": m.encoder, "decoder": m.decoder})
    assert (round_trip(net, frames, window=8) - m.decoder(z)).abs().max() < 1e-5
    # without the carried frames the windows differ: the memory is real
    cut = torch.cat([m.encoder(frames[:, t:t + 8]) for t in range(0, 24, 8)], dim=1)
    assert (cut - z).abs().max() > 1e-3


def test_channels_last_autoencoder_computes_the_same():
    """train.py --channels-last only changes the memory layout of the autoencoder's convolutions:
    encoder and decoder give the same numbers (TGrow's channel-to-frame split included)."""
    m, g = tiny()
    x = latents(m.cfg, 2, 3, g)
    frames = m.decoder(x)
    z = m.encoder(frames)
    m.decoder.to(memory_format=torch.channels_last)
    m.encoder.to(memory_format=torch.channels_last)
    assert m.decoder.get_submodule("1").weight.is_contiguous(memory_format=torch.channels_last)
    # summation order differs between layouts: float32 rounding, relative to values up to ~10
    torch.testing.assert_close(m.decoder(x), frames, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.encoder(frames), z, rtol=1e-4, atol=1e-4)


def test_decoder_and_encoder_are_causal():
    m, g = tiny()
    x = latents(m.cfg, 1, 3, g)
    y = x.clone()
    y[:, 2] += 1.0
    a, b = m.decoder(x), m.decoder(y)
    assert torch.equal(a[:, :8], b[:, :8]) and not torch.equal(a[:, 8:], b[:, 8:])
    f = torch.rand(1, 12, 3, m.cfg.video.height, m.cfg.video.width, generator=g)
    f2 = f.clone()
    f2[:, 8:] = torch.rand(1, 4, *f.shape[2:], generator=g)
    za, zb = m.encoder(f), m.encoder(f2)
    assert torch.equal(za[:, :2], zb[:, :2]) and not torch.equal(za[:, 2:], zb[:, 2:])


N_CHUNKS, BATCH = 4, 2


def chunked_clip(window):
    """A tiny model in f64 and a two-caption batch of N_CHUNKS chunks: clean and noisy latents with
    per-frame noise levels t and step sizes d, for comparing training's forward with the KV cache."""
    m, g = tiny(window_chunks=window)
    m = m.double()
    cfg = m.cfg
    T = cfg.dit.chunk_frames * N_CHUNKS
    ids = torch.tensor([[101, 2000, 3000, 4000, 102], [101, 5000, 102, 0, 0]])
    mask = ids != 0
    tokens, pooled = m.text(ids, mask)
    clean = latents(cfg, BATCH, T, g).double()
    noisy = latents(cfg, BATCH, T, g).double()
    t = torch.rand(BATCH, T, generator=g).double()
    dd = torch.rand(BATCH, T, generator=g).double()
    return m, tokens, pooled, mask, clean, noisy, t, dd


@pytest.mark.parametrize("window", [1, 2, 3])
def test_kv_cache_chunks_equal_block_causal_training_forward(window):
    """THE property that makes training and the browser agree: generating chunk c against the KV
    cache (filled by t = d = 0 passes over the clean earlier chunks) gives exactly the training
    forward's output for chunk c when the earlier chunks of the clip are clean at t = d = 0."""
    m, tokens, pooled, mask, clean, noisy, t, dd = chunked_clip(window)
    d, F, n_chunks = m.cfg.dit, m.cfg.dit.chunk_frames, N_CHUNKS
    cache = KVCache(d)
    for c in range(n_chunks):
        s = slice(c * F, (c + 1) * F)
        v_chunk = m.dit.forward_chunk(noisy[:, s], t[:, s], dd[:, s], tokens, pooled, c * F,
                                      cache, mask)
        m.dit.fill_cache(clean[:, s], tokens, pooled, c * F, cache, mask)
        assert cache.tokens == min(c + 1, window - 1) * d.tokens_per_chunk
        clip = torch.cat([clean[:, :c * F], noisy[:, s]], dim=1)
        zeros = torch.zeros(BATCH, c * F, dtype=t.dtype)
        v_train = m.dit(clip, torch.cat([zeros, t[:, s]], 1), torch.cat([zeros, dd[:, s]], 1),
                        tokens, pooled, mask)
        err = (v_train[:, s] - v_chunk).abs().max().item()
        assert err < 1e-10, (c, err)
    # Sanity: context matters (else the test above would be vacuous).
    if window > 1:
        alone = m.dit.forward_chunk(noisy[:, -F:], t[:, -F:], dd[:, -F:], tokens, pooled,
                                    (n_chunks - 1) * F, KVCache(d), mask)
        assert (alone - v_chunk).abs().max() > 1e-3


@pytest.mark.parametrize("window", [1, 2, 3])
def test_teacher_forced_training_forward_equals_kv_cache_generation(window):
    """All chunks in one training pass, each exactly as the browser computes it."""
    m, tokens, pooled, mask, clean, noisy, t, dd = chunked_clip(window)
    d, F, n_chunks = m.cfg.dit, m.cfg.dit.chunk_frames, N_CHUNKS
    v_train = m.dit.forward_teacher_forced(noisy, clean, t, dd, tokens, pooled, mask, f0=F)
    cache = KVCache(d)
    for c in range(n_chunks):
        s = slice(c * F, (c + 1) * F)
        f0 = F + c * F
        v = m.dit.forward_chunk(noisy[:, s], t[:, s], dd[:, s], tokens, pooled, f0, cache, mask)
        m.dit.fill_cache(clean[:, s], tokens, pooled, f0, cache, mask)
        assert (v_train[:, s] - v).abs().max().item() < 1e-10, c


@pytest.mark.parametrize("keys", [block_causal_keys, teacher_forced_keys])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_chunk_keys_attend_as_their_dense_mask_in_values_and_gradients(keys, window):
    """Training attends chunk by chunk (`ChunkKeys`); it must be the masked dense attention it
    replaces, backward included, and the pattern must be the one the KV cache implies."""
    cfg = dataclasses.replace(KinemaConfig.parity_tiny().dit, window_chunks=window)
    frames = N_CHUNKS * cfg.chunk_frames
    plan = keys(frames, cfg)
    chunk = (torch.arange(frames) // cfg.chunk_frames).repeat_interleave(cfg.tokens_per_frame)
    q, k = chunk[:, None], chunk[None, :]
    visible = (k > q - window) & (k <= q)
    if keys is teacher_forced_keys:
        earlier = (k > q - window) & (k < q)
        visible = torch.cat([torch.cat([visible, torch.zeros_like(visible)], 1),
                             torch.cat([earlier, k == q], 1)], 0)
    assert torch.equal(plan.mask(), visible)
    g = torch.Generator().manual_seed(window)
    qkv = [torch.randn(2, 3, visible.shape[0], 8, generator=g, dtype=torch.float64, requires_grad=True)
           for _ in range(3)]
    out = plan.attend(*qkv)
    ref = torch.nn.functional.scaled_dot_product_attention(*qkv, attn_mask=visible)
    assert (out - ref).abs().max() < 1e-12
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * w).sum(), qkv)
    grads_ref = torch.autograd.grad((ref * w).sum(), qkv)
    for a, b in zip(grads, grads_ref):
        assert (a - b).abs().max() < 1e-12


def test_unpatchify_inverts_patchify():
    m, g = tiny()
    x = latents(m.cfg, 2, 4, g)
    tok = m.dit.patchify(x)
    assert tok.shape == (2, 4 * m.cfg.dit.tokens_per_frame, 16)
    # token (frame 1, row 1, col 2), value (channel 3, py 1, px 0)
    p = m.cfg.dit.patch
    wp = m.cfg.dit.latent_width // p
    assert tok[0, m.cfg.dit.tokens_per_frame + 1 * wp + 2, 3 * p * p + 1 * p + 0] == x[0, 1, 3, 3, 4]
    assert torch.equal(m.dit.unpatchify(tok, 4), x)


def test_rope_preserves_norm_and_is_relative():
    cfg = KinemaConfig.kinema_tiny().dit
    g = torch.Generator().manual_seed(1)
    cos, sin = rope_tables(cfg, 40, 2)
    x = torch.randn(3, cos.shape[0], cfg.head_dim, generator=g)
    y = apply_rope(x, cos, sin, cfg.rope_split)
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)
    # q·k depends on the position difference only: shift every token by 7 frames.
    cos2, sin2 = rope_tables(cfg, 47, 2)
    q, k = x[0], x[1]
    s1 = apply_rope(q, cos, sin, cfg.rope_split) @ apply_rope(k, cos, sin, cfg.rope_split).T
    s2 = apply_rope(q, cos2, sin2, cfg.rope_split) @ apply_rope(k, cos2, sin2, cfg.rope_split).T
    assert torch.allclose(s1, s2, atol=1e-3)
    assert not torch.allclose(s1, q @ k.T, atol=1e-2)


def test_sample_streams_what_the_whole_clip_decoder_gives():
    m, g = tiny()
    d = m.cfg.dit
    tokens, pooled = m.text(torch.tensor([[101, 2000, 102]]))
    noise = [latents(m.cfg, 1, d.chunk_frames, g) for _ in range(3)]
    lat = []
    frames = sample(m, tokens, pooled, 3, 2, noise=noise, on_chunk=lambda c: lat.append(c.latent))
    assert frames.shape == (1, 12 * d.chunk_frames, 3, m.cfg.video.height, m.cfg.video.width)
    whole = m.decoder(torch.cat(lat, dim=1))
    assert (whole - frames).abs().max() < 1e-5
    # Manual Euler for chunk 0 with an empty cache reproduces the sampler's first latent.
    x = noise[0]
    for i in range(2):
        tt = torch.full((1, d.chunk_frames), 1 - i / 2)
        x = x - 0.5 * m.dit.forward_chunk(x, tt, torch.full_like(tt, 0.5), tokens, pooled, 0)
    assert torch.allclose(x, lat[0], atol=1e-6)
    # a flow DiT (trained at d = 0 only) is sampled at d = 0 whatever the step size
    flow = []
    sample(m, tokens, pooled, 1, 2, noise=noise, flow_dit=True, on_chunk=lambda c: flow.append(c.latent))
    x = noise[0]
    for i in range(2):
        tt = torch.full((1, d.chunk_frames), 1 - i / 2)
        x = x - 0.5 * m.dit.forward_chunk(x, tt, torch.zeros_like(tt), tokens, pooled, 0)
    assert torch.allclose(x, flow[0], atol=1e-6) and (flow[0] - lat[0]).abs().max() > 1e-3


def test_training_init_is_a_noop_velocity():
    m = Kinema(KinemaConfig.parity_tiny())
    d = m.cfg.dit
    x = torch.randn(1, d.chunk_frames, d.latent_channels, d.latent_height, d.latent_width)
    tokens, pooled = m.text(torch.tensor([[101, 102]]))
    v = m.dit(x, torch.rand(1, d.chunk_frames), torch.rand(1, d.chunk_frames), tokens, pooled)
    assert torch.count_nonzero(v) == 0


def test_guided_sample_is_cfg_with_one_cache_per_caption():
    """--guidance samples v_u + g (v_c - v_u) with the conditional and the unconditional pass
    each against its own cache; g = 1 is the plain sampler exactly."""
    m, g = tiny()
    m = m.double()
    d = m.cfg.dit
    ids = torch.tensor([[101, 2000, 3000, 102], [101, 5000, 102, 0], [101, 102, 0, 0], [101, 102, 0, 0]])
    mask = ids != 0
    tokens, pooled = m.text(ids, mask)
    cond, uncond = (tokens[:2], pooled[:2], mask[:2]), (tokens[2:], pooled[2:], mask[2:])
    noise = [latents(m.cfg, 2, d.chunk_frames, g).double() for _ in range(3)]
    lat = {}
    for w in (1.0, 3.0):
        got = []
        sample(m, cond[0], cond[1], 3, 2, noise=noise, text_mask=cond[2], uncond=uncond, guidance=w,
               on_chunk=lambda c: got.append(c.latent))
        lat[w] = got
    plain = []
    sample(m, cond[0], cond[1], 3, 2, noise=noise, text_mask=cond[2], on_chunk=lambda c: plain.append(c.latent))
    assert all(torch.equal(a, b) for a, b in zip(lat[1.0], plain))
    # the reference: two separate samplers' caches, combined at every Euler step
    caches = {"c": KVCache(d), "u": KVCache(d)}
    for ci in range(3):
        x = noise[ci]
        for i in range(2):
            tt = torch.full((2, d.chunk_frames), 1 - i / 2, dtype=x.dtype)
            vc = m.dit.forward_chunk(x, tt, torch.full_like(tt, 0.5), *cond[:2], ci * d.chunk_frames, caches["c"], cond[2])
            vu = m.dit.forward_chunk(x, tt, torch.full_like(tt, 0.5), *uncond[:2], ci * d.chunk_frames, caches["u"],
                                     uncond[2])
            x = x - 0.5 * (vu + 3.0 * (vc - vu))
        assert (x - lat[3.0][ci]).abs().max() < 1e-10, ci
        for key, (tk, pl, mk) in (("c", cond), ("u", uncond)):
            m.dit.fill_cache(x, tk, pl, ci * d.chunk_frames, caches[key], mk)
    # not vacuous: guidance changed the clip
    assert (lat[3.0][-1] - plain[-1]).abs().max() > 1e-3
