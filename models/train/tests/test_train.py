"""Toy end-to-end: render -> a few steps of each stage -> export the model folder with the
exporter's writer -> read it back and sample a chunk from it."""
import contextlib
import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parents[1]


def _run(*args):
    cmd = [sys.executable, str(HERE / "train.py"), *args, "--toy", "--threads", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_toy_end_to_end(tmp_path):
    run = tmp_path / "run"
    _run("autoencoder", "--run", str(run), "--steps", "3", "--log-every", "1")
    _run("flow", "--run", str(run), "--steps", "3", "--log-every", "1")
    # resuming continues the step count (and the data stream) instead of starting over
    _run("flow", "--run", str(run), "--steps", "2", "--log-every", "1")
    _run("shortcut", "--run", str(run), "--steps", "2", "--log-every", "1")
    state = json.loads((run / "flow" / "state.json").read_text())
    assert state["step"] == 5 and state["sessions"] == 2
    for stage in ("ae", "flow", "shortcut"):
        for f in (run / stage).glob("*.safetensors"):
            assert f.stat().st_size <= 16 * 1024 * 1024
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"autoencoder", "flow", "shortcut"}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    assert [r["step"] for r in log if r["stage"] == "flow"] == [1, 2, 3, 4, 5]
    # the DiT stages log how much the captions matter (text_gap), the autoencoder has none
    assert all(math.isfinite(r["text_gap"]) for r in log if r["stage"] in ("flow", "shortcut"))
    assert all("text_gap" not in r for r in log if r["stage"] == "autoencoder")
    # ... and its PSNR beside the block-mean PSNR of the same batch, the scale it is read against
    ae = [r for r in log if r["stage"] == "autoencoder"]
    assert all(0 < r["psnr"] < 60 and 0 < r["block_psnr"] < 60 for r in ae)
    # ... and inside the subject's box, where the eval's subject, colour and motion heads look
    assert all(0 < r["subject_psnr"] < 60 and 0 < r["subject_block_psnr"] < 60 for r in ae)

    out = tmp_path / "model"
    _run("export", "--run", str(run), "--out", str(out), "--dtype", "f32", "--notice", "A toy: noise.")
    from kinema.folder import read_model_folder
    from kinema.model import Kinema, sample
    from kinema.model import from_numpy_state
    manifest, cfg, sd = read_model_folder(out)
    assert manifest["trained"] is True and manifest["notice"] == "A toy: noise."
    model = Kinema(cfg)
    model.load_state_dict(from_numpy_state(sd), strict=True)
    # the exported DiT is the shortcut stage's EMA (bf16 in the checkpoint, so compare loosely)
    from train_io import load_checkpoint
    ck, _ = load_checkpoint(run / "shortcut")
    assert torch.allclose(model.state_dict()["dit.final_proj.weight"], ck["dit.final_proj.weight"])
    tokens = torch.randn(1, 5, cfg.text.hidden)
    pooled = torch.nn.functional.normalize(torch.randn(1, cfg.text.hidden), dim=-1)
    frames = sample(model, tokens, pooled, num_chunks=2, steps=2, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (1, 2 * 4 * cfg.dit.chunk_frames, 3, cfg.video.height, cfg.video.width)
    assert torch.isfinite(frames).all()

    # The eval command reads the run folder itself the way export assembles it: the same clip.
    from measure.generate import generate, load_generator
    from_run, tok, info = load_generator(run)
    from_folder, _, folder_info = load_generator(out)
    assert info["dit_step"] == 2
    # both name the step count the shortcut stage was trained for, which the eval then samples with
    assert info["sampler_steps"] == folder_info["sampler_steps"] == manifest["training"]["sampler_steps"] == 4
    clips = [generate(m, tok, ["a red ball bouncing"], [3], 2, 2) for m in (from_run, from_folder)]
    assert torch.equal(clips[0], clips[1])


def test_a_run_keeps_the_architecture_its_dit_trained_with(tmp_path):
    """A run from before a default changed (the first real run read 32 prompt tokens; the default
    is now 128) resumes, starts its shortcut stage, exports and evaluates with the token count its
    DiT learned, from its state.json."""
    import train
    from kinema.folder import read_model_folder
    from measure.generate import load_generator
    run = tmp_path / "run"
    _run("autoencoder", "--run", str(run), "--steps", "1")
    _run("flow", "--run", str(run), "--steps", "1")
    state_file = run / "flow" / "state.json"
    state = json.loads(state_file.read_text())
    default = train.model_config(True).text.max_text_tokens
    state["architecture"]["text"]["max_text_tokens"] = default // 2
    state_file.write_text(json.dumps(state))
    _run("flow", "--run", str(run), "--steps", "1")
    _run("shortcut", "--run", str(run), "--steps", "1")
    for stage in ("flow", "shortcut"):
        recorded = json.loads((run / stage / "state.json").read_text())["architecture"]
        assert recorded["text"]["max_text_tokens"] == default // 2, stage
    state_file = run / "shortcut" / "state.json"
    state = json.loads(state_file.read_text())
    cfg, *_ = train.shipped_state(run, True)
    assert cfg.text.max_text_tokens == default // 2
    _, tok, _ = load_generator(run)
    assert len(tok.ids(" ".join(["red"] * default))) == default // 2
    out = tmp_path / "model"
    _run("export", "--run", str(run), "--out", str(out), "--dtype", "f32")
    _, folder_cfg, _ = read_model_folder(out)
    assert folder_cfg.text.max_text_tokens == default // 2
    # a decoder that is not the one the DiT's architecture names is refused, not mixed in
    state["architecture"]["decoder"]["widths"] = [w * 2 for w in state["architecture"]["decoder"]["widths"]]
    state_file.write_text(json.dumps(state))
    with pytest.raises(SystemExit, match="different decoder architectures"):
        train.shipped_state(run, True)


def test_once_a_dit_exists_only_the_decoder_trains(tmp_path):
    """A DiT learns the encoder's latent space, so after flow has trained, the autoencoder stage
    refuses to move the encoder; --freeze-encoder trains the decoder alone and keeps the encoder
    bit for bit."""
    from train_io import load_checkpoint
    run = tmp_path / "run"
    with pytest.raises(AssertionError, match="has none"):
        _run("autoencoder", "--run", str(run), "--steps", "1", "--freeze-encoder")
    _run("autoencoder", "--run", str(run), "--steps", "2")
    _run("flow", "--run", str(run), "--steps", "1")
    before, _ = load_checkpoint(run / "ae")
    with pytest.raises(AssertionError, match="flow learned this encoder's latents"):
        _run("autoencoder", "--run", str(run), "--steps", "1")
    _run("autoencoder", "--run", str(run), "--steps", "2", "--freeze-encoder")
    after, state = load_checkpoint(run / "ae")
    assert state["step"] == 4 and state["encoder_frozen"] is True
    enc = [k for k in before if k.startswith("encoder.")]
    dec = [k for k in before if k.startswith("decoder.")]
    assert enc and dec
    assert all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)


def test_autoencoder_loss_reaches_pixels_outside_the_clamp():
    """The decoder clamps to [0, 1] when used, but trains on its raw output: a clamp in the loss
    would give every overshooting pixel zero gradient (a third of them at initialisation)."""
    import train
    from kinema.config import KinemaConfig
    from kinema.model import Decoder, Encoder
    cfg = KinemaConfig.parity_tiny()
    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    last = list(net["decoder"].children())[-1]
    with torch.no_grad():
        last.bias.fill_(-5.0)  # every output pixel far below 0
    video = torch.rand(1, 4, 3, cfg.video.height, cfg.video.width)
    with torch.no_grad():
        assert float(net["decoder"](net["encoder"](video)).max()) == 0.0  # what the clamp shows
    loss, parts = train.autoencoder_loss(net, video, 0.0, 0.0, contextlib.nullcontext)
    loss.backward()
    assert float(last.bias.grad.abs().min()) > 0
    assert 0 < float(parts["psnr"]) < 20  # measured on the clamped output


def test_subject_mask_covers_each_frames_box():
    import train
    box = torch.tensor([[8.0, 4.0, 16.0, 12.0], [-20.0, -20.0, -10.0, -10.0]]).numpy()  # frame 2: off screen
    m = train.subject_mask([{"box": box}], 2, 16, 24, margin=0)
    assert m.shape == (1, 2, 1, 16, 24)
    assert int(m[0, 0].sum()) == 64 and int(m[0, 0, 0, 4:12, 8:16].sum()) == 64
    assert int(m[0, 1].sum()) == 0
    assert int(train.subject_mask([{"box": box}], 2, 16, 24, margin=2)[0, 0].sum()) == 12 * 12


class _Fixed(torch.nn.Module):
    """A stand-in encoder or decoder: returns `out` whatever it is given (and a gradient path)."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, clamp=True):
        return self.out * self.scale


def test_the_subject_weight_moves_the_loss_towards_the_subjects_pixels():
    """--subject-weight: an error inside the subject's box costs more than the same error
    outside it; the subject's PSNR is reported either way, beside its block-mean baseline."""
    import train
    video = torch.full((1, 4, 3, 16, 16), 0.5)
    mask = torch.zeros(1, 4, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1  # a 4x4 subject: 1/16 of the frame
    z = torch.zeros(1, 1, 4, 2, 2)
    err_in, err_out = video.clone(), video.clone()
    err_in[..., 4:8, 4:8] += 0.1
    err_out[..., 8:12, 8:12] += 0.1
    losses = {}
    for name, rec in (("in", err_in), ("out", err_out)):
        for w in (0.0, 8.0):
            net = torch.nn.ModuleDict({"encoder": _Fixed(z), "decoder": _Fixed(rec)})
            loss, parts = train.autoencoder_loss(net, video, 0.0, 0.0, contextlib.nullcontext, subject=mask,
                                                 subject_weight=w)
            losses[name, w] = float(loss.detach())
            # 0.1 everywhere in the box, or nothing there
            assert float(parts["subject_psnr"]) == pytest.approx(20.0 if name == "in" else 100.0, abs=1e-3)
            assert float(parts["subject_block_psnr"]) == pytest.approx(100.0, abs=1e-3)  # a flat clip
    assert losses["in", 0.0] == pytest.approx(losses["out", 0.0])
    # weights 9 inside, 1 outside, normalised by their mean (1.5): the subject's error counts 6x more
    assert losses["in", 8.0] > 5 * losses["out", 8.0]
    net = torch.nn.ModuleDict({"encoder": _Fixed(z), "decoder": _Fixed(err_in)})
    _, parts = train.autoencoder_loss(net, video, 0.0, 0.0, contextlib.nullcontext, subject=torch.zeros_like(mask))
    assert "subject_psnr" not in parts  # no subject in view: nothing to report


def test_the_latent_mask_marks_the_blocks_the_subject_touches():
    """A latent covers 4 frames x 8 x 8 pixels; it is marked when any of its pixels is the subject's."""
    import train
    mask = torch.zeros(1, 8, 1, 16, 24)
    mask[0, 5, 0, 7, 9] = 1  # one pixel in frame 5: latent frame 1, block row 0, column 1
    m = train.latent_mask(mask)
    assert m.shape == (1, 2, 1, 2, 3)
    assert int(m.sum()) == 1 and int(m[0, 1, 0, 0, 1]) == 1


def test_the_flow_subject_weight_moves_the_error_towards_the_subjects_latents():
    """--subject-weight in the flow stage: a velocity error on the subject's latents costs more
    than the same error elsewhere in the frame; a frame with no subject in view, or weight 0, keeps
    the plain mean."""
    import train
    target = torch.zeros(1, 2, 4, 4, 4)
    subject = torch.zeros(1, 2, 1, 4, 4)
    subject[0, 0, 0, :2, :2] = 1  # a quarter of frame 0; none in frame 1
    err_in, err_out = target.clone(), target.clone()
    err_in[..., :2, :2] = 1
    err_out[..., 2:, 2:] = 1
    plain = train.weighted_latent_error(err_in, target)
    assert torch.allclose(plain, torch.full((1, 2), 0.25))
    assert torch.equal(train.weighted_latent_error(err_in, target, subject, 0.0), plain)
    inside = train.weighted_latent_error(err_in, target, subject, 8.0)
    outside = train.weighted_latent_error(err_out, target, subject, 8.0)
    # frame 0: weights 9 on a quarter, 1 elsewhere (mean 3): 9/12 of the weight inside against 1/12 outside
    assert float(inside[0, 0]) == pytest.approx(0.75) and float(outside[0, 0]) == pytest.approx(1 / 12)
    assert float(inside[0, 1]) == pytest.approx(0.25) and float(outside[0, 1]) == pytest.approx(0.25)


def test_the_flow_stage_trains_on_the_subjects_latent_mask(tmp_path):
    """A toy flow run with --subject-weight renders its batches with labels, logs the mask's share
    of the latents and records the weight in its checkpoint."""
    run = tmp_path / "run"
    _run("autoencoder", "--run", str(run), "--steps", "1", "--log-every", "1")
    out = _run("flow", "--run", str(run), "--steps", "2", "--log-every", "1", "--subject-weight", "8")
    shares = [float(w.split("=")[1]) for w in out.split() if w.startswith("subject_share=")]
    assert len(shares) == 2 and all(0 < x < 1 for x in shares)
    assert json.loads((run / "flow" / "state.json").read_text())["subject_weight"] == 8.0


def test_text_gap_is_zero_for_a_model_that_ignores_text(tmp_path):
    """The logged text_gap (loss rise with swapped captions) is exactly 0 for a fresh DiT, whose
    output layer starts at zero, and becomes measurable once the DiT reads its captions."""
    import types

    import train
    from kinema.config import KinemaConfig
    from kinema.model import DiT, TextEncoder, random_init_
    cfg = KinemaConfig.parity_tiny()
    torch.manual_seed(0)
    enc = TextEncoder(cfg.text)
    random_init_(enc, torch.Generator().manual_seed(7))
    stub = types.SimpleNamespace(text=train.TextCache(enc.eval(), cfg.text.max_text_tokens, "cpu"),
                                 autocast=contextlib.nullcontext)
    d = cfg.dit
    z0 = torch.randn(4, 2 * d.chunk_frames, d.latent_channels, d.latent_height, d.latent_width)
    caps = ["a red ball at night", "a cat in the garden", "a car in the snow", "a fish under water"]
    dit = DiT(d, text_dim=cfg.text.hidden)
    assert train.Trainer.text_gap(stub, dit, z0, caps) == 0.0
    random_init_(dit, torch.Generator().manual_seed(3))  # every layer live, text included
    assert abs(train.Trainer.text_gap(stub, dit, z0, caps)) > 1e-4


def test_fresh_autoencoder_keeps_its_signal():
    """A fresh autoencoder starts with O(1) latents and MemBlocks that pass their input through;
    under torch's default init the latents came out at std ~0.02, and colour was learned late."""
    from kinema.config import KinemaConfig
    from kinema.model import Decoder, Encoder, MemBlock, init_autoencoder_
    cfg = KinemaConfig.kinema_tiny()
    torch.manual_seed(0)
    video = torch.rand(1, 4, 3, 72, 128)
    default = Encoder(cfg.decoder)
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    init_autoencoder_(net)
    with torch.no_grad():
        z_default, z = default(video), net["encoder"](video)
        rec = net["decoder"](z, clamp=False)
    assert float(z_default.std()) < 0.05  # what the init is for
    assert 0.1 < float(z.std()) < 10
    assert torch.isfinite(rec).all() and float(rec.abs().max()) < 100
    blocks = [m for m in net.modules() if isinstance(m, MemBlock)]
    assert len(blocks) == 18
    x, past = torch.rand(2, 32, 9, 16), torch.rand(2, 32, 9, 16)
    with torch.no_grad():
        assert torch.equal(blocks[-1](x, past), x)


def test_block_mean_init_starts_at_the_block_means():
    """After `block_mean_init_` a fresh autoencoder reconstructs every 8×8-pixel, 4-frame block as
    its mean colour (up to the decoder's tanh clamp), nothing downstream reads the random latent
    channels yet, and they still get a gradient, so training can add detail from there."""
    from kinema.config import KinemaConfig
    import train
    from kinema.model import Decoder, Encoder, block_mean_init_, init_autoencoder_
    cfg = KinemaConfig.kinema_tiny()
    torch.manual_seed(0)
    # smooth colour fields plus fine noise: the block means differ from the pixels and between blocks
    coarse = torch.rand(2, 2, 3, 3, 5)
    video = (torch.nn.functional.interpolate(coarse.flatten(0, 1), size=(72, 128), mode="bilinear")
             .view(2, 2, 3, 72, 128).repeat_interleave(4, dim=1) * 0.8 + 0.2 * torch.rand(2, 8, 3, 72, 128))
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    init_autoencoder_(net)
    with torch.no_grad():
        plain = net["decoder"](net["encoder"](video), clamp=False)
    block_mean_init_(net)
    blocks = train.block_mean(video)
    z = net["encoder"](video)
    rec = net["decoder"](z, clamp=False)
    assert float((plain - blocks).abs().max()) > 0.3  # the plain init is nowhere near
    assert float((rec.detach() - blocks).abs().max()) < 0.03
    assert float(z.detach()[:, :, 3:].std()) > 0.05  # the random channels are alive ...
    with torch.no_grad():
        other = net["decoder"](z + torch.cat([torch.zeros_like(z[:, :, :3]), torch.randn_like(z[:, :, 3:])], 2),
                               clamp=False)
    assert torch.equal(other, rec)  # ... but nothing reads them yet
    ((rec - video) ** 2).mean().backward()
    last = [m for m in net["decoder"].children() if isinstance(m, torch.nn.Conv2d)][-1]
    assert float(last.weight.grad[:, 3:].abs().max()) > 0  # the output can learn to read them


def test_normalise_latents_gives_unit_latents_and_keeps_the_reconstruction():
    """`normalise_latents_` leaves each latent channel at zero mean and unit variance on the video
    it is given, and after `block_mean_init_` the decoder shows what it showed before (its soft
    input clamp set aside: the fold sits behind it)."""
    from kinema.config import KinemaConfig
    from kinema.model import Clamp, Decoder, Encoder, block_mean_init_, init_autoencoder_, normalise_latents_
    cfg = KinemaConfig.kinema_tiny()
    torch.manual_seed(0)
    video = torch.rand(2, 8, 3, 72, 128) * 0.6 + 0.2 * torch.rand(2, 8, 3, 1, 1)
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    init_autoencoder_(net)
    block_mean_init_(net)

    def unclamped_reconstruction():
        decoder = copy.deepcopy(net["decoder"])
        assert isinstance(decoder._modules["0"], Clamp)
        decoder._modules["0"] = torch.nn.Identity()
        with torch.no_grad():
            z = net["encoder"](video)
            return z, decoder(z, clamp=False)

    z0, before = unclamped_reconstruction()
    assert float(z0.std((0, 1, 3, 4)).max()) < 0.9  # far from unit variance: what it is for
    normalise_latents_(net, video)
    z1, after = unclamped_reconstruction()
    assert float(z1.mean((0, 1, 3, 4)).abs().max()) < 1e-4
    assert float((z1.std((0, 1, 3, 4)) - 1).abs().max()) < 1e-4
    assert float((after - before).abs().max()) < 1e-4


def test_a_small_batch_still_starts_from_unit_latents(tmp_path):
    """The latents are normalised on at least CALIBRATION_CLIPS clips whatever the batch: on one
    clip, channels it hardly uses were scaled up for every other clip (z_std 2.0-5.8 at the first
    step of these runs before)."""
    for seed in ("1", "3"):
        run = tmp_path / seed
        _run("autoencoder", "--run", str(run), "--steps", "1", "--log-every", "1", "--batch", "1", "--seed", seed)
        first = json.loads((run / "log.jsonl").read_text().splitlines()[0])
        assert 0.6 < first["z_std"] < 1.6, (seed, first["z_std"])


def test_autoencoder_stage_can_start_from_the_block_means(tmp_path):
    """A fresh autoencoder starts from the block means by default: its first batch is reconstructed
    about as well as by them (the latents' training noise aside), where `--ae-init random` is far
    below; its latents start near unit variance (`normalise_latents_`, on clips of their own); and
    the checkpoint says how it began, across a resumption too."""
    def first_step(run: Path, *init: str):
        _run("autoencoder", "--run", str(run), "--steps", "1", "--log-every", "1", *init)
        return [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()][0]

    start = first_step(tmp_path / "blockmean")
    plain = first_step(tmp_path / "random", "--ae-init", "random")
    assert abs(start["psnr"] - start["block_psnr"]) < 2.0
    assert 0.6 < start["z_std"] < 1.6, start["z_std"]
    assert plain["psnr"] < plain["block_psnr"] - 4
    _run("autoencoder", "--run", str(tmp_path / "blockmean"), "--steps", "1", "--ae-init", "random")
    state = json.loads((tmp_path / "blockmean" / "ae" / "state.json").read_text())
    assert state["ae_init"] == "blockmean" and state["step"] == 2


def test_cpu_bf16_warns_only_where_the_cpu_flags_show_no_bf16_units():
    """An AVX2-only CPU emulates bf16 (18 times the f32 time for a linear layer in session 30), so
    --cpu-bf16 there gets a warning; CPUs with avx512_bf16 or AMX, and no flags at all, get none."""
    import train

    avx2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2 avx512f\n"
    assert "without bf16 units" in train.emulated_bf16_warning(avx2)
    assert train.emulated_bf16_warning(avx2.replace("avx512f", "avx512f avx512_bf16")) is None
    assert train.emulated_bf16_warning(avx2.replace("avx2", "avx2 amx_bf16 amx_tile")) is None
    assert train.emulated_bf16_warning("") is None


def test_cpu_bf16_trains_in_bf16_autocast_and_plain_cpu_in_f32(tmp_path, monkeypatch):
    """`--cpu-bf16` puts the CPU's stages in the bf16 autocast CUDA always trains in (a third of the
    f32 step time on a CPU with AMX); without it the CPU stays in f32, which the toy tests rely on."""
    import train

    seen = {}

    def spy(cls):
        forward = cls.forward

        def recorded(self, *args, **kwargs):
            out = forward(self, *args, **kwargs)
            seen.setdefault(cls.__name__, set()).add(out.dtype)
            return out
        monkeypatch.setattr(cls, "forward", recorded)

    for cls in (train.Decoder, train.DiT):
        spy(cls)
    toy = ["--toy", "--threads", "1", "--steps", "1", "--log-every", "1"]
    for flags, dtype in (([], torch.float32), (["--cpu-bf16"], torch.bfloat16)):
        run = str(tmp_path / dtype.__repr__())
        seen.clear()
        train.main(["autoencoder", "--run", run, *toy, *flags])
        train.main(["flow", "--run", run, *toy, *flags])
        assert seen == {"Decoder": {dtype}, "DiT": {dtype}}, (flags, seen)
        last = json.loads((Path(run) / "log.jsonl").read_text().splitlines()[-1])
        assert math.isfinite(last["loss"]), last


def test_t_shift_moves_chunk_noise_levels_towards_pure_noise(tmp_path, monkeypatch):
    """--t-shift S trains the chunks' noise levels as drawn, mapped by s t / (1 + (s - 1) t): the
    same draws, far more of them near t = 1 where the sampler starts, and recorded in the checkpoint."""
    import train

    draws = {}
    for s in (1.0, 3.0):
        torch.manual_seed(0)
        draws[s], _ = train.chunk_mask_and_t(8192, 2, 0.0, None, "cpu", t_shift=s)
    torch.testing.assert_close(draws[3.0], train.shift_t(draws[1.0], 3.0))
    assert float((draws[1.0] >= 0.875).float().mean()) < 0.04
    assert 0.15 < float((draws[3.0] >= 0.875).float().mean()) < 0.25
    ends = train.shift_t(torch.tensor([0.0, 0.5, 1.0]), 3.0)
    torch.testing.assert_close(ends, torch.tensor([0.0, 0.75, 1.0]))
    run = tmp_path / "run"
    _run("autoencoder", "--run", str(run), "--steps", "1")
    shifts = []
    real = train.chunk_mask_and_t

    def spy(*args, t_shift=1.0, **kwargs):
        shifts.append(t_shift)
        return real(*args, t_shift=t_shift, **kwargs)
    monkeypatch.setattr(train, "chunk_mask_and_t", spy)
    train.main(["flow", "--run", str(run), "--toy", "--threads", "1", "--steps", "1", "--t-shift", "3"])
    assert shifts and set(shifts) == {3.0}
    assert json.loads((run / "flow" / "state.json").read_text())["t_shift"] == 3.0
    bad = subprocess.run([sys.executable, str(HERE / "train.py"), "flow", "--run", str(run), "--toy", "--steps", "1",
                          "--t-shift", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--t-shift 0.0: give a shift > 0" in bad.stderr


def test_a_resumed_stage_keeps_averaging_at_full_decay(tmp_path, monkeypatch):
    """A checkpoint is the EMA, and a resumed stage starts from it: its average must carry on at
    full decay, or a short session's checkpoint is its last few noisy steps (session 43's was)."""
    import train

    made = []

    class Recorded(train.EMA):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(train, "EMA", Recorded)
    run = str(tmp_path / "run")
    toy = ["--run", run, "--toy", "--threads", "1", "--steps", "1"]
    train.main(["autoencoder", *toy])
    train.main(["flow", *toy])
    train.main(["flow", *toy])
    assert [(e.resumed, e.decay_at(0)) for e in made] == [(False, 0.1), (False, 0.1), (True, 0.999)]

    def moved(ema):
        model = torch.nn.Linear(2, 2)
        ema = ema(model)
        before = ema.model.weight.clone()
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model, 0)
        return float((ema.model.weight - before).mean())
    assert moved(lambda m: train.EMA(m, 0.999, resumed=True)) == pytest.approx(0.001, abs=1e-6)
    assert moved(lambda m: train.EMA(m, 0.999)) == pytest.approx(0.9, abs=1e-6)


def test_a_resumed_stage_trains_on_from_the_online_weights(tmp_path, capsys):
    """The EMA lags the weights being trained by about 1 / (1 - decay) steps; a session that
    restarted from it would throw most of the last session's progress away. So each save keeps the
    online weights beside the checkpoint, and a resumed stage trains on from them, but only when
    they belong to the checkpoint's step (a device call carries and returns the EMA alone)."""
    import train
    from train_io import load_checkpoint

    run = tmp_path / "run"
    toy = ["--run", str(run), "--toy", "--threads", "1", "--steps", "2"]
    train.main(["autoencoder", *toy])
    train.main(["flow", *toy])
    ema, st = load_checkpoint(run / "flow")
    online, ost = load_checkpoint(run / "online" / "flow")
    assert ost["step"] == st["step"] == 2 and ema.keys() == online.keys()
    key = "dit.final_proj.weight"
    assert not torch.equal(online[key], ema[key])

    # a learning rate too small to move anything: what the session saves is where it started
    still = [*toy[:-2], "--steps", "1", "--lr", "1e-30"]
    train.main(["flow", *still])
    assert "training on from the online weights of step 2" in capsys.readouterr().out
    after, ast = load_checkpoint(run / "online" / "flow")
    assert ast["step"] == 3 and torch.equal(after[key], online[key])

    # online weights of another step (the checkpoint came back from a device call): the EMA it is
    state_file = run / "online" / "flow" / "state.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "step": 1}))
    ema, _ = load_checkpoint(run / "flow")
    train.main(["flow", *still])
    assert "are from step 1, the checkpoint is at 3: training on from the EMA" in capsys.readouterr().out
    after, _ = load_checkpoint(run / "online" / "flow")
    assert torch.equal(after[key], ema[key].to(torch.bfloat16).float())

    # --no-online keeps the checkpoint alone
    train.main(["flow", *still, "--no-online"])
    assert load_checkpoint(run / "online" / "flow")[1]["step"] == 4
