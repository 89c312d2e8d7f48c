"""The GPU session's own tools at toy scale on CPU: device/session.sh (the background chain, the
classifier beside it, the pack under the return limits) and device/restore.sh (unpack, check), and
the trainer's text loader for row-block shards, which the first GPU session tripped over."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parents[1]
DEVICE = HERE / "device"


def test_session_chain_pack_and_restore(tmp_path):
    run, out, restored = tmp_path / "run", tmp_path / "out", tmp_path / "restored"
    env = {**os.environ, "RUN": str(run), "OUT": str(out), "TRAIN_ARGS": "--toy --threads 1 --log-every 1",
           "CLASSIFIER_ARGS": "--toy --threads 1 --log-every 1", "FLOW_ARGS": "--batch-groups 1",
           "THROUGHPUT_ARGS": "--toy --repeat 1 --threads 1"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--throughput", "60", "--start", "0.02 0.02 0.02",
                          "--classifier", "0.02", "--until", "150", "--collect", "ae classifier flow shortcut"],
                         env=env, capture_output=True, text=True, timeout=260)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "throughput exit 0 (suggestions in" in res.stdout, res.stdout
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
    # throughput.py's suggestions reached their stages, and the caller's FLOW_ARGS, coming after
    # them, won for the flow stage only
    suggested = {}
    for line in (restored / "throughput.env").read_text().splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        suggested[name] = value.strip('"').split()

    def flag(name, option, default):
        args = suggested[name]
        return int(args[args.index(option) + 1]) if option in args else default
    assert states["ae"]["reuse"] == flag("AE_ARGS", "--reuse", 1)
    assert states["ae"]["batch"] == flag("AE_ARGS", "--batch", 2)  # toy: 2 clips, or a quarter (1) if faster
    assert states["classifier"]["reuse"] == flag("CLASSIFIER_ARGS", "--reuse", 1)
    assert [states[s]["batch_groups"] for s in ("ae", "flow", "shortcut")] == \
        [0, 1, flag("SHORTCUT_ARGS", "--batch-groups", 0)]
    assert "render flow batch" in (restored / "throughput.out").read_text()
    log = [json.loads(line) for line in (restored / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} >= {"autoencoder", "flow", "shortcut", "classifier"}
    # the chain's records say where each step's time went; with throughput.py's --reuse K a batch
    # is rendered every K-th step only (the step a record names is the count after that step), so
    # only those records carry rendering time, and how K comes out depends on this machine's load
    reuse = states["flow"]["reuse"]
    assert reuse == flag("FLOW_ARGS", "--reuse", 1)
    flow = [r for r in log if r["stage"] == "flow"]
    rendered = [r for r in flow if (r["step"] - 1) % reuse == 0]
    assert rendered and all(r["render_s"] > 0 for r in rendered), flow
    assert all(r["train_s"] > 0 for r in flow), flow
    assert (restored / "chain.out").exists()
    # the pack holds the staged copies, not the live run folder with its pid files
    assert not list(restored.glob("*.pid")), sorted(p.name for p in restored.iterdir())

    # a second --start while the chain is still running must not start another one
    env2 = {**env, "TRAIN_ARGS": "--toy --threads 1 --reuse 2"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0 0.2 0"], env=env2,
                         capture_output=True, text=True, timeout=60)
    assert "started chain" in res.stdout
    res2 = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0 0.2 0"], env=env2,
                          capture_output=True, text=True, timeout=60)
    assert "already running" in res2.stdout, res2.stdout
    subprocess.run(["bash", str(DEVICE / "session.sh"), "--until", "60"], env=env2, capture_output=True, timeout=90)


def test_collect_takes_a_running_trainers_weights_of_now(tmp_path):
    """A stage still training when a call ends is asked to save (SIGUSR1) before the pack is made,
    so the call takes back the weights of that moment, not those of the last timed save, and
    the trainer carries on unharmed (the chain's next stage needs it to exit cleanly)."""
    run, out = tmp_path / "run", tmp_path / "out"
    env = {**os.environ, "RUN": str(run), "OUT": str(out), "TRAIN_ARGS": "--toy --threads 1 --log-every 1"}
    session = ["bash", str(DEVICE / "session.sh")]
    # 0.6 min of autoencoder with timed saves every 2 min: no timed save before it ends
    res = subprocess.run(session + ["--start", "0.6 0 0"], env=env, capture_output=True, text=True, timeout=60)
    assert "started chain" in res.stdout, res.stdout + res.stderr
    log = run / "log.jsonl"
    deadline = time.time() + 30
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 3):
        time.sleep(0.5)
    assert log.exists(), (run / "chain.out").read_text()
    assert not (run / "ae" / "state.json").exists()

    res = subprocess.run(session + ["--collect", "ae"], env=env, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ae: saved on request" in res.stdout, res.stdout
    m = re.search(r"checkpoint ae: autoencoder step (\d+) ok", res.stdout)
    assert m and int(m.group(1)) >= 3, res.stdout
    requested = int(m.group(1))

    res = subprocess.run(session + ["--until", "90"], env=env, capture_output=True, text=True, timeout=120)
    assert "chain finished" in res.stdout, res.stdout
    chain = (run / "chain.out").read_text()
    saves = [int(x) for x in re.findall(r"saved \S+ at step (\d+)", chain)]
    assert len(saves) == 2 and saves[0] == requested and saves[1] > requested, chain
    assert not (run / "trainer-ae.pid").exists()  # removed at a clean exit


def test_a_stage_that_fails_with_throughputs_suggestions_runs_again_without_them(tmp_path):
    """throughput.py measures a step, not a stage: a trainer that fails with its suggestions runs
    again with the caller's arguments alone, for the chain and for the classifier beside it."""
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    (run / "throughput.env").write_text('export AE_ARGS="--render-frames 0"\nexport FLOW_ARGS=""\n'
                                        'export CLASSIFIER_ARGS="--reuse 0"\n')
    env = {**os.environ, "RUN": str(run), "OUT": str(out), "TRAIN_ARGS": "--toy --threads 1 --log-every 1",
           "AE_ARGS": "--reuse 2", "CLASSIFIER_ARGS": "--toy --threads 1 --log-every 1"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--start", "0.02 0.02 0", "--classifier", "0.02",
                          "--until", "150", "--collect", "ae classifier flow"],
                         env=env, capture_output=True, text=True, timeout=260)
    assert res.returncode == 0, res.stdout + res.stderr
    chain, clf = (run / "chain.out").read_text(), (run / "classifier.out").read_text()
    assert "autoencoder failed with throughput.py's suggestions (--render-frames 0): again without them" in chain
    assert "--render-frames takes a whole number" in chain
    assert "flow failed" not in chain  # no suggestion for it: nothing to fall back from
    assert "classifier failed with throughput.py's suggestions (--reuse 0): again without them" in clf
    for stage in ("ae", "classifier", "flow"):
        assert f"checkpoint {stage}: " in res.stdout and "TORN" not in res.stdout, res.stdout
    from train_io import load_checkpoint
    assert load_checkpoint(run / "ae")[1]["reuse"] == 2  # the caller's own arguments still apply


def test_session_eval_measures_the_run_and_packs_it(tmp_path):
    """--eval at the end of a session: device/eval.sh on the run folder (rendered clips, generated
    clips, the strip, and the DiT's latent error, which needs the run's encoder), its files packed
    with the checkpoint and restored beside it."""
    import train
    import train_classifier
    run, out, restored = tmp_path / "run", tmp_path / "out", tmp_path / "restored"
    common = ["--run", str(run), "--toy", "--threads", "1", "--workers", "0", "--steps", "1"]
    for stage in ("autoencoder", "flow"):
        train.main([stage, *common])
    train_classifier.main(["--toy", "--run", str(run), "--threads", "1", "--steps", "1", "--batch", "2",
                           "--frames", "8"])
    env = {**os.environ, "RUN": str(run), "OUT": str(out), "DIT_ERROR_SECONDS": "1"}
    res = subprocess.run(["bash", str(DEVICE / "session.sh"), "--eval", "200",
                          "--in-dist 2 --per-heldout 0 --seconds 1 --batch 2 --steps 2", "--collect", "flow"],
                         env=env, capture_output=True, text=True, timeout=260)
    assert res.returncode == 0 and re.search(r"eval exit 0 \(.*dit-error\.json", res.stdout), res.stdout + res.stderr
    assert "the sampler's last step from the true path lands" in res.stdout  # the tail of eval.out, printed
    res = subprocess.run(["bash", str(DEVICE / "restore.sh"), str(out), str(restored)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    ev = restored / "eval"
    assert {"prompts.jsonl", "reference.json", "eval.json", "samples.png", "dit-error.json", "eval.out"} <= \
        {f.name for f in ev.iterdir()}
    gen, err = json.loads((ev / "eval.json").read_text()), json.loads((ev / "dit-error.json").read_text())
    assert len(gen["per_prompt"]) == 2 and gen["mode"] == "generated" and err["clips"] == 2 and err["seconds"] == 1


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


def test_carry_counts_what_a_call_sends(tmp_path):
    """device/carry.sh: the tree that travels (tracked and untracked-not-ignored files) plus the
    ignored files under each carried path, against 64 MiB; exit 1 when over or when a carried
    path is missing."""
    repo = tmp_path / "repo"
    (repo / "models/train/device").mkdir(parents=True)
    script = repo / "models/train/device/carry.sh"
    script.write_text((DEVICE / "carry.sh").read_text())
    (repo / ".gitignore").write_text("/big/\n")
    (repo / "tracked.bin").write_bytes(b"x" * 3 * 1048576)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "t"], check=True)
    (repo / "untracked.bin").write_bytes(b"x" * 1048576)  # not ignored: travels too
    (repo / "big").mkdir()
    (repo / "big/a.bin").write_bytes(b"x" * 40 * 1048576)
    (repo / "big/b.bin").write_bytes(b"x" * 30 * 1048576)

    def carry(*paths):
        return subprocess.run(["bash", str(script), *paths], capture_output=True, text=True, timeout=60)
    res = carry()
    assert res.returncode == 0 and "tree that travels: 4.00 MiB" in res.stdout, res.stdout + res.stderr
    res = carry("big/a.bin")
    assert res.returncode == 0 and "total 44.00 MiB of 64 MiB: fits" in res.stdout, res.stdout
    res = carry("big")
    assert res.returncode == 1 and "total 74.00 MiB of 64 MiB: OVER by 10.00 MiB" in res.stdout, res.stdout
    res = carry("big/a.bin", "missing")
    assert res.returncode == 1 and "carry missing: not here" in res.stdout, res.stdout
