"""throughput.py (where a training step's time goes) and the trainer options it compares."""
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def test_throughput_prints_every_figure(tmp_path):
    env_file = tmp_path / "tp.env"
    cmd = [sys.executable, str(HERE / "throughput.py"), "--toy", "--repeat", "1", "--threads", "1",
           "--render", "0:256 2:8", "--reuse", "1 4", "--suggest", str(env_file)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ms = {line.split("  ")[0].strip(): float(m.group(1))
          for line in res.stdout.splitlines() if (m := re.search(r"([\d.]+) ms", line))}
    names = ["render flow batch 2x16, groups 0, frames/call 256", "render flow batch 2x16, groups 2, frames/call 8",
             "render autoencoder batch 2x16", "encode flow batch, contiguous", "encode flow batch, channels-last",
             "autoencoder step 2x16, contiguous", "autoencoder step 2x16, channels-last",
             "DiT forward without grad 2x16", "render classifier batch 4x16", "classifier step 4x16"]
    for name in names:
        assert ms.get(name, 0) > 0, (name, res.stdout)
    assert any(k.startswith("DiT step 2x16 (") for k in ms), res.stdout
    # the old dense-mask attention, timed last (after the suggestions) for comparison
    assert res.stdout.rstrip().splitlines()[-1].startswith("DiT step 2x16, dense mask"), res.stdout
    # the autoencoder at a quarter of its batch (at least 1 clip), in the faster layout
    assert any(k.startswith("autoencoder step 1x16, ") for k in ms), res.stdout
    assert len([k for k in ms if k.startswith("flow step")]) == 4, res.stdout
    # the suggestions are shell exports that session.sh's per-stage variables take
    res = subprocess.run(["bash", "-c", f". {env_file} && echo \"$AE_ARGS|$FLOW_ARGS|$SHORTCUT_ARGS|$CLASSIFIER_ARGS\""],
                         capture_output=True, text=True)
    ae, flow, shortcut, clf = res.stdout.strip().split("|")
    assert ae.startswith("--reuse ") and "--batch-groups" in flow and flow == shortcut, res.stdout
    assert clf.startswith("--reuse "), res.stdout
    bad = subprocess.run(cmd[:2] + ["--toy", "--render", "4"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "GROUPS:FRAMES" in bad.stderr


def test_throughput_times_the_dit_alone_at_a_chosen_batch():
    cmd = [sys.executable, str(HERE / "throughput.py"), "--toy", "--repeat", "1", "--threads", "1", "--dit-only",
           "--flow-batch", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()[1:]
    assert [line.split("  ")[0] for line in lines] == [
        "DiT step 3x16 (0.1 M params)", "DiT forward without grad 3x16", "DiT step 3x16, dense mask"], res.stdout
    assert "chunk by chunk takes" in lines[-1]
    bad = subprocess.run(cmd + ["--suggest", "x.env"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--suggest needs every part timed" in bad.stderr


def test_trainer_takes_grouped_batches_and_render_chunks(tmp_path):
    common = ["--run", str(tmp_path / "run"), "--toy", "--threads", "1", "--log-every", "1", "--steps", "1"]
    for stage, extra in (("autoencoder", ["--channels-last"]), ("flow", ["--batch-groups", "1", "--render-frames", "8"])):
        res = subprocess.run([sys.executable, str(HERE / "train.py"), stage, *common, *extra],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([sys.executable, str(HERE / "train.py"), "flow", *common, "--render-frames", "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--render-frames takes a whole number" in res.stderr


def test_suggest_picks_the_fastest_settings_and_the_least_reuse_that_pays():
    from throughput import suggest
    draw_s = {(0, 256): 0.5, (4, 1024): 0.2}
    encode_s = {"contiguous": 0.4, "channels-last": 0.3}
    ae_s = {"contiguous": 0.3, "channels-last": 0.4}
    ae, flow, shortcut, clf = suggest(draw_s, encode_s, ae_s, render_ae_s=0.1, dit_s=0.5, reuses=[1, 2, 4, 8],
                                      render_clf_s=0.3, clf_s=0.1)
    # (0.2 + 0.3) / 4 <= 0.25 * 0.5, (0.2 + 0.3) / 2 is not; 0.1 / 2 <= 0.25 * 0.3, 0.1 is not
    assert flow == 'FLOW_ARGS="--batch-groups 4 --render-frames 1024 --reuse 4 --channels-last"'
    assert shortcut == flow.replace("FLOW", "SHORTCUT")
    assert ae == 'AE_ARGS="--reuse 2"'
    assert clf == 'CLASSIFIER_ARGS="--reuse 8"'  # 0.3 / 8 > 0.25 * 0.1: the most offered
    # a quarter of the autoencoder's batch where its step takes at most 0.4 as long
    assert suggest(draw_s, encode_s, ae_s, 0.1, 0.5, [1, 2, 4, 8], 0.3, 0.1, ae_small=(2, 0.11))[0] == \
        'AE_ARGS="--reuse 2 --batch 2"'
    assert suggest(draw_s, encode_s, ae_s, 0.1, 0.5, [1, 2, 4, 8], 0.3, 0.1, ae_small=(2, 0.13))[0] == ae
    # rendering that never gets cheap enough takes the most reuse offered, no more
    assert "--reuse 8" in suggest(draw_s, encode_s, ae_s, 0.1, 0.01, [1, 2, 4, 8], 0.3, 0.1)[1]
