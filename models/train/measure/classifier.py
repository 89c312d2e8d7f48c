"""The attribute classifier: a per-frame 2-D conv net, a temporal conv over its features, and one
linear head per attribute, all per frame (so a cut or a vanishing subject shows up in time).

Each frame enters with its difference to the previous frame (and, as configured, to frames further
back): motion and camera movement are then visible to the 2-D part directly, and the temporal convs
only have to integrate.
The per-frame features after the temporal convs are the "penultimate" features the Fréchet
distance uses (averaged over a clip's frames).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from train_io import has_checkpoint, load_checkpoint, save_checkpoint

from .attributes import ATTRS
from .camera_track import CameraTrack
from .colour_track import ColourTrack
from .motion_track import MotionTrack
from .motion_probe import motion_probe, probe_dim


# The attributes that can have a track: a branch over the 2-D maps whose logits add to the head's.
TRACKED = ("camera", "colour", "motion")


@dataclass
class ClassifierConfig:
    video_height: int = 144  # the video size it is trained for (the generator's output size);
    video_width: int = 256  # styles are drawn in pixels, so render at this size, then resize
    input_height: int = 72  # working resolution inside the net
    input_width: int = 128
    channels: int = 32
    features: int = 256
    # Differences to frame t - k for each k, as extra input channels: a slow camera move that is a
    # fraction of a pixel per frame is k times larger at stride k (python -m world.camera_report).
    diff_strides: list = field(default_factory=lambda: [1])
    # One residual temporal conv per entry, with that dilation: [1, 1] reaches 9 frames,
    # [1, 2, 4, 8] reaches 61.
    temporal_dilations: list = field(default_factory=lambda: [1, 1])
    # Beside the whole-frame mean and max, the 2-D features are averaged over a pool_grid x
    # pool_grid grid of regions (1: no grid). A zoom moves the two halves of the frame in opposite
    # directions, which a whole-frame average of direction-sensitive features cancels out, and what
    # tells a pan from a follow is where the subject is on screen, which no whole-frame pool keeps.
    # The whole-frame pools stay so that a trained classifier can grow a grid (grow_classifier).
    pool_grid: int = 1
    # measure/motion_probe.py: block-matching errors of candidate camera moves per frame, added to
    # the per-frame features through one linear layer.
    motion_probe: bool = False
    # measure/camera_track.py: a long-reach branch over the 2-D features' spatial map whose logits
    # add to the camera head's, one temporal conv per dilation ([]: no branch).
    camera_track: list = field(default_factory=list)
    # measure/colour_track.py: an attention pool over the same map whose logits add to the colour
    # head's (False: no branch).
    colour_track: bool = False
    # measure/motion_track.py: the subject's attended features and place on screen through temporal
    # convs, one per dilation, whose logits add to the motion head's ([]: no branch).
    motion_track: list = field(default_factory=list)

    @staticmethod
    def toy() -> "ClassifierConfig":
        """For the parity-tiny model's 48x32 video: seconds of CPU per step, not minutes."""
        return ClassifierConfig(video_height=32, video_width=48, input_height=32, input_width=48,
                                channels=8, features=32)


def pooled_regions(pool_grid: int) -> int:
    """How many pooled vectors of the 2-D features each frame gives: the whole-frame mean and max,
    and the grid's regions."""
    return 2 + (pool_grid ** 2 if pool_grid > 1 else 0)


def map_size(cfg: ClassifierConfig) -> tuple[int, int]:
    """The 2-D part's output size: four stride-2 convs with padding 1."""
    h, w = cfg.input_height, cfg.input_width
    for _ in range(4):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout // 4), cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(min(8, cout // 4), cout), nn.SiLU())


class TemporalBlock(nn.Module):
    def __init__(self, dim: int, kernel: int = 5, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.norm = nn.GroupNorm(min(8, dim // 4), dim)

    def forward(self, x):  # [B, D, T]
        return x + F.silu(self.norm(self.conv(x)))


class AttributeClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig, attrs: dict[str, list[str]] = ATTRS):
        super().__init__()
        self.cfg, self.attrs = cfg, {a: list(v) for a, v in attrs.items()}
        c = cfg.channels
        self.frames = nn.Sequential(_block(3 * (1 + len(cfg.diff_strides)), c, 2), _block(c, 2 * c, 2), _block(2 * c, 4 * c, 2),
                                    _block(4 * c, 4 * c, 2))
        # average and max pooling: a small subject's colour survives the max, the scene the mean
        self.proj = nn.Linear(4 * c * pooled_regions(cfg.pool_grid), cfg.features)
        if cfg.motion_probe:
            self.motion = nn.Linear(probe_dim(), cfg.features)
        self.temporal = nn.Sequential(*[TemporalBlock(cfg.features, dilation=d) for d in cfg.temporal_dilations])
        self.heads = nn.ModuleDict({a: nn.Linear(cfg.features, len(v)) for a, v in self.attrs.items()})
        if cfg.camera_track:
            h, w = map_size(cfg)
            self.camera_track = CameraTrack(4 * c, h * w, len(self.attrs["camera"]), cfg.camera_track)
        if cfg.colour_track:
            self.colour_track = ColourTrack(4 * c, len(self.attrs["colour"]))
        if cfg.motion_track:
            self.motion_track = MotionTrack(4 * c, map_size(cfg), len(self.attrs["motion"]), cfg.motion_track)

    def _input(self, video: torch.Tensor) -> torch.Tensor:
        B, T, _, H, W = video.shape
        x = video.flatten(0, 1)
        if (H, W) != (self.cfg.input_height, self.cfg.input_width):
            x = F.interpolate(x, (self.cfg.input_height, self.cfg.input_width), mode="bilinear",
                              antialias=True, align_corners=False)
        x = x.view(B, T, 3, *x.shape[-2:]) * 2 - 1
        diffs = []
        for k in self.cfg.diff_strides:
            k = min(k, T)  # a clip shorter than the stride has no frame that far back
            diffs.append(2 * torch.cat([torch.zeros_like(x[:, :k]), x[:, k:] - x[:, :-k]], dim=1))
        return torch.cat([x, *diffs], dim=2)

    def features(self, video: torch.Tensor, frame_batch: int = 512) -> torch.Tensor:
        """video [B, T, 3, H, W] in [0, 1] -> per-frame features [B, T, D]. Frames go through
        the 2-D part `frame_batch` at a time, so a 15 s clip needs no more memory than a short one."""
        return self.features_and_maps(video, frame_batch)[0]

    def features_and_maps(self, video: torch.Tensor, frame_batch: int = 512, keep_maps: bool = False):
        """Per-frame features [B, T, D] and, with keep_maps, the 2-D part's maps [B, T, C, h, w]."""
        B, T = video.shape[:2]
        x = self._input(video).flatten(0, 1)
        parts, maps = [], []
        for s in range(0, x.shape[0], frame_batch):
            h = self.frames(x[s:s + frame_batch])
            if keep_maps:
                maps.append(h)
            pools = [h.mean((2, 3)), h.amax((2, 3))]
            if self.cfg.pool_grid > 1:
                pools.append(F.adaptive_avg_pool2d(h, self.cfg.pool_grid).flatten(1))
            parts.append(self.proj(torch.cat(pools, dim=1)))
        h = torch.cat(parts).view(B, T, -1)
        if self.cfg.motion_probe:
            h = h + self.motion(motion_probe(x.view(B, T, *x.shape[1:])[:, :, :3]))
        h = self.temporal(h.transpose(1, 2)).transpose(1, 2)
        return h, (torch.cat(maps).view(B, T, *maps[0].shape[1:]) if keep_maps else None)

    def head_logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {a: head(h) for a, head in self.heads.items()}

    def forward(self, video: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Per-frame logits {attribute: [B, T, classes]} and features [B, T, D]."""
        h, maps = self.features_and_maps(video, keep_maps=bool(self.tracks()))
        logits = self.head_logits(h)
        return self.add_tracks(logits, maps), h

    def tracks(self) -> dict[str, nn.Module]:
        """{attribute: its track} for the tracks this classifier has."""
        return {a: getattr(self, f"{a}_track") for a in TRACKED if getattr(self.cfg, f"{a}_track")}

    def add_tracks(self, logits: dict[str, torch.Tensor], maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads' logits with each track's added to its attribute's."""
        return {**logits, **{a: logits[a] + track(maps) for a, track in self.tracks().items()}}


def grow_classifier(trained: AttributeClassifier, cfg: ClassifierConfig) -> AttributeClassifier:
    """A classifier of config `cfg` that starts as `trained` does, output for output: the trained
    weights are copied and what `cfg` adds starts switched off, so training it further keeps what
    `trained` learnt and only has to learn what the additions are for. `cfg` may add frame
    differences (diff_strides extended at the end), temporal convs (temporal_dilations extended at
    the end), a pooling grid (from 1), the motion probe and the camera, colour and motion tracks
    (from none); the rest must match."""
    old = trained.cfg
    fixed = [k for k in ("video_height", "video_width", "input_height", "input_width", "channels", "features")
             if getattr(old, k) != getattr(cfg, k)]
    if fixed:
        raise ValueError("a grown classifier keeps " + ", ".join(f"{k}={getattr(old, k)}" for k in fixed))
    for k in ("diff_strides", "temporal_dilations"):
        a, b = list(getattr(old, k)), list(getattr(cfg, k))
        if b[:len(a)] != a:
            raise ValueError(f"{k} can only grow at the end: {a} is not where {b} starts")
    if old.pool_grid not in (1, cfg.pool_grid):
        raise ValueError(f"pool_grid can only grow from 1, not from {old.pool_grid} to {cfg.pool_grid}")
    if old.motion_probe and not cfg.motion_probe:
        raise ValueError("a grown classifier keeps the motion probe")
    for k in ("camera_track", "motion_track"):
        a, b = list(getattr(old, k)), list(getattr(cfg, k))
        if a not in ([], b):
            raise ValueError(f"{k} can only grow from none, not from {a} to {b}")
    if old.colour_track and not cfg.colour_track:
        raise ValueError("a grown classifier keeps the colour track")
    new = AttributeClassifier(cfg, trained.attrs).to(next(trained.parameters()).device)
    src = trained.state_dict()
    with torch.no_grad():
        for name, p in new.state_dict().items():
            if name not in src:
                continue
            q = src[name]
            if name == "frames.0.0.weight":  # the first conv: new difference channels read nothing
                p.zero_()
                p[:, :q.shape[1]] = q
            elif name == "proj.weight":  # the grid's regions come after the whole-frame pools
                p.zero_()
                p[:, :q.shape[1]] = q
            else:
                p.copy_(q)
        if cfg.motion_probe and not old.motion_probe:
            new.motion.weight.zero_()
            new.motion.bias.zero_()
        # A new temporal block is x + silu(norm(conv(x))): with the norm's scale at zero it adds
        # nothing, and its conv still gets a gradient once the scale moves.
        for block in new.temporal[len(old.temporal_dilations):]:
            block.norm.weight.zero_()
    return new


def save_classifier(folder: Path, model: AttributeClassifier, state: dict) -> None:
    """f32 safetensors (≈ 5 MB at the full size, one shard) + state.json via train_io."""
    save_checkpoint(folder, model.state_dict(), {**state, "config": dataclasses.asdict(model.cfg),
                                                 "attrs": model.attrs}, dtype=torch.float32)


def find_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or a run folder holding one under classifier/."""
    path = Path(path)
    for p in (path, path / "classifier"):
        if has_checkpoint(p):
            return p
    raise SystemExit(f"{path}: no classifier checkpoint (state.json) here or in classifier/")


def load_classifier(path: Path, device="cpu") -> tuple[AttributeClassifier, dict]:
    sd, state = load_checkpoint(find_checkpoint(path))
    model = AttributeClassifier(ClassifierConfig(**state["config"]), state["attrs"])
    model.load_state_dict(sd, strict=True)
    if model.attrs != {a: list(v) for a, v in ATTRS.items()}:
        # The world's vocabulary changed since training: labels would be read wrongly.
        raise SystemExit(f"{path}: trained for other attribute classes: "
                         f"{json.dumps(model.attrs)[:200]}…; retrain the classifier")
    return model.to(device).eval(), state
