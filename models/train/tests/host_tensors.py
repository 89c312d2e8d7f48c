"""A CPU stand-in for the one class of bug that only a GPU shows: a tensor made on the host (a
factory call without `device=`, `.cpu()`, `from_numpy`) meeting a tensor on the accelerator in
one operation. CUDA refuses that ("Expected all tensors to be on the same device"); on this
CPU-only machine both are CPU tensors and the code runs, so the bug would first show in a lent GPU
session, which is rare and short.

Inside `host_tensors()` such tensors become `HostTensor`s. An operation that mixes a HostTensor
of one or more dimensions with any other tensor raises `DeviceMix`, as CUDA would; results of
host-only operations stay HostTensors; `.to(...)`/`.cuda()` move one to the "accelerator" (a plain
tensor). CUDA's exceptions are kept: a 0-dim host tensor mixes freely, indexing an accelerator
tensor with host indices works, and copies (`copy_`, item assignment) cross devices. A random
draw whose `generator=` lives on the other side from the tensor it makes or fills (a
`torch.Generator()` drawing with `device=`, or one made with a device drawing on the host) raises
too, as CUDA does; generators made before the context are not judged.
`watch_session_paths` applies the context to the step code of every GPU-session path, so that
only that is checked, not module construction (whose parameters are moved by `.to(device)`,
which a CPU cannot tell from staying). As a command it runs train.py under that check, at any
scale:  python tests/host_tensors.py autoencoder --run /tmp/x --steps 2 --batch 1 --frames 8"""
from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map

FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace, torch.logspace,
             torch.eye, torch.rand, torch.randn, torch.randint, torch.randperm, torch.tensor, torch.as_tensor,
             torch.scalar_tensor}
CROSSING = {"copy_", "__setitem__", "__getitem__", "index_select", "__repr__", "__format__", "tolist", "item",
            "numpy", "__len__", "__bool__", "__float__", "__int__", "__index__", "dim", "size", "numel", "shape",
            "dtype", "device", "__get__", "is_floating_point", "data_ptr", "element_size", "stride"}


BORN = 0  # tensors made on the host inside the context so far: a test can show the check ran


class DeviceMix(RuntimeError):
    pass


def _name(func) -> str:
    return getattr(func, "__name__", "") or str(func)


def _to_host(target) -> bool | None:
    """Where `.to(target)` or `device=target` puts a tensor: True for the host (a host tensor's
    place, or "cpu" spelled as a string), False for the accelerator (a tensor there, or any
    torch.device: code names the accelerator by a trainer's `device` or by `x.device`, which on
    this machine are CPU devices too), None for no device (a dtype, say)."""
    if isinstance(target, torch.Tensor):
        return isinstance(target, HostTensor)
    if isinstance(target, str):
        return torch.device(target).type == "cpu"
    if isinstance(target, torch.device):
        return False
    return None


def _plain(x):
    return x.as_subclass(torch.Tensor) if isinstance(x, HostTensor) else x


def _host(x):
    return x.as_subclass(HostTensor) if type(x) is torch.Tensor else x


class HostTensor(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if name in ("to", "cuda"):
            where = [w for a in list(args[1:]) + [kwargs.get("device"), kwargs.get("other")]
                     if (w := _to_host(a)) is not None]
            to_host = where[0] if where else (name != "cuda" and isinstance(args[0], HostTensor))
            return tree_map(_host if to_host else _plain, out)
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        host = [t for t in tensors if isinstance(t, HostTensor)]
        accel = [t for t in tensors if not isinstance(t, HostTensor)]
        if name in CROSSING or not host:
            return tree_map(_host, out) if tensors and not accel and name not in ("copy_", "__setitem__") else out
        if accel and any(t.dim() > 0 for t in host):
            shapes = [tuple(t.shape) for t in host if t.dim() > 0]
            raise DeviceMix(f"{name}: host tensor(s) of shape {shapes} meet accelerator tensor(s) of shape "
                            f"{[tuple(t.shape) for t in accel]}; CUDA refuses this (make it with device=)")
        return out if accel else tree_map(_host, out)


class TrackedGenerator(torch.Generator):
    """What `torch.Generator(...)` makes inside the context: a generator that remembers whether it
    was made for the host (no device, or "cpu" spelled out) or for the accelerator."""

    def __init__(self, device=None):
        self.on_host = _to_host(device) is not False


def _check_generator(name, args, kwargs):
    gen = kwargs.get("generator")
    if not isinstance(gen, TrackedGenerator):
        return
    tensors = [t for t in tree_leaves(args) if isinstance(t, torch.Tensor)]
    out_on_host = isinstance(tensors[0], HostTensor) if tensors else _to_host(kwargs.get("device")) is not False
    if gen.on_host != out_on_host:
        where = {True: "the host", False: "the accelerator"}
        raise DeviceMix(f"{name}: a generator made for {where[gen.on_host]} draws a tensor on "
                        f"{where[out_on_host]}; CUDA refuses this (make the generator with the tensor's device)")


class _HostFactories(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        born_on_host = (func in FACTORIES and _to_host(kwargs.get("device")) is not False
                        and not (args and isinstance(args[0], torch.Tensor)))
        _check_generator(name, args, kwargs)
        out = func(*args, **kwargs)
        moved_home = name == "to" and any(_to_host(a) for a in list(args[1:]) + [kwargs.get("device")])
        if born_on_host or name == "cpu" or moved_home:
            global BORN
            BORN += 1
            return tree_map(_host, out)
        return out


@contextlib.contextmanager
def host_tensors():
    from_numpy = torch.from_numpy  # torch function modes do not see it

    def host_from_numpy(a):
        global BORN
        BORN += 1
        return from_numpy(a).as_subclass(HostTensor)
    generator = torch.Generator
    torch.from_numpy, torch.Generator = host_from_numpy, TrackedGenerator
    try:
        with _HostFactories():
            yield
    finally:
        torch.from_numpy, torch.Generator = from_numpy, generator


def on_host_tensors(monkeypatch, obj, names):
    """Run each of `obj`'s functions `names` inside `host_tensors()` (undone with monkeypatch)."""
    for n in names:
        fn = getattr(obj, n)

        @functools.wraps(fn)
        def wrapped(*a, _fn=fn, **k):
            with host_tensors():
                return _fn(*a, **k)
        monkeypatch.setattr(obj, n, wrapped)


def watch_session_paths(monkeypatch):
    """The step code of every GPU-session path under host_tensors: the models' forwards, the
    renderer and the stages' per-step functions, wherever they are imported. And in bf16 autocast,
    as on the GPU (the CPU's list of autocast ops is close to CUDA's), so that a bf16 result
    meeting an f32 one where autocast does not reach shows here too."""
    import evaluate
    import throughput
    import train
    import train_classifier
    from kinema.model import DiT, Decoder, Encoder, TextEncoder
    from measure import dit_error, generate, round_trip
    from measure.classifier import AttributeClassifier
    for cls in (Encoder, Decoder, DiT, TextEncoder, AttributeClassifier):
        on_host_tensors(monkeypatch, cls, ["forward"])
    on_host_tensors(monkeypatch, train.Trainer, ["loss_autoencoder", "loss_flow", "loss_shortcut", "stage_input",
                                                 "text_gap", "calibration_video"])
    on_host_tensors(monkeypatch, train.TextCache, ["__call__"])
    on_host_tensors(monkeypatch, train, ["draw", "normalise_latents_", "autoencoder_loss"])
    on_host_tensors(monkeypatch, throughput, ["draw", "autoencoder_loss", "losses_and_accuracy"])
    on_host_tensors(monkeypatch, train_classifier, ["batch", "losses_and_accuracy"])
    on_host_tensors(monkeypatch, evaluate, ["render_clips", "read_clips"])
    on_host_tensors(monkeypatch, generate, ["generate"])
    on_host_tensors(monkeypatch, round_trip, ["round_trip"])
    on_host_tensors(monkeypatch, dit_error, ["x0_estimate", "linear_estimate", "encode", "decode", "subject_hits",
                                             "fine_detail_power", "noise_above"])
    monkeypatch.setattr(train.Trainer, "autocast", lambda self: torch.autocast("cpu", dtype=torch.bfloat16))
    monkeypatch.setattr(throughput, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))


if __name__ == "__main__":
    import pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import train
    with pytest.MonkeyPatch.context() as mp:
        watch_session_paths(mp)
        train.main(sys.argv[1:])
    print(f"device placement: {BORN} tensors were made on the host inside the checked steps; none met a device tensor")
