"""Every tensor a GPU session's code makes inside a step is made where the step runs. A tensor made
on the host that meets one on the GPU is an error under CUDA and none on this CPU-only machine,
so without this check such a bug would first show in a lent GPU session, and cost it. The
sessions' own paths run at toy scale under `host_tensors` (tests/host_tensors.py): session A's
autoencoder with every option it may get, the DiT stages, the classifier, throughput.py and the
eval."""
import numpy as np
import pytest
import torch

import host_tensors
from host_tensors import DeviceMix, HostTensor, host_tensors as on_host, watch_session_paths

COMMON = ["--toy", "--threads", "1", "--log-every", "1", "--workers", "0", "--steps", "2"]


def test_the_checker_refuses_what_cuda_refuses():
    dev = torch.device("cpu")
    x = torch.ones(3, 4)  # made outside the context: on the "accelerator"
    with on_host():
        born = host_tensors.BORN
        for mixes in (lambda: x + torch.arange(4), lambda: x + torch.from_numpy(np.ones(4, dtype=np.float32)),
                      lambda: x.cpu() * x, lambda: x + torch.zeros(4, device="cpu"),
                      lambda: torch.nn.functional.linear(torch.ones(2, 4), x),
                      lambda: torch.stack([x[0], torch.zeros(4)]), lambda: x + torch.arange(4).float() * 2):
            with pytest.raises(DeviceMix, match="CUDA refuses"):
                mixes()
        assert host_tensors.BORN > born
        # what CUDA allows: moved first, made there, a 0-dim host scalar, host indices, copies
        fine = [x + torch.arange(4).to(dev), x + torch.arange(4).to(x.device), x + torch.arange(4).to(x),
                x + torch.arange(4, device=dev), x * torch.tensor(2.0), x[torch.tensor([0, 2])],
                x + torch.randn_like(x)]
        assert all(type(t) is torch.Tensor for t in fine)
        x[0] = torch.zeros(4)
        host = torch.arange(4) * 2 + torch.ones(4)
        assert type(host) is HostTensor and (torch.rand(3) < 2).tolist() == [True] * 3 and float(torch.rand(())) < 1
    with pytest.raises(DeviceMix):  # a host tensor stays one after the context
        host + x


def test_the_checker_refuses_a_generator_on_the_other_side():
    dev = torch.device("cpu")
    x = torch.ones(3)  # on the "accelerator"
    before = torch.Generator(dev)  # made outside the context: not judged
    with on_host():
        host_gen, dev_gen, cpu_gen = torch.Generator(), torch.Generator(device=dev), torch.Generator("cpu")
        for mixes in (lambda: torch.randn(3, device=dev, generator=host_gen),
                      lambda: torch.rand(3, device=x.device, generator=cpu_gen),
                      lambda: torch.randn(3, generator=dev_gen), lambda: x.normal_(generator=host_gen),
                      lambda: torch.randint(4, (3,), device=dev, generator=host_gen.manual_seed(1)),
                      lambda: torch.zeros(3).uniform_(generator=dev_gen)):
            with pytest.raises(DeviceMix, match="generator made for .* CUDA refuses"):
                mixes()
        fine = [torch.randn(3, device=dev, generator=dev_gen), x.normal_(generator=dev_gen),
                torch.randn(3, generator=host_gen).to(dev), torch.zeros(3).uniform_(generator=cpu_gen),
                torch.randn(3, device=dev, generator=before), torch.randn(3, generator=before)]
        assert len(fine) == 6 and isinstance(host_gen, torch.Generator)
    assert type(torch.Generator()) is type(before)  # the context leaves torch as it was


@pytest.fixture
def checked(monkeypatch):
    born = host_tensors.BORN
    watch_session_paths(monkeypatch)
    yield
    assert host_tensors.BORN > born, "nothing was made on the host: the check did not run"


def test_session_training_paths_keep_to_the_device(checked, tmp_path):
    import train
    import train_classifier
    run = str(tmp_path / "run")
    # session A: the autoencoder from the block-mean start, with the subject's weight and every
    # setting throughput.py may suggest
    train.main(["autoencoder", "--run", run, *COMMON, "--subject-weight", "8", "--reuse", "2", "--channels-last",
                "--batch-groups", "2", "--render-frames", "8"])
    for stage in ("flow", "shortcut"):
        train.main([stage, "--run", run, *COMMON, "--reuse", "2", "--channels-last", "--batch-groups", "2",
                    "--render-frames", "8"])
    train.main(["autoencoder", "--run", run, *COMMON, "--freeze-encoder"])
    train_classifier.main(["--toy", "--run", run, "--threads", "1", "--log-every", "1", "--steps", "2",
                           "--batch", "4", "--frames", "8", "--reuse", "2", "--source-frames", "24"])


def test_throughput_keeps_to_the_device(checked):
    import throughput
    throughput.main(["--toy", "--repeat", "1", "--threads", "1", "--render", "0:256 2:8", "--reuse", "1 2"])


def test_eval_keeps_to_the_device(checked, tmp_path):
    import evaluate
    from measure import dit_error
    import train
    import train_classifier
    run = str(tmp_path / "run")
    train.main(["autoencoder", "--run", run, *COMMON])
    train.main(["flow", "--run", run, *COMMON])
    train_classifier.main(["--toy", "--run", run, "--threads", "1", "--steps", "1", "--batch", "2", "--frames", "8"])
    common = ["--classifier", run, "--in-dist", "2", "--per-heldout", "0", "--seconds", "1", "--batch", "2"]
    # --json into tmp_path: the default (runs/eval/) is the real run's
    evaluate.main(common + ["--model", run, "--steps", "2", "--json", str(tmp_path / "gen.json")])
    evaluate.main(common + ["--reference", "--through-ae", run, "--json", str(tmp_path / "round_trip.json")])
    dit_error.main(["--run", run, "--clips", "2", "--seconds", "1", "--steps", "2", "--classifier", run, "--sample",
                    "--batch", "2"])
