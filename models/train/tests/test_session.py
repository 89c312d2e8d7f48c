"""The GPU session's own tools at toy scale on CPU: device/session.sh (the background chain, the
classifier beside it, the pack under the return limits) and device/restore.sh (unpack, check), and
the trainer's text loader for row-block shards, which the first GPU session tripped over."""
import json
import os
import subprocess
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parents[1]
DEVICE = HERE / "device"


def test_session_chain_pack_and_restore(tmp_path):
    run, out, restored = tmp_path / "run", tmp_path / "out", tmp_path / "restored"
    env = {**os.environ, "RUN": str(run), "OUT": str(out), "TRAIN_ARGS": "--toy --threads 1 --log-every 1",
           "CLASSIFIER_ARGS": "--toy --threads 1 --log-every 1", "FLOW_ARGS": "--batch-groups 1"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0.02 0.02 0.02", "--classifier", "0.02",
                          "--until", "150", "--collect", "ae classifier flow shortcut"],
                         env=env, capture_output=True, text=True, timeout=200)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "chain finished" in res.stdout and "classifier finished" in res.stdout, res.stdout
    for stage in ("ae", "classifier", "flow", "shortcut"):
        assert f"checkpoint {stage}: " in res.stdout and "TORN" not in res.stdout, res.stdout
    parts = sorted(out.glob("pack.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 1024 * 1024 for p in parts)

    res = subprocess.run(["bash", str(DEVICE / "restore.sh"), str(out), str(restored)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    from train_io import load_checkpoint
    steps, states = {}, {}
    for stage in ("ae", "classifier", "flow", "shortcut"):
        _, st = load_checkpoint(restored / stage)  # checks every shard's sha256
        steps[stage], states[stage] = st["step"], st
    assert all(s >= 1 for s in steps.values()), steps
    # FLOW_ARGS reached the flow stage only
    assert [states[s]["batch_groups"] for s in ("ae", "flow", "shortcut")] == [0, 1, 0]
    log = [json.loads(line) for line in (restored / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} >= {"autoencoder", "flow", "shortcut", "classifier"}
    # the chain's records say where each step's time went
    flow = [r for r in log if r["stage"] == "flow"]
    assert flow and all(r["render_s"] > 0 and r["train_s"] > 0 for r in flow)
    assert (restored / "chain.out").exists()

    # a second --start while the chain is still running must not start another one
    env2 = {**env, "TRAIN_ARGS": "--toy --threads 1 --reuse 2"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0 0.2 0"], env=env2,
                         capture_output=True, text=True, timeout=60)
    assert "started chain" in res.stdout
    res2 = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0 0.2 0"], env=env2,
                          capture_output=True, text=True, timeout=60)
    assert "already running" in res2.stdout, res2.stdout
    subprocess.run(["bash", str(DEVICE / "session.sh"), "--until", "60"], env=env2, capture_output=True, timeout=90)


def test_text_shards_join_row_blocks(tmp_path):
    import train
    emb = torch.arange(12.0).reshape(6, 2)
    save_file({"text.embeddings.word_embeddings.weight.part0": emb[:4].clone(),
               "text.layer.weight": torch.ones(2, 2)}, str(tmp_path / "text-00.safetensors"))
    save_file({"text.embeddings.word_embeddings.weight.part1": emb[4:].clone()}, str(tmp_path / "text-01.safetensors"))
    sd = train.text_shards_state(tmp_path)
    assert set(sd) == {"embeddings.word_embeddings.weight", "layer.weight"}
    assert torch.equal(sd["embeddings.word_embeddings.weight"], emb)


def test_reuse_renders_every_kth_step(tmp_path):
    """--reuse K: K training steps per rendered batch, the batch a function of the step even
    when a session resumes in the middle of a group."""
    import sys
    run = tmp_path / "run"
    base = [sys.executable, str(HERE / "train.py")]
    common = ["--run", str(run), "--toy", "--threads", "1", "--log-every", "1"]
    for stage, steps in (("autoencoder", 1), ("flow", 3), ("flow", 3)):
        res = subprocess.run(base + [stage, "--steps", str(steps), "--reuse", "2", *common], capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    flow = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    flow = [r for r in flow if r["stage"] == "flow"]
    rendered = [r["step"] for r in flow if r["render_s"] > 1e-3]
    # steps 1..6 (logged after the step); batches start at steps 0, 2, 4, and the resumed session
    # (at step 3, mid-group) renders batch 1 again before it can train
    assert rendered == [1, 3, 4, 5], [(r["step"], r["render_s"]) for r in flow]
    res = subprocess.run(base + ["flow", "--steps", "1", "--reuse", "0", *common], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "--reuse takes a whole number" in res.stderr


def test_reuse_encodes_each_batch_once(tmp_path, monkeypatch):
    """With --reuse K the DiT stages keep the batch's latents, not its frames: the frozen
    encoder runs once per rendered batch, not once per step."""
    import train
    common = ["--run", str(tmp_path / "run"), "--toy", "--threads", "1", "--log-every", "1"]
    train.main(["autoencoder", "--steps", "1", *common])
    calls = []
    forward = train.Encoder.forward
    monkeypatch.setattr(train.Encoder, "forward", lambda self, x: calls.append(x.shape) or forward(self, x))
    train.main(["flow", "--steps", "5", "--reuse", "2", *common])
    assert len(calls) == 3, calls  # batches of steps 0-1, 2-3, 4
