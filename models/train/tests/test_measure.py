"""Measurement at toy scale: the attribute classifier learns, the eval command and the sample strip
run end to end on the tiny parity model folder, and each metric behaves on clips whose answer is
known (a set against itself, a still clip, pure noise, a clip without its subject)."""
import dataclasses
import itertools
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from measure.attributes import ATTRS, IGNORE, NONE, classifier_specs, frame_labels, remove_subject, render_labelled
from measure.classifier import (AttributeClassifier, ClassifierConfig, grow_classifier, load_classifier,
                                save_classifier)
from measure.metrics import accuracy, flicker_per_frame, flicker_summary, frechet_distance, persistence
from measure.prompts import build_prompts, read_prompts, spec_of, write_prompts
from train_classifier import losses_and_accuracy
from world.clips import draw, prepare
from world.spec import TIMES, is_heldout, load_heldout, matches, sample_clip

HERE = Path(__file__).resolve().parents[1]
TINY = HERE.parent / "fixtures" / "tiny"  # random-init parity model, 48x32: the toy classifier's size


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """The CLI at toy scale: 60 steps, then a resumed session of 20 on windows of longer clips."""
    run = tmp_path_factory.mktemp("clf")
    cmd = [sys.executable, str(HERE / "train_classifier.py"), "--toy", "--run", str(run), "--threads", "1",
           "--log-every", "20", "--batch", "8", "--frames", "8"]
    for more in (["--steps", "60"], ["--steps", "20", "--source-frames", "8", "24"]):
        out = subprocess.run(cmd + more, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    return run


def test_classifier_cli_trains_resumes_and_generalises(classifier_run):
    state = json.loads((classifier_run / "classifier" / "state.json").read_text())
    assert state["step"] == 80 and state["sessions"] == 2 and state["source_frames"] == [8, 24]
    assert all(f["size"] < 16 * 1024 * 1024 for f in state["files"])
    log = [json.loads(line) for line in (classifier_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40, 60, 80] and {r["stage"] for r in log} == {"classifier"}
    assert log[-1]["loss"] < log[0]["loss"], [r["loss"] for r in log]
    # Fresh clips it never saw, 12 by day and 12 at night: light is what a few steps learn first.
    # Always answering "day" scores 0.5; over training seeds 0-5 this scored 0.71-0.96 (seed 0: 0.96).
    clf, _ = load_classifier(classifier_run)
    held = load_heldout()
    specs = [sample_clip(10_000 + 100 * i + k, 16, held, fixed={"time": t})
             for i, t in enumerate(TIMES) if t != "sunset" for k in range(12)]
    video, labels = render_labelled(specs, 32, 48)
    with torch.no_grad():
        logits, _ = clf(video)
    right = logits["time"].mean(1).argmax(-1).numpy() == labels["time"][:, 0]
    assert right.mean() > 0.67, right.mean()


def test_classifier_fits_a_tiny_fixed_set():
    """Every head can fit 4 fixed clips: labels, heads and gradients are wired to each other."""
    torch.manual_seed(0)
    specs, empty, _ = classifier_specs(7, 0, 4, 8, empty_share=0.5)
    video, labels = render_labelled(specs, 32, 48, empty_from=empty)
    labels = {a: torch.as_tensor(v) for a, v in labels.items()}
    model = AttributeClassifier(ClassifierConfig.toy())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss, _, acc = losses_and_accuracy(model(video)[0], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, _, acc = losses_and_accuracy(model(video)[0], labels)
    assert min(acc.values()) > 0.9, acc


def test_classifier_reach_options_and_checkpoints_from_before_them(tmp_path):
    """diff_strides / temporal_dilations / pool_grid default to the first session's network, so its
    checkpoint (whose state.json names none of them) loads unchanged; set, they change the input
    and the reach in time but not what comes out."""
    torch.manual_seed(0)
    old = AttributeClassifier(ClassifierConfig.toy())
    assert old.frames[0][0].in_channels == 6 and len(old.temporal) == 2
    save_classifier(tmp_path / "clf", old, {"step": 7})
    state = json.loads((tmp_path / "clf" / "state.json").read_text())
    for k in ("diff_strides", "temporal_dilations", "pool_grid", "motion_probe"):
        del state["config"][k]
    (tmp_path / "clf" / "state.json").write_text(json.dumps(state))
    back, _ = load_classifier(tmp_path / "clf")
    video = torch.rand(2, 6, 3, 32, 48)
    assert torch.allclose(back.features(video), old.features(video), atol=1e-6)

    cfg = ClassifierConfig(**{**dataclasses.asdict(ClassifierConfig.toy()), "diff_strides": [1, 4],
                              "temporal_dilations": [1, 2, 4, 8], "pool_grid": 2})
    net = AttributeClassifier(cfg)
    x = net._input(video)
    assert x.shape == (2, 6, 9, 32, 48)
    assert torch.allclose(x[:, 4:, 6:], 2 * (x[:, 4:, :3] - x[:, :2, :3])) and (x[:, :4, 6:] == 0).all()
    logits, feats = net(video)
    assert feats.shape == (2, 6, cfg.features) and logits["camera"].shape == (2, 6, len(ATTRS["camera"]))
    assert net(video[:, :2])[1].shape == (2, 2, cfg.features)  # shorter than the stride: no error
    assert [m.conv.dilation[0] for m in net.temporal] == [1, 2, 4, 8]


def test_motion_probe_reads_pan_zoom_and_stillness():
    """The probe's lowest match error names the camera's move: the shift of a pan, no shift for a
    locked-off camera, a zoom factor (not a shift) for a zoom, and a still centre with a moving
    border for a tracking shot."""
    import torch.nn.functional as F

    from measure.motion_probe import SHIFTS, ZOOMS, motion_probe
    K = len(SHIFTS) + len(ZOOMS) + 1
    g = torch.Generator().manual_seed(0)
    world = F.avg_pool2d(torch.rand(1, 3, 120, 200, generator=g), 3, 1, 1)

    def best(clip, region):
        p = motion_probe(clip)[0, 2].view(3, K)[region, :-1]
        return (SHIFTS + [("zoom", z) for z in ZOOMS])[int(p.argmin())]

    pan = torch.stack([world[..., 20:92, 20 + 2 * t:148 + 2 * t] for t in range(4)], 1)  # 2 px/frame
    assert best(pan, 0) == (1, 0)  # 1 px at the probe's half size
    still = torch.stack([world[..., 20:92, 20:148]] * 4, 1)
    assert best(still, 0) == (0, 0)
    scale = [1.0, 1.04, 1.04 ** 2, 1.04 ** 3]
    zoom = torch.stack([F.interpolate(world[..., 60 - round(36 / s):60 + round(36 / s), 100 - round(64 / s):100 + round(64 / s)],
                                      (72, 128), mode="bilinear", align_corners=False) for s in scale], 1)
    assert best(zoom, 2)[0] == "zoom"
    follow = pan.clone()
    follow[..., 20:52, 34:94] = world[:, None, :, 0:32, 0:60]  # a subject held still over the centre
    assert best(follow, 1) == (0, 0) and best(follow, 2) == (1, 0)
    # off by default, so the first session's classifier is unchanged; on, it adds to the features
    cfg = ClassifierConfig(**{**dataclasses.asdict(ClassifierConfig.toy()), "motion_probe": True})
    assert AttributeClassifier(cfg)(torch.rand(2, 5, 3, 32, 48))[1].shape == (2, 5, cfg.features)
    assert not hasattr(AttributeClassifier(ClassifierConfig.toy()), "motion")


def test_camera_reach_runs_at_toy_size(capsys):
    from measure import camera_reach
    r = camera_reach.main(["--train-clips", "2", "--frames", "8", "--test-frames", "8", "--test-clips", "2",
                           "--steps", "1", "--batch", "2", "--height", "32", "--width", "48", "--channels", "4",
                           "--features", "8"])
    assert set(r) == set(camera_reach.ARCHS) and all(0 <= v[8] <= 1 for v in r.values())
    assert "clip camera accuracy" in capsys.readouterr().out


def test_ae_convergence_runs_at_toy_size(capsys):
    from measure import ae_convergence
    r = ae_convergence.main(["--clips", "2", "--frames", "4", "--steps", "2", "--eval-every", "2",
                             "--crop", "16", "32", "--threads", "1", "--subject-weight", "4"])
    assert [x["step"] for x in r] == [1, 2]
    assert all(0 < x["held_psnr"] < 60 and 0 < x["held_subject_psnr"] < 60 and 0 < x["saturation"] for x in r)
    assert all(x["subject_weight"] == 4 for x in r)
    out = capsys.readouterr().out
    assert "held-out PSNR" in out and "each frame as its mean colour" in out and "inside the subject boxes" in out


def test_ae_convergence_from_the_block_means_with_a_classifier(tmp_path, capsys):
    """--init blockmean starts at the block means (a random start is far below them), with
    --unit-latents too, and then its latents are near unit variance; --classifier prints what it
    reads as rendered and as block means, then in every record."""
    from measure import ae_convergence
    torch.manual_seed(0)
    save_classifier(tmp_path / "clf", AttributeClassifier(ClassifierConfig()), {"step": 1})
    common = ["--clips", "2", "--frames", "4", "--steps", "1", "--eval-every", "1", "--crop", "16", "32",
              "--threads", "1"]
    start = ae_convergence.main([*common, "--init", "blockmean", "--classifier", str(tmp_path / "clf"),
                                 "--read-clips", "2", "--read-noise", "0.5"])
    out = capsys.readouterr().out
    plain = ae_convergence.main([*common, "--init", "training"])
    unit = ae_convergence.main([*common, "--init", "blockmean", "--unit-latents"])
    block = float(out.split("4-frame block as its mean colour ")[1].split(" dB")[0])
    assert abs(start[0]["held_psnr"] - block) < 1.0 and plain[0]["held_psnr"] < block - 5
    assert abs(unit[0]["held_psnr"] - block) < 1.0 and unit[0]["unit_latents"] and not start[0]["unit_latents"]
    # on these 2 tiny clips 0.32 and 0.66: the training crops are not the whole clips normalised on
    assert start[0]["latent_std"] < 0.45 < unit[0]["latent_std"] < 1.6, (start[0]["latent_std"], unit[0]["latent_std"])
    assert "as rendered {'subject'" in out and "as block means {'subject'" in out
    assert set(start[0]["read"]) == {"subject", "scene"} and all(0 <= v <= 1 for v in start[0]["read"].values())
    assert "read" not in plain[0]
    assert set(start[0]["read_noisy"]) == {"0.5"} and set(start[0]["read_noisy"]["0.5"]) == {"subject", "scene"}
    assert "with latent noise 0.5 {'subject'" in out


def test_the_noisy_readout_adds_the_same_noise_every_time(tmp_path):
    """--read-noise compares decoders by what one fixed draw of latent noise costs them, so the
    draw must not change between calls, and no noise must mean the plain reconstruction."""
    from measure.ae_convergence import ClassifierReadout
    from kinema.config import KinemaConfig
    from kinema.model import Decoder, Encoder, block_mean_init_, init_autoencoder_
    torch.manual_seed(0)
    save_classifier(tmp_path / "clf", AttributeClassifier(ClassifierConfig()), {"step": 1})
    readout = ClassifierReadout(str(tmp_path / "clf"), clips=1, frames=4)
    cfg = KinemaConfig.kinema_tiny()
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    init_autoencoder_(net)
    block_mean_init_(net)  # a decoder that reads its latents (torch's init barely does)
    with torch.no_grad():
        plain = net["decoder"](net["encoder"](readout.video))
    assert torch.equal(readout.reconstruct(net), plain)
    noisy = readout.reconstruct(net, 0.5)
    assert torch.equal(readout.reconstruct(net, 0.5), noisy)
    assert float((noisy - plain).abs().mean()) > 1e-2, float((noisy - plain).abs().mean())
    torch.randn(100)  # the global generator moving on does not change the draw
    assert torch.equal(readout.reconstruct(net, 0.5), noisy)


def test_ae_baselines_on_clips_with_known_answers():
    from measure.ae_convergence import baselines
    # constant within every 8x8-pixel 4-frame block: the block mean is exact, the frame mean is not
    blocks = torch.rand(1, 2, 3, 2, 4).repeat_interleave(4, 1).repeat_interleave(8, 3).repeat_interleave(8, 4)
    b = baselines(blocks)
    assert b["block_mean_psnr"] >= 99 and b["frame_mean_psnr"] < 30
    # a checkerboard of 0 and 1 at pixel scale: both means are 0.5 everywhere, an error of 0.5
    # on every pixel, 10 log10(1 / 0.25) = 6.02 dB
    y, x = torch.meshgrid(torch.arange(16), torch.arange(32), indexing="ij")
    board = ((y + x) % 2).float().expand(1, 4, 3, 16, 32)
    assert baselines(board) == {"frame_mean_psnr": 6.02, "block_mean_psnr": 6.02}
    # inside a subject box only: there the blocks are flat, outside they are the checkerboard
    mixed = board.clone()
    mixed[..., :8, :8] = 0.25
    box = torch.zeros(1, 4, 1, 16, 32)
    box[..., :8, :8] = 1
    assert baselines(mixed, box)["subject_block_mean_psnr"] >= 99


def test_remove_subject_leaves_the_scene_and_labels_none():
    held = load_heldout()
    specs, _, _ = classifier_specs(3, 0, 2, 8, held, empty_share=0.0, heldout_share=0.0)
    full, _ = render_labelled(specs, 32, 48)
    prep = prepare(specs, 32, 48)
    remove_subject(prep, 1, 3)
    empty = draw(prep)
    assert torch.equal(empty[0], full[0]) and torch.equal(empty[1, :3], full[1, :3])
    diff = (empty[1, 3:] - full[1, 3:]).abs()
    assert float(diff.amax()) > 0.1, "the subject is still drawn"
    assert float((diff > 0.02).float().mean()) < 0.25, "more than the subject changed"
    lab = frame_labels(prep["labels"], 8, [None, 3])
    none = ATTRS["subject"].index(NONE)
    assert (lab["subject"][1, 3:] == none).all() and (lab["subject"][1, :3] != none).all()
    assert (lab["colour"][1, 3:] == IGNORE).all() and (lab["motion"][1, 3:] == IGNORE).all()


def test_a_style_that_hides_the_colour_is_neither_trained_nor_judged_on_it():
    held = load_heldout()
    specs = [sample_clip(seed, 8, held, cut_prob=0.0, fixed={"style": style})
             for seed, style in ((1, "manga"), (2, "manga"), (3, "flat"))]
    video, lab = render_labelled(specs, 32, 48)
    # manga ink is one paper colour in shades: the same in every channel once divided by it
    shade = video[:2] / torch.tensor([0.97, 0.95, 0.9]).view(1, 1, 3, 1, 1)
    assert torch.allclose(shade[:, :, 0], shade[:, :, 1]) and torch.allclose(shade[:, :, 1], shade[:, :, 2])
    assert not torch.allclose(video[2, :, 0], video[2, :, 1])
    assert (lab["colour"][:2] == IGNORE).all() and (lab["colour"][2] != IGNORE).any()
    assert (lab["style"] != IGNORE).all()
    # the eval leaves such pairs out of every figure: one wrong colour in a manga clip costs nothing
    pred = [{"colour": 0, "style": 1}, {"colour": 0, "style": 0}]
    target = [{"colour": 3, "style": 1}, {"colour": 0, "style": 0}]
    judged = accuracy(pred, target, ["colour", "style"], [["style"], ["colour", "style"]])
    assert judged == {"colour": 1.0, "style": 1.0, "overall": 1.0, "all_correct": 1.0}
    assert accuracy(pred, target, ["colour", "style"]) == {"colour": 0.5, "style": 1.0, "overall": 0.75,
                                                             "all_correct": 0.5}
    assert accuracy(pred[:1], target[:1], ["colour", "style"], [["style"]])["colour"] is None


def test_frechet_distance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8))
    assert frechet_distance(x, x) < 1e-8
    assert frechet_distance(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)  # means only
    assert frechet_distance(x, 2 * x) > 1.0  # covariances only
    few = rng.normal(size=(10, 32))  # fewer clips than dimensions: singular covariances
    assert frechet_distance(few, few) < 1e-6 and frechet_distance(few, few + 1) == pytest.approx(32, rel=1e-6)
    # against the textbook form, matrix square roots of full-rank covariances, on unequal sets
    a, b = rng.normal(size=(200, 6)) * [1, 2, 3, 0.5, 1, 1], rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6))
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(w)) @ v.T
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(root_a @ sb @ root_a)).sum()
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


def test_standard_errors_leave_out_whole_clips():
    from measure.spread import accuracy_errors, frechet_error, jackknife_error, overall_error
    rng = np.random.default_rng(0)
    outcome = rng.random(40) < 0.3  # per clip: every attribute right or every one wrong
    one = overall_error(outcome[:, None], np.ones((40, 1), bool))
    assert one == pytest.approx(outcome.std(ddof=1) / np.sqrt(40))  # a share's textbook error
    # eight readings of one clip that agree are one reading: left out by clip, the error is the same
    assert overall_error(np.repeat(outcome[:, None], 8, 1), np.ones((40, 8), bool)) == pytest.approx(one)
    # attributes not judged count on neither side of the fraction
    right = np.array([[True, False]] * 20 + [[False, False]] * 20)
    first_only = overall_error(right[:, :1], right[:, :1] | True)
    assert overall_error(right, np.array([[True, False]] * 40)) == pytest.approx(first_only)
    groups = accuracy_errors(right, right | True, {"all": list(range(40)), "none": [], "first": list(range(20))})
    assert groups["none"] is None and groups["first"] == 0.0 and groups["all"] > 0
    assert jackknife_error(lambda i: 0.0, 1) is None and frechet_error(np.zeros((2, 4)), np.ones((2, 4))) is None
    # the Fréchet distance's error is near the spread of the distance over fresh draws of 40 clips
    scale = rng.uniform(0.3, 2, 32)
    draws = [(rng.normal(size=(40, 32)) * scale, rng.normal(size=(40, 32)) * scale + 1) for _ in range(30)]
    spread = np.std([frechet_distance(a, b) for a, b in draws])
    errors = [frechet_error(a, b) for a, b in draws[:5]]
    assert all(0.6 * spread < e < 2 * spread for e in errors), (spread, errors)


def test_flicker():
    g = torch.Generator().manual_seed(0)
    still = torch.rand(1, 1, 3, 16, 24, generator=g).expand(2, 32, 3, 16, 24)
    assert float(flicker_per_frame(still).abs().max()) == 0.0
    ramp = torch.linspace(0, 1, 32).view(1, 32, 1, 1, 1).expand(1, 32, 3, 16, 24)  # steady change
    assert float(flicker_per_frame(ramp).max()) < 1e-3
    noise = torch.rand(2, 32, 3, 16, 24, generator=g)
    assert float(flicker_per_frame(noise).mean()) > 60  # ≈ 96 levels for uniform RGB noise
    # a clip that jumps at every 8-frame chunk boundary flickers at the seams only
    jumps = (torch.arange(32) // 8 % 2).float().view(1, 32, 1, 1, 1).expand(1, 32, 3, 4, 4)
    s = flicker_summary(flicker_per_frame(jumps).numpy(), 8)
    assert s["inside_chunks"] == 0 and s["at_seams"] == 255  # a full-swing step: 255 on both sides


def test_persistence():
    T, fps = 32, 16
    target = np.array([3, 3])
    frames = np.full((2, T), 3)
    assert persistence(frames, target, fps)["frames"] == 1.0
    frames[1, 16:] = ATTRS["subject"].index(NONE)  # the subject dissolves after one second
    p = persistence(frames, target, fps)
    assert p["frames"] == 0.75 and p["per_second"] == [1.0, 0.5] and p["last_second"] == 0.5 and p["clips"] == 0.5
    # a rendered clip whose subject is removed: its (oracle) per-frame labels never show it
    specs, _, _ = classifier_specs(5, 0, 1, T, empty_share=0.0)
    prep = prepare(specs, 32, 48)
    remove_subject(prep, 0, 0)
    lab = frame_labels(prep["labels"], T, [0])
    want = np.array([ATTRS["subject"].index(specs[0].shots[0].subject)])
    assert persistence(lab["subject"], want, fps)["frames"] == 0.0


def test_prompts_carry_their_targets(tmp_path):
    held = load_heldout()
    ps = build_prompts(3, 1, 1, seed=2)
    assert len(ps) == 3 + len(held)
    assert sum(p["heldout"] is not None for p in ps) == len(held)
    for p in ps:
        assert is_heldout(p["attrs"], held) == (p["heldout"] is not None)
        assert p["heldout"] is None or matches(p["attrs"], p["heldout"])
        spec, fresh = spec_of(p), spec_of(p, reseed=1)
        assert spec.shots[0].attrs() == fresh.shots[0].attrs() == p["attrs"]
        assert spec.shots[0].seed != fresh.shots[0].seed and spec.frames == 16
    write_prompts(tmp_path / "p.jsonl", ps)
    assert read_prompts(tmp_path / "p.jsonl") == ps


def test_eval_end_to_end(classifier_run, tmp_path, capsys):
    import evaluate
    common = ["--classifier", str(classifier_run), "--in-dist", "3", "--per-heldout", "1", "--seconds", "2",
              "--batch", "7"]
    gen = evaluate.main(["--model", str(TINY), "--json", str(tmp_path / "gen.json")] + common)
    text = capsys.readouterr().out
    for what in ["overall", "held-out combinations", "not judged", "Fréchet distance", "subject persistence",
                 "flicker"] + list(ATTRS):
        assert what in text, what
    ref = evaluate.main(["--reference", "--json", str(tmp_path / "ref.json")] + common)
    prompts = build_prompts(3, 1, 2)
    # the eval says how many prompts the model could not read to the end (the fixture reads 32)
    from world.caption_lengths import lengths
    long = int((lengths([p["prompt"] for p in prompts]) > 32).sum())
    assert gen["prompts_cut"] == long and ref["prompts_cut"] is None
    assert f"{long} of 13 prompts longer than the 32 tokens it reads" in text
    manga = sum(p["attrs"]["style"] == "manga" for p in prompts)
    # a saved result judged again from its per-prompt classes gives the same figures
    again = evaluate.rescore(tmp_path / "gen.json", prompts)
    assert again["accuracy"] == json.loads(json.dumps(gen["accuracy"])) and again["counts"] == gen["counts"]
    assert again["error"] == json.loads(json.dumps(gen["error"]))  # the Fréchet one kept, the rest recomputed
    assert "standard errors (jackknife over prompts): overall ±" in text
    with pytest.raises(SystemExit, match="not the 12 of --prompts"):
        evaluate.rescore(tmp_path / "gen.json", prompts[1:])
    assert json.loads((tmp_path / "gen.json").read_text())["frechet"] == gen["frechet"]
    from measure.kept_features import load_features
    kept = load_features(tmp_path / "gen.json", [p["prompt"] for p in prompts])
    assert kept[0].shape == kept[1].shape == (13, gen["feature_dim"])
    assert frechet_distance(*kept) == pytest.approx(gen["frechet"], rel=1e-5)
    with pytest.raises(ValueError, match="another prompt list"):
        load_features(tmp_path / "gen.json", [p["prompt"] for p in prompts][::-1])
    assert load_features(tmp_path / "nothing.json", []) is None
    for r in (gen, ref):
        counts = dict(r["counts"])
        assert counts.pop("not_judged") == {a: manga if a == "colour" else 0 for a in ATTRS}
        assert counts == {"prompts": 13, "in_distribution": 3, "heldout": 10}
        for group in ("all", "in_distribution", "heldout"):
            assert all(v is None or 0 <= v <= 1 for v in r["accuracy"][group].values())
        assert 0 <= r["accuracy"]["heldout_combination"] <= 1
        assert 0 <= r["persistence"]["frames"] <= 1 and len(r["persistence"]["per_second"]) == 2
        assert np.isfinite(r["frechet"]) and r["frechet"] >= 0
        assert 0 < r["error"]["accuracy"]["all"] < 0.5 and 0 < r["error"]["frechet"] < np.inf
    # far from the renders the distance stands clear of its error; renders against fresh renders sit
    # near the small-sample floor, where the error can match the distance (0.57 against 0.56 on an
    # avx512 EPYC, session 38)
    assert gen["error"]["frechet"] < gen["frechet"]
    # each clip's flicker is kept for measure.paired; the clips are equally long, so their mean is the table's
    assert np.mean([c["flicker"] for c in gen["per_prompt"]]) == pytest.approx(gen["flicker"]["clips"]["mean"])
    # A random-init model makes coloured noise: far from renders in feature space, and flickering
    # far above them; renders against fresh renders of the same prompts are close on both.
    assert gen["frechet"] > 2 * ref["frechet"]
    assert gen["flicker"]["excess"] > 10
    assert abs(ref["flicker"]["excess"]) < 0.5 * ref["flicker"]["rendered"]["mean"]


def test_an_interrupted_eval_goes_on_from_the_clips_it_read(classifier_run, tmp_path, monkeypatch, capsys):
    import evaluate
    import measure.generate
    common = ["--model", str(TINY), "--classifier", str(classifier_run), "--in-dist", "3", "--per-heldout", "1",
              "--seconds", "1", "--batch", "5"]
    whole = evaluate.main(common + ["--json", str(tmp_path / "whole.json")])
    text = capsys.readouterr().out
    assert "13 of 13 clips read" in text and "reading 13 fresh clips" in text

    out = tmp_path / "r.json"
    partial = out.with_name("r.json.partial")
    read, calls = evaluate.read_clips, []

    def read_two_batches_then_stop(clf, video):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the session ends
        return read(clf, video)

    monkeypatch.setattr(evaluate, "read_clips", read_two_batches_then_stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(common + ["--json", str(out)])
    assert not out.exists() and len(json.loads(partial.read_text())["clips"]) == 10
    monkeypatch.setattr(evaluate, "read_clips", read)

    # other settings never take the readings over
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(measure.generate, "generate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        evaluate.main(common + ["--json", str(out), "--steps", "3"])
    assert "made with other settings; starting over" in capsys.readouterr().out
    monkeypatch.undo()
    assert len(json.loads(partial.read_text())["clips"]) == 10  # nothing read there, nothing replaced

    generate, asked = measure.generate.generate, []
    monkeypatch.setattr(measure.generate, "generate", lambda m, t, prompts, *a, **k: asked.append(prompts) or
                        generate(m, t, prompts, *a, **k))
    r = evaluate.main(common + ["--json", str(out)])
    text = capsys.readouterr().out
    assert "going on from the 10 of 13 clips read before" in text, text
    assert [len(p) for p in asked] == [3] and r["clips_read_before"] == 10, text
    assert not partial.exists() and json.loads(out.read_text())["clips_read_before"] == 10
    assert r["accuracy"] == whole["accuracy"] and r["persistence"] == whole["persistence"]
    assert r["frechet"] == pytest.approx(whole["frechet"], rel=1e-4)
    assert r["flicker"]["clips"]["mean"] == pytest.approx(whole["flicker"]["clips"]["mean"], rel=1e-5)


def toy_autoencoder(folder: Path, stage: str = "autoencoder") -> torch.nn.ModuleDict:
    """A freshly initialised toy autoencoder saved as train.py saves one (bf16 shards)."""
    import train
    from kinema.model import Decoder, Encoder, init_autoencoder_
    from train_io import save_checkpoint
    cfg = train.model_config(True)
    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"encoder": Encoder(cfg.decoder), "decoder": Decoder(cfg.decoder)})
    init_autoencoder_(net)
    save_checkpoint(folder, net.state_dict(), {"stage": stage, "step": 7, "toy": True})
    return net


class _ZeroDiT:
    def forward_teacher_forced(self, noisy, clean, t, d, *text):
        return torch.zeros_like(noisy)


class _OracleDiT:
    """Knows the clean latents from its teacher-forced context, so it predicts v exactly."""

    def forward_teacher_forced(self, noisy, clean, t, d, *text):
        return (noisy - clean) / t[:, :, None, None, None]


def test_dit_error_conventions_on_latents_with_known_answers():
    """x_t = (1 - t) z0 + t eps and the estimate x_t - t v: a DiT that knows the answer is exact, one
    that predicts v = 0 is off by t (eps - z0), and the linear baseline's error is the Wiener
    shrinkage's, sigma t / sqrt((1 - t)^2 sigma^2 + t^2), on latents of known mean and std."""
    from measure.dit_error import linear_estimate, x0_estimate
    g = torch.Generator().manual_seed(0)
    sigma, mu = 0.5, 0.3
    z0 = mu + sigma * torch.randn(64, 4, 4, 8, 8, generator=g)
    eps = torch.randn(z0.shape, generator=g)
    rms = lambda x: float((x ** 2).mean() ** 0.5)  # noqa: E731
    for t in (1.0, 0.75, 0.25):
        exact, _ = x0_estimate(_OracleDiT(), z0, eps, t, 0.25, None, None, None)
        assert rms(exact - z0) < 1e-5
        est, xt = x0_estimate(_ZeroDiT(), z0, eps, t, 0.25, None, None, None)
        assert torch.allclose(xt, (1 - t) * z0 + t * eps)
        assert abs(rms(est - z0) - t * (1 + sigma ** 2 + mu ** 2) ** 0.5) < 0.02 * t
        lin = linear_estimate(xt, t, torch.full((4,), mu), torch.full((4,), sigma ** 2))
        wiener = sigma * t / ((1 - t) ** 2 * sigma ** 2 + t ** 2) ** 0.5
        assert abs(rms(lin - z0) - wiener) < 0.02 * wiener, (t, rms(lin - z0), wiener)


def test_rough_latents_read_as_the_white_noise_that_makes_them_so():
    """noise_above: the encoder's latents plus white noise of std s read as s; another draw of the
    same kind of smooth latents as (nearly) no noise, since the fine detail of two draws differs a
    little (0.2606-0.2653 in power over six draws of this size); blurred latents as none."""
    from measure.dit_error import fine_detail_power, noise_above
    g = torch.Generator().manual_seed(1)

    def smooth():
        x = torch.randn(8 * 8 * 4, 1, 18, 32, generator=g)
        x = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return (x / x.std()).view(8, 8, 4, 18, 32)

    real = smooth()
    for sd in (0.1, 0.3):
        rough = real + sd * torch.randn(real.shape, generator=g)
        assert abs(noise_above(real, rough) - sd) < 0.05 * sd, (sd, noise_above(real, rough))
    assert all(noise_above(real, smooth()) < 0.1 for _ in range(3))
    blurred = torch.nn.functional.avg_pool2d(smooth().flatten(0, 2)[:, None], 3, 1, 1).view(real.shape)
    assert fine_detail_power(blurred) < fine_detail_power(real) and noise_above(real, blurred) == 0.0


def test_a_clip_spec_cut_to_its_first_frames():
    from measure.dit_error import shortened
    spec = sample_clip(5, 64, load_heldout(), "train", cut_prob=1.0)
    assert len(spec.shots) >= 2, [s.frames for s in spec.shots]
    first = spec.shots[0].frames
    cut = shortened(spec, first + 4)
    assert [s.frames for s in cut.shots] == [first, 4] and cut.frames == first + 4
    assert [s.attrs() for s in cut.shots] == [s.attrs() for s in spec.shots[:2]]
    assert [s.frames for s in shortened(spec, first - 1).shots] == [first - 1]
    assert shortened(spec, 64).shots == spec.shots


def toy_dit_run(run: Path, stage: str = "shortcut") -> Path:
    """A toy run folder: a fresh autoencoder and a seeded random DiT saved as `stage`."""
    import train
    from kinema.model import DiT, random_init_
    from train_io import save_checkpoint
    toy_autoencoder(run / "ae")
    cfg = train.model_config(True)
    dit = DiT(cfg.dit, text_dim=cfg.text.hidden)
    random_init_(dit, torch.Generator().manual_seed(3))
    save_checkpoint(run / stage, {"dit." + k: v for k, v in dit.state_dict().items()},
                    {"stage": stage, "step": 3, "toy": True})
    return run


def test_export_of_a_flow_dit_tells_the_runtimes_to_sample_it_at_d_0_with_guidance(tmp_path):
    """A flow DiT saw step-size input 0 alone and has no guidance in its weights: its manifest says
    so (training.dit_from, sampler_guidance), and the eval reads a folder as the Rust sampler
    does: d = 0 and the folder's guidance unless --guidance says otherwise. A shortcut export
    records the guidance baked in and asks for none."""
    import train
    from measure.generate import guidance_to_use, is_flow_dit, load_generator
    run = toy_dit_run(tmp_path / "run", stage="flow")
    out = tmp_path / "flow-model"
    train.main(["export", "--run", str(run), "--out", str(out), "--toy", "--guidance", "2.5",
                "--sampler-steps", "8"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "0.0.0"  # a toy's
    training = manifest["training"]
    assert training == {"dit_from": "flow", "dit_step": 3, "sampler_steps": 8, "sampler_guidance": 2.5}
    _, _, info = load_generator(out)
    assert is_flow_dit(info)
    assert guidance_to_use(None, info) == (2.5, "the model's training.sampler_guidance")
    assert guidance_to_use(1.0, info) == (1.0, "--guidance")
    with pytest.raises(SystemExit, match="give a scale > 0"):
        guidance_to_use(0.0, info)

    run = toy_dit_run(tmp_path / "run2")
    out = tmp_path / "shortcut-model"
    train.main(["export", "--run", str(run), "--out", str(out), "--toy", "--model-version", "0.3.1-rc.1"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == "0.3.1-rc.1"
    training = manifest["training"]
    assert training["dit_from"] == "shortcut" and training["sampler_steps"] == 4
    assert "sampler_guidance" not in training
    _, _, info = load_generator(out)
    assert not is_flow_dit(info) and guidance_to_use(None, info) == (1.0, "none")
    for bad in (["--guidance", "-1"], ["--sampler-steps", "0"], ["--model-version", "v2"]):
        with pytest.raises(SystemExit):
            train.main(["export", "--run", str(run), "--out", str(tmp_path / "bad"), "--toy", *bad])
    # A real export says which version it is: the CLI prints it, and 0.1.0 twice named two models.
    with pytest.raises(SystemExit):
        train.main(["export", "--run", str(run), "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_dit_error_on_a_toy_run(classifier_run, tmp_path, capsys):
    """Per sampler step (the shortcut stage's 4, or --steps), the error of the DiT's clean-latent
    estimate and of the linear baseline, which at t = 1 is the channel mean, off by one std; with
    --classifier, what the decoded clips show. Bad runs and lengths are refused with a message."""
    from measure import dit_error
    run = toy_dit_run(tmp_path / "run")
    common = ["--run", str(run), "--clips", "3", "--seconds", "1", "--batch", "2"]
    r = dit_error.main(common + ["--classifier", str(classifier_run), "--sample", "--json", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert r["steps"] == 4 and [row["t"] for row in r["per_step"]] == [1.0, 0.75, 0.5, 0.25]
    assert r["clips"] == 3 and r["dit_step"] == 3 and r["ae_step"] == 7
    for row in r["per_step"]:
        assert row["d"] == 0.25 and 0 < row["relative"] and row["first_chunk"] > 0 and row["later_chunks"] > 0
        assert abs(row["relative"] - row["rms"] / r["latent_std"]) < 1e-9
    assert abs(r["per_step"][0]["linear"] - 1) < 0.01
    # the subject's latents and the rest split each step's error between them, and the caption moves both
    share = r["subject_share"]
    assert 0 < share < 1
    for row in r["per_step"]:
        reg = row["by_region"]
        for key, whole in (("error", row["relative"]), ("linear", row["linear"])):
            split = share * reg["subject"][key] ** 2 + (1 - share) * reg["elsewhere"][key] ** 2
            assert split == pytest.approx(whole ** 2, rel=1e-6)
        assert reg["subject"]["caption_moves"] > 0 and reg["elsewhere"]["caption_moves"] > 0
    assert "by region (" in out
    assert set(r["read"]) == {"latents", "last_step", "white_noise", "sampled"}
    assert all(0 <= v <= 1 for v in r["read"].values())
    sm = r["sampled"]
    assert sm["std"] > 0 and sm["fine_detail"] > 0 and sm["latents_fine_detail"] > 0 and sm["noise_above"] >= 0
    assert "the sampler's last step from the true path lands" in out and "prompted subject named in" in out
    assert "in the clips sampled from noise" in out and "the sampler's own latents, from noise: std" in out
    assert json.loads((tmp_path / "e.json").read_text()) == json.loads(json.dumps(r))
    two = dit_error.main(common + ["--steps", "2"])
    assert [(row["t"], row["d"]) for row in two["per_step"]] == [(1.0, 0.5), (0.5, 0.5)] and two["read"] is None
    assert two["sampled"] is None
    # the DiT is asked for the sampler's step size: at t = 1, d = 1/2 and d = 1/4 estimate differently
    assert abs(two["per_step"][0]["relative"] - r["per_step"][0]["relative"]) > 1e-4
    # ... unless it is a flow DiT, trained at d = 0 only: then d = 0 at every step count
    flow = toy_dit_run(tmp_path / "flow-run", stage="flow")
    f2, f4 = (dit_error.main(["--run", str(flow), "--clips", "3", "--seconds", "1", "--batch", "2", "--steps", k])
              for k in ("2", "4"))
    assert {row["d"] for row in f2["per_step"] + f4["per_step"]} == {0.0}
    assert f2["per_step"][0]["relative"] == pytest.approx(f4["per_step"][0]["relative"], abs=1e-6)
    f2d = dit_error.main(["--run", str(flow), "--clips", "3", "--seconds", "1", "--batch", "2", "--steps", "2",
                          "--d-input", "0.5"])
    assert {row["d"] for row in f2d["per_step"]} == {0.5}
    # the same seeded DiT as the shortcut run's, so --d-input 0.5 reproduces its d = 1/2 estimates
    assert f2d["per_step"][0]["relative"] == pytest.approx(two["per_step"][0]["relative"], abs=1e-6)
    assert abs(f2d["per_step"][0]["relative"] - f2["per_step"][0]["relative"]) > 1e-4
    with pytest.raises(SystemExit, match="give one of them"):
        dit_error.main(["--run", str(flow), "--d-input", "0.5", "--sample"])
    toy_autoencoder(tmp_path / "no-dit" / "ae")
    for bad, message in ((common + ["--seconds", "0"], "whole number of chunks"),
                         (["--run", str(TINY)], "not a train.py run folder"),
                         (["--run", str(tmp_path / "no-dit")], "no DiT checkpoint")):
        with pytest.raises(SystemExit, match=message):
            dit_error.main(bad)


def test_round_trip_fidelity_on_known_clips(tmp_path):
    from measure.round_trip import Fidelity, load_autoencoder, round_trip
    video = torch.rand(2, 8, 3, 32, 48)
    fid = Fidelity()
    fid.add(video, (video + 0.1).clamp(max=2))  # every pixel off by 0.1: 20 dB
    flat = torch.rand(1, 2, 1, 3, 4, 1, 6, 1).expand(1, 2, 4, 3, 4, 8, 6, 8).reshape(1, 8, 3, 32, 48)
    fid.add(flat, flat)  # exact, and flat in every 8x8x4 block: both at the 1e-10 floor
    s = fid.summary()
    assert s["clips"] == 3
    assert s["psnr"] == pytest.approx((20 + 20 + 100) / 3, abs=1e-3)
    # uniform noise around its block means: variance (1 - 1/256) / 12, so 10.8 dB
    assert s["block_psnr"] == pytest.approx((2 * 10.81 + 100) / 3, abs=0.1)
    # the checkpoint loads as saved (bf16 weights), and clip by clip equals the whole batch at once
    net = toy_autoencoder(tmp_path / "run" / "ae")
    for path in (tmp_path / "run", tmp_path / "run" / "ae"):
        ae, state = load_autoencoder(path, "cpu")
        assert state["step"] == 7
    with torch.no_grad():
        want = ae["decoder"](ae["encoder"](video)).clamp(0, 1)
        saved = net["encoder"].state_dict()["0.weight"].to(torch.bfloat16).float()
        assert torch.equal(ae["encoder"].state_dict()["0.weight"], saved)
    rec = round_trip(ae, video)
    assert rec.shape == video.shape and torch.allclose(rec, want, atol=1e-5)
    toy_autoencoder(tmp_path / "flow", stage="flow")
    with pytest.raises(SystemExit, match="a flow checkpoint, not the autoencoder's"):
        load_autoencoder(tmp_path / "flow", "cpu")
    with pytest.raises(SystemExit, match="no autoencoder checkpoint"):
        load_autoencoder(tmp_path, "cpu")


def test_eval_through_the_autoencoder(classifier_run, tmp_path, capsys):
    """--reference --through-ae reads the rendered clips after a round trip: a random-init
    autoencoder's clips are far from the renders, and the figures say which autoencoder it was."""
    import evaluate
    toy_autoencoder(tmp_path / "run" / "ae")
    common = ["--classifier", str(classifier_run), "--in-dist", "3", "--per-heldout", "0", "--seconds", "1",
              "--batch", "2", "--reference"]
    ref = evaluate.main(common + ["--json", str(tmp_path / "ref.json")])
    rt = evaluate.main(common + ["--through-ae", str(tmp_path / "run"), "--json", str(tmp_path / "rt.json")])
    text = capsys.readouterr().out
    assert ref["mode"] == "reference" and "autoencoder" not in ref
    assert rt["mode"] == "round_trip" and f"through the autoencoder {tmp_path / 'run'} (step 7, toy)" in text
    ae = rt["autoencoder"]
    assert ae["clips"] == 3 and ae["step"] == 7
    assert "autoencoder round trip: PSNR" in text
    assert 0 < ae["psnr"] < ae["block_psnr"] < 60, ae  # an untrained autoencoder is below the block mean
    assert rt["frechet"] > 2 * ref["frechet"]
    assert json.loads((tmp_path / "rt.json").read_text())["autoencoder"] == json.loads(json.dumps(ae))
    with pytest.raises(SystemExit):
        evaluate.main(["--classifier", str(classifier_run), "--model", str(TINY), "--through-ae", str(tmp_path / "run")])
    assert "--through-ae reads rendered clips" in capsys.readouterr().err


def test_eval_and_strip_hand_guidance_and_the_dit_stage_to_the_sampler(classifier_run, tmp_path, monkeypatch, capsys):
    """--guidance reaches the sampler with the empty caption's text beside the prompts' (CFG for a
    flow DiT), is recorded with the figures, and a scale that is not > 0 is refused; a flow DiT is
    sampled as one (d = 0)."""
    import evaluate
    import measure.generate
    import strip
    seen = []
    real = measure.generate.sample

    def spy(model, tokens, pooled, *args, uncond=None, guidance=1.0, flow_dit=False, **kwargs):
        seen.append((guidance, None if uncond is None else tuple(uncond[0].shape), tuple(tokens.shape), flow_dit))
        return real(model, tokens, pooled, *args, uncond=uncond, guidance=guidance, flow_dit=flow_dit, **kwargs)
    monkeypatch.setattr(measure.generate, "sample", spy)
    common = ["--classifier", str(classifier_run), "--in-dist", "2", "--per-heldout", "0", "--seconds", "1",
              "--batch", "2"]
    r = evaluate.main(["--model", str(TINY), "--guidance", "2.5", "--json", str(tmp_path / "g.json")] + common)
    assert r["guidance"] == 2.5 and "guidance 2.5" in capsys.readouterr().out
    assert len(seen) == 1 and seen[0][0] == 2.5 and seen[0][1] == seen[0][2] and seen[0][2][0] == 2
    assert seen[0][3] is False  # the fixture folder names no flow DiT
    # a run folder's flow DiT is sampled at d = 0, as flow trains it
    seen.clear()
    evaluate.main(["--model", str(toy_dit_run(tmp_path / "flow-run", stage="flow")), "--steps", "1",
                   "--json", str(tmp_path / "f.json")] + common)
    assert [x[3] for x in seen] == [True]
    seen.clear()
    meta = strip.main(["--model", str(TINY), "--out", str(tmp_path / "s.png"), "--prompt", "a red ball",
                       "--seconds", "1", "--cols", "2", "--guidance", "2.5"])
    assert meta["guidance"] == 2.5 and seen[0][0] == 2.5 and seen[0][1] == seen[0][2]
    for bad in (["--model", str(TINY), "--guidance", "0"], ["--reference", "--guidance", "2"]):
        with pytest.raises(SystemExit):
            evaluate.main(bad + common)
        assert "--guidance" in capsys.readouterr().err


def test_sample_strip(tmp_path):
    import strip
    meta = strip.main(["--model", str(TINY), "--out", str(tmp_path / "s.png"), "--prompt", "a red ball",
                       "--prompt", "a cat at night", "--cols", "3", "--seconds", "1"])
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (3 * (48 + 2), 2 * (32 + 2))  # 1-pixel frame borders
    assert [r["prompt"] for r in meta["rows"]] == ["a red ball", "a cat at night"]
    assert json.loads((tmp_path / "s.json").read_text()) == meta


def test_strip_samples_with_the_models_own_step_count(tmp_path, capsys):
    """Without --steps, the strip uses the manifest's training.sampler_steps (the number the
    few-step stage was trained for), else 2 as the Rust CLI; --steps wins over both."""
    import shutil

    import strip
    folder = tmp_path / "model"
    shutil.copytree(TINY, folder)
    common = ["--prompt", "a red ball", "--cols", "1", "--seconds", "1", "--out"]
    assert strip.main(["--model", str(folder)] + common + [str(tmp_path / "a.png")])["steps"] == 2
    assert "Euler steps per chunk: 2 (default; the model names no sampler_steps)" in capsys.readouterr().out
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "training": {"sampler_steps": 3}}))
    assert strip.main(["--model", str(folder)] + common + [str(tmp_path / "b.png")])["steps"] == 3
    assert "Euler steps per chunk: 3 (the model's training.sampler_steps)" in capsys.readouterr().out
    assert strip.main(["--model", str(folder), "--steps", "1"] + common + [str(tmp_path / "c.png")])["steps"] == 1
    with pytest.raises(SystemExit, match="at least 1 step"):
        strip.main(["--model", str(folder), "--steps", "0"] + common + [str(tmp_path / "d.png")])


def test_classifier_reuse_renders_every_kth_step(tmp_path, monkeypatch):
    """--reuse K: batch s // K for step s, rendered once; accuracies logged from fresh batches
    only, so they stay accuracies on unseen clips."""
    import train_classifier
    seen = []
    render = train_classifier.batch
    monkeypatch.setattr(train_classifier, "batch",
                        lambda args, cfg, index, heldout, dev: seen.append(index) or render(args, cfg, index, heldout, dev))
    run = tmp_path / "run"
    train_classifier.main(["--toy", "--run", str(run), "--threads", "1", "--steps", "5", "--reuse", "2",
                           "--log-every", "1"])
    assert seen == [0, 1, 2]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    with_acc = [r["step"] for r in log if any(k.startswith("acc_") for k in r)]
    assert with_acc == [1, 3, 5], with_acc  # steps 0, 2, 4 start a batch (logged after the step)
    with pytest.raises(SystemExit):
        train_classifier.main(["--toy", "--run", str(run), "--steps", "1", "--reuse", "0"])
    with pytest.raises(SystemExit):  # a window longer than its clip
        train_classifier.main(["--toy", "--run", str(run), "--steps", "1", "--source-frames", "8"])


def test_classifier_cli_sets_a_fresh_classifiers_reach_and_keeps_a_resumed_ones(tmp_path, capsys):
    import train_classifier
    run = tmp_path / "run"
    reach = ["--diff-strides", "1", "4", "--temporal-dilations", "1", "2", "--pool-grid", "2", "--motion-probe"]
    train_classifier.main(["--toy", "--run", str(run), "--threads", "1", "--steps", "2"] + reach)
    model, state = load_classifier(run / "classifier")
    assert (model.cfg.diff_strides, model.cfg.temporal_dilations, model.cfg.pool_grid) == ([1, 4], [1, 2], 2)
    assert model.cfg.motion_probe and hasattr(model, "motion")
    train_classifier.main(["--toy", "--run", str(run), "--threads", "1", "--steps", "1"] + reach)
    assert load_classifier(run / "classifier")[1]["step"] == 3
    with pytest.raises(SystemExit, match="other settings"):
        train_classifier.main(["--toy", "--run", str(run), "--steps", "1", "--pool-grid", "1"])
    with pytest.raises(SystemExit):
        train_classifier.main(["--toy", "--run", str(run), "--steps", "1", "--diff-strides", "0"])
    assert load_classifier(run / "classifier")[1]["step"] == 3


def test_a_grown_classifier_starts_as_the_trained_one_and_can_learn_its_additions():
    """grow_classifier adds frame differences, temporal convs, a pooling grid, the motion probe and
    the camera, colour and motion tracks to a trained classifier without changing a single output,
    and every addition gets a gradient."""
    torch.manual_seed(0)
    trained = AttributeClassifier(ClassifierConfig.toy())
    for p in trained.parameters():  # away from the init, so a weight left uncopied would show
        p.data.add_(torch.randn_like(p) * 0.1)
    cfg = ClassifierConfig(**{**dataclasses.asdict(trained.cfg), "diff_strides": [1, 4],
                              "temporal_dilations": [1, 1, 4], "pool_grid": 2, "motion_probe": True,
                              "camera_track": [1, 2], "colour_track": True, "motion_track": [1, 4]})
    grown = grow_classifier(trained, cfg)
    video = torch.rand(2, 12, 3, 32, 48)
    (a, fa), (b, fb) = trained.eval()(video), grown.eval()(video)
    assert torch.allclose(fa, fb, atol=1e-5)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    grown.train()
    sum(lg.square().mean() for lg in grown(video)[0].values()).backward()
    c = trained.cfg.channels
    assert grown.frames[0][0].weight.grad[:, 6:].abs().sum() > 0  # the stride-4 differences
    assert grown.proj.weight.grad[:, 4 * c * 2:].abs().sum() > 0  # the grid's regions
    assert grown.temporal[2].norm.weight.grad.abs().sum() > 0  # the new temporal conv
    assert grown.motion.weight.grad.abs().sum() > 0
    assert grown.camera_track.out.weight.grad.abs().sum() > 0  # zero at first, so only its last layer
    assert grown.colour_track.out.weight.grad.abs().sum() > 0
    assert grown.motion_track.out.weight.grad.abs().sum() > 0
    for bad, why in (({"channels": 16}, "keeps channels"), ({"diff_strides": [4, 1]}, "at the end"),
                     ({"temporal_dilations": [2]}, "at the end")):
        with pytest.raises(ValueError, match=why):
            grow_classifier(trained, ClassifierConfig(**{**dataclasses.asdict(trained.cfg), **bad}))
    with pytest.raises(ValueError, match="from 1"):
        grow_classifier(grown, ClassifierConfig(**{**dataclasses.asdict(cfg), "pool_grid": 3}))
    with pytest.raises(ValueError, match="from none"):
        grow_classifier(grown, ClassifierConfig(**{**dataclasses.asdict(cfg), "camera_track": [1, 2, 4]}))
    with pytest.raises(ValueError, match="keeps the colour track"):
        grow_classifier(grown, ClassifierConfig(**{**dataclasses.asdict(cfg), "colour_track": False}))
    with pytest.raises(ValueError, match="motion_track can only grow from none"):
        grow_classifier(grown, ClassifierConfig(**{**dataclasses.asdict(cfg), "motion_track": []}))


def test_the_motion_track_places_its_attention_where_the_map_is_hot():
    """The motion track's centre follows the attended place on screen and its spread is small on one
    spot, so the temporal convs can read a path: a hot spot that moves moves the centre with it."""
    from measure.motion_track import MotionTrack
    track = MotionTrack(channels=4, size=(5, 8), classes=3, dilations=[1])
    with torch.no_grad():
        track.attention.weight.zero_()
        track.attention.weight[0, 0] = 50.0  # attend to channel 0
        track.attention.bias.zero_()
    maps = torch.zeros(1, 2, 4, 5, 8)
    maps[0, 0, 0, 1, 2] = 1.0  # frame 0: row 1, column 2
    maps[0, 1, 0, 4, 7] = 1.0  # frame 1: the bottom right corner
    _, centre, spread = track.attended(maps)
    assert torch.allclose(centre[0], torch.tensor([-1 + 2 * 2 / 7, -1 + 2 * 1 / 4]), atol=1e-3)
    assert torch.allclose(centre[1], torch.tensor([1.0, 1.0]), atol=1e-3)
    assert (spread < 0.05).all()
    assert track(maps).shape == (1, 2, 3) and not track(maps).any()  # zero at first


def test_classifier_cli_grows_a_trained_classifier_into_a_fresh_run(tmp_path):
    import train_classifier
    base, grown = tmp_path / "base", tmp_path / "grown"
    train_classifier.main(["--toy", "--run", str(base), "--threads", "1", "--steps", "2"])
    train_classifier.main(["--toy", "--run", str(grown), "--threads", "1", "--steps", "1", "--grow-from", str(base),
                           "--temporal-dilations", "1", "1", "4", "--pool-grid", "2"])
    model, state = load_classifier(grown / "classifier")
    assert state["step"] == 3 and state["grown_from"] == f"{base} at step 2"
    assert (model.cfg.temporal_dilations, model.cfg.pool_grid) == ([1, 1, 4], 2)
    # resumed like any run, it remembers what it grew from
    train_classifier.main(["--toy", "--run", str(grown), "--threads", "1", "--steps", "1"])
    again = load_classifier(grown / "classifier")[1]
    assert (again["step"], again["grown_from"]) == (4, state["grown_from"])
    with pytest.raises(SystemExit, match="already holds"):
        train_classifier.main(["--toy", "--run", str(grown), "--steps", "1", "--grow-from", str(base)])
    with pytest.raises(SystemExit, match="at the end"):
        train_classifier.main(["--toy", "--run", str(tmp_path / "other"), "--steps", "1", "--grow-from", str(base),
                               "--temporal-dilations", "4"])
    assert not (tmp_path / "other" / "classifier").exists()


def test_track_cli_trains_only_the_track_from_a_resumable_cache(tmp_path, monkeypatch, capsys):
    """train_track.py grows a classifier by a track, caches what the frozen part reads once, trains
    the track alone and saves a classifier whose other outputs are unchanged; a classifier with the
    camera track grows the colour track from the same cache and keeps both."""
    import train_track
    import train_classifier
    base, run = tmp_path / "base", tmp_path / "cam"
    train_classifier.main(["--toy", "--run", str(base), "--threads", "1", "--steps", "2"])
    rendered = []
    render = train_track.classifier_batch
    monkeypatch.setattr(train_track, "classifier_batch",
                        lambda args, cfg, i, held, dev: rendered.append(i) or render(args, cfg, i, held, dev))
    small = ["--threads", "1", "--clips", "3", "--frames", "8", "--source-frames", "16", "--test-clips", "2",
             "--test-frames", "12", "--render-batch", "2", "--batch", "2", "--lr", "0.05"]
    train_track.main(["--track", "camera", "--grow-from", str(base), "--run", str(run), "--dilations", "1", "2",
                      "--steps", "5"] + small)
    out = capsys.readouterr().out
    assert "cached train batch 2/2 (2 clips, 8 frames of 16)" in out and "test after track: frames" in out
    assert rendered == [2, 3, 0]  # two training batches past the base's step 2, one test batch
    cached = torch.load(run / "track-cache" / "train-0000.pt")
    assert cached["base.colour"].shape[:2] == cached["label.colour"].shape == cached["maps"].shape[:2] == (2, 8)
    trained, _ = load_classifier(base / "classifier")
    grown, state = load_classifier(run / "classifier")
    assert grown.cfg.camera_track == [1, 2] and state["camera_track"]["steps"] == 5
    assert grown.camera_track.out.weight.abs().sum() > 0  # trained away from its zero start
    video = torch.rand(1, 10, 3, 32, 48)
    (a, fa), (b, fb) = trained.eval()(video), grown.eval()(video)
    assert torch.allclose(fa, fb) and all(torch.allclose(a[k], b[k]) for k in a if k != "camera")
    assert not torch.allclose(a["camera"], b["camera"])
    # a rerun reads the cache it finds instead of rendering again
    (run / "classifier").rename(tmp_path / "first")
    rendered.clear()
    train_track.main(["--track", "camera", "--grow-from", str(base), "--run", str(run), "--steps", "1"] + small)
    assert rendered == []
    with pytest.raises(SystemExit, match="already holds"):
        train_track.main(["--track", "camera", "--grow-from", str(base), "--run", str(run), "--steps", "1"] + small)
    # another run can share that cache, and regularise and report as it goes
    capsys.readouterr()
    train_track.main(["--track", "camera", "--grow-from", str(base), "--run", str(tmp_path / "shared"),
                      "--steps", "4", "--cache", str(run / "track-cache"), "--weight-decay", "0.5",
                      "--map-dropout", "0.3", "--eval-every", "2"] + small)
    out = capsys.readouterr().out
    assert rendered == [] and not (tmp_path / "shared" / "track-cache").exists()
    assert "test at 2 track: frames" in out and "test at 4" not in out  # the last step reports once, after
    shared = load_classifier(tmp_path / "shared" / "classifier")[1]["camera_track"]
    assert (shared["weight_decay"], shared["map_dropout"]) == (0.5, 0.3)
    with pytest.raises(SystemExit, match="has a camera track already"):
        train_track.main(["--track", "camera", "--grow-from", str(tmp_path / "first"), "--run", str(tmp_path / "x")]
                         + small)
    for bad in (["--clips", "0"], ["--source-frames", "4"], ["--dilations", "0"], ["--steps", "-1"],
                ["--map-dropout", "1"], ["--weight-decay", "-1"], ["--eval-every", "-1"]):
        with pytest.raises(SystemExit):
            train_track.main(["--track", "camera", "--grow-from", str(base), "--run", str(tmp_path / "y")]
                             + small + bad)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # the colour track on top of the camera track: the cache serves it, and only colour changes
    capsys.readouterr()
    both = tmp_path / "both"
    train_track.main(["--track", "colour", "--grow-from", str(tmp_path / "first"), "--run", str(both), "--steps", "5",
                      "--cache", str(run / "track-cache")] + small)
    out = capsys.readouterr().out
    assert rendered == [] and "by a colour track:" in out and "test after track: frames" in out
    cam, cam_state = load_classifier(tmp_path / "first")
    grown, state = load_classifier(both / "classifier")
    assert grown.cfg.colour_track and grown.cfg.camera_track == cam.cfg.camera_track
    assert state["colour_track"]["steps"] == 5 and state["camera_track"] == cam_state["camera_track"]
    (a, fa), (b, fb) = cam.eval()(video), grown.eval()(video)
    assert torch.allclose(fa, fb) and all(torch.allclose(a[k], b[k]) for k in a if k != "colour")
    assert not torch.allclose(a["colour"], b["colour"])
    with pytest.raises(SystemExit, match="has a colour track already"):
        train_track.main(["--track", "colour", "--grow-from", str(both), "--run", str(tmp_path / "z")] + small)
    # and the motion track on top of both
    motion = tmp_path / "motion"
    train_track.main(["--track", "motion", "--grow-from", str(both), "--run", str(motion), "--steps", "5",
                      "--dilations", "1", "2", "--cache", str(run / "track-cache")] + small)
    assert rendered == [] and "by a motion track, dilations [1, 2]:" in capsys.readouterr().out
    grown, state = load_classifier(motion / "classifier")
    assert grown.cfg.motion_track == [1, 2] and grown.cfg.colour_track and grown.cfg.camera_track == [1, 2]
    assert state["motion_track"]["steps"] == 5 and state["colour_track"]["steps"] == 5
    (a, fa), (b, fb) = load_classifier(both / "classifier")[0](video), grown(video)
    assert torch.allclose(fa, fb) and all(torch.allclose(a[k], b[k]) for k in a if k != "motion")
    assert not torch.allclose(a["motion"], b["motion"])
    with pytest.raises(SystemExit):
        train_track.main(["--track", "scene", "--grow-from", str(base), "--run", str(tmp_path / "z")] + small)
    assert not (tmp_path / "z").exists()


def test_a_window_of_a_long_clip_is_those_frames_of_it():
    """The classifier can train on short windows of 15 s clips: a window draws exactly those frames
    of the whole clip, with their labels, cuts and removed subject included."""
    held = load_heldout()
    specs = [sample_clip(11, 32, held, cut_prob=1.0), sample_clip(12, 32, held, cut_prob=0.0)]
    assert len(specs[0].shots) > 1  # the window below straddles its cut at frame 16
    full, full_lab = render_labelled(specs, 32, 48, empty_from=[None, 20])
    starts = [9, 15]
    video, lab = render_labelled(specs, 32, 48, empty_from=[None, 5], starts=starts, frames=12)
    assert video.shape == (2, 12, 3, 32, 48)
    for b, s in enumerate(starts):
        assert torch.allclose(video[b], full[b, s:s + 12], atol=1e-5)
        for a in ATTRS:
            assert (lab[a][b] == full_lab[a][b, s:s + 12]).all(), a
    assert any(lab[a][0, 6] != lab[a][0, 7] for a in ATTRS), "the cut is not at the window's frame 7"
    with pytest.raises(ValueError, match="do not fit"):
        render_labelled(specs, 32, 48, starts=[0, 25], frames=12)
    # a step's windows are step-tied, inside their clips, and longer clips give other windows
    a = classifier_specs(4, 2, 6, 16, held, source_frames=240)
    assert a[2] == classifier_specs(4, 2, 6, 16, held, source_frames=240)[2]
    assert all(sp.frames == 240 for sp in a[0]) and all(0 <= s <= 224 for s in a[2]) and len(set(a[2])) > 1
    assert classifier_specs(4, 2, 6, 16, held)[2] == [0] * 6


def test_balanced_camera_weights_make_every_present_class_count_the_same():
    from train_track import class_weights
    labels = torch.tensor([[0, 0, 0, 1], [IGNORE, 0, 1, 0]])  # class 0: 5 frames, 1: 2, 2: none
    w = class_weights(labels, 3)
    counts = torch.tensor([5.0, 2.0, 0.0])
    assert torch.allclose(w * counts, torch.tensor([3.5, 3.5, 0.0]))  # equal shares, summing to the frames


def test_paired_comparison_counts_the_clips_one_eval_gets_right_and_the_other_not(tmp_path, capsys):
    from measure import paired
    prompts = build_prompts(3, 0, 2)
    prompts[1]["attrs"]["style"] = "manga"     # its colour is not judged
    cut = paired.cut_prompts(prompts, 1)
    assert [e["prompt"] for e in cut] == [e["prompt"] for e in prompts]
    assert [spec_of(e).frames for e in cut] == [16] * 3
    assert [spec_of(e).shots[0].attrs() for e in cut] == [spec_of(e).shots[0].attrs() for e in prompts]

    def result(right: list[set[str]]) -> dict:
        wrong = {a: "?" for a in ATTRS}
        return {"accuracy": {"all": {"overall": 0.5}}, "per_prompt": [
            {"prompt": p["prompt"], "pred": {**wrong, **{a: p["attrs"][a] for a in r}}}
            for p, r in zip(cut, right)]}
    a = result([{"subject", "colour"}, {"colour", "time"}, {"time"}])
    b = result([{"subject"}, {"scene"}, {"time", "camera"}])
    table = paired.discordant(a, b, cut)
    assert table["colour"] == (1, 0, 2)        # prompt 1's colour right in A, not judged
    assert table["time"] == (1, 0, 3) and table["scene"] == (0, 1, 3) and table["camera"] == (0, 1, 3)
    assert table["subject"] == (0, 0, 3) and "all" not in table
    assert paired.clip_margins(a, b, cut) == [1, 0, -1]  # prompt 2: time against scene (colour not judged)
    assert paired.sign_test(0, 5) == pytest.approx(2 / 32) and paired.sign_test(3, 3) == 1.0
    # margins of +-1 are the sign test; one clip six attributes better is one clip, not six
    assert paired.sign_flip_test([1, 1, -1, 0, 1, 1, 1]) == pytest.approx(paired.sign_test(5, 1))
    assert paired.sign_flip_test([6]) == 1.0 and paired.sign_test(6, 0) < 0.05
    margins = [3, -1, 2, 0, 4]
    sums = [abs(sum(s * m for s, m in zip(signs, margins))) for signs in itertools.product((1, -1), repeat=5)]
    assert paired.sign_flip_test(margins) == pytest.approx(np.mean(np.array(sums) >= sum(margins)))
    assert paired.sign_flip_test([]) == 1.0

    for name, r in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(r))
    write_prompts(tmp_path / "p.jsonl", cut)
    assert paired.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--prompts", str(tmp_path / "p.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "colour          1      0      2" in out
    assert "Fréchet distance: not compared, neither eval kept its clip features" in out
    assert "clip by clip: A reads more right in 1 clips, B in 1, 1 even; A - B = +0 attributes" in out
    assert "flicker: not compared clip by clip, neither eval kept it per clip" in out
    # each clip's flicker, where both kept it: the calmer clips counted, not the differences summed
    for r, flicker in ((a, [5.0, 7.0, 30.0]), (b, [6.0, 9.0, 2.0])):
        for clip, f in zip(r["per_prompt"], flicker):
            clip["flicker"] = f
    assert paired.flicker_line(a, b) == "flicker: A 14, B 5.667; A calmer in 2 clips, B in 1; sign test p 1.000"
    assert paired.p_text(paired.sign_test(38, 2)) == "< 0.001" and paired.p_text(0.0012) == "0.001"
    del b["per_prompt"][1]["flicker"]
    assert "not compared clip by clip, B did not keep it per clip" in paired.flicker_line(a, b)
    del a["per_prompt"][0]["flicker"]
    assert "neither eval kept it" in paired.flicker_line(a, b)
    for r in (a, b):
        for clip in r["per_prompt"]:
            clip.pop("flicker", None)
    # with the clip features kept, the two distances and their difference's error
    from measure.kept_features import save_features
    from measure.spread import frechet_difference_error, frechet_error
    rng = np.random.default_rng(0)
    rendered, words = rng.normal(size=(3, 8)), [p["prompt"] for p in cut]
    save_features(tmp_path / "a.json", rendered + 2, rendered, words)
    assert paired.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--prompts", str(tmp_path / "p.jsonl")]) == 0
    assert "Fréchet distance: not compared, B kept no clip features" in capsys.readouterr().out
    save_features(tmp_path / "b.json", rendered + 1, rendered, words)
    assert paired.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--prompts", str(tmp_path / "p.jsonl")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Fréchet distance"))
    assert line.startswith("Fréchet distance: A 32, B 8; A - B = +24, standard error ±"), line
    assert float(line.split("±")[1].split()[0]) < 1e-5  # every prompt moves both by the same
    # what two evals' clips share cancels in the difference, not in either distance
    gen, ren = rng.normal(size=(40, 16)), rng.normal(size=(40, 16))
    alike = (gen, ren), (gen + 0.1 * rng.normal(size=(40, 16)), ren)
    assert frechet_difference_error(*alike) < 0.2 * frechet_error(*alike[0])
    b["per_prompt"][2]["prompt"] = "another prompt"
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert paired.main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                        "--prompts", str(tmp_path / "p.jsonl")]) == 2
    assert "prompt 3 differs" in capsys.readouterr().err


def test_confusion_tallies_what_each_asked_value_was_read_as(tmp_path, capsys):
    from measure import confusion
    prompts = build_prompts(4, 0, 1)
    subjects = ["car", "car", "ball", "car"]
    for p, subject in zip(prompts, subjects):
        p["attrs"]["subject"] = subject
    prompts[3]["attrs"]["style"] = "manga"     # its colour is hidden, its subject is not
    reads = ["ball", "none", "ball", "car"]
    result = {"per_prompt": [{"prompt": p["prompt"], "pred": {**p["attrs"], "subject": r, "colour": "?"}}
                             for p, r in zip(prompts, reads)]}
    table = confusion.confusion(result, prompts, "subject")
    assert list(table) == ["car", "ball"]
    assert table["car"] == {"ball": 1, "none": 1, "car": 1} and table["ball"] == {"ball": 1}
    assert sum(sum(c.values()) for c in confusion.confusion(result, prompts, "colour").values()) == 3

    (tmp_path / "e.json").write_text(json.dumps(result))
    write_prompts(tmp_path / "p.jsonl", prompts)
    assert confusion.main([str(tmp_path / "e.json"), "--prompts", str(tmp_path / "p.jsonl")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "subject: 2 of 4 clips read as asked"
    assert out[2].split() == ["car", "3", "1", "ball", "1,", "car", "1,", "none", "1"]
    assert out[-1].split() == ["(all)", "4", "2", "ball", "2,", "car", "1,", "none", "1"]
    assert confusion.main([str(tmp_path / "e.json"), "--prompts", str(tmp_path / "p.jsonl"),
                           "--attribute", "size"]) == 2
    assert "no attribute 'size'" in capsys.readouterr().err
    write_prompts(tmp_path / "p.jsonl", prompts[:3])
    assert confusion.main([str(tmp_path / "e.json"), "--prompts", str(tmp_path / "p.jsonl")]) == 2
    assert "the eval read 4 clips; the prompt list has 3" in capsys.readouterr().err
