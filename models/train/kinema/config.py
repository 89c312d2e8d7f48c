"""Config dataclasses; their fields mirror the `architecture` object of manifest.json one to one,
so `KinemaConfig.from_json(manifest["architecture"])` and `.to_json()` round-trip exactly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class VideoConfig:
    width: int = 256
    height: int = 144
    fps: int = 16


@dataclass
class TextConfig:
    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    # Room for a whole caption, cuts included, within the 128 tokens MiniLM was trained on. At 32,
    # a third of the eval prompts and every cut clip's training caption lost their last attributes
    # (style, camera, the later shots). The first trained folder keeps its 32 in its manifest.
    max_text_tokens: int = 128


@dataclass
class DiTConfig:
    dim: int = 384
    depth: int = 10
    heads: int = 6
    patch: int = 2
    latent_channels: int = 16
    latent_height: int = 18
    latent_width: int = 32
    mlp_ratio: int = 4
    freq_dim: int = 256
    chunk_frames: int = 4
    window_chunks: int = 4
    rope_split: list = field(default_factory=lambda: [16, 24, 24])
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def tokens_per_frame(self) -> int:
        return (self.latent_height // self.patch) * (self.latent_width // self.patch)

    @property
    def tokens_per_chunk(self) -> int:
        return self.tokens_per_frame * self.chunk_frames


@dataclass
class DecoderConfig:
    widths: list = field(default_factory=lambda: [128, 64, 32, 32])
    latent_channels: int = 16


@dataclass
class KinemaConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    text: TextConfig = field(default_factory=TextConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def validate(self) -> "KinemaConfig":
        d = self.dit
        assert d.dim % d.heads == 0
        assert sum(d.rope_split) == d.head_dim and all(n % 2 == 0 for n in d.rope_split)
        assert d.latent_height % d.patch == 0 and d.latent_width % d.patch == 0
        assert self.decoder.latent_channels == d.latent_channels
        assert self.video.width == 8 * d.latent_width and self.video.height == 8 * d.latent_height
        assert self.text.hidden % self.text.heads == 0
        assert d.freq_dim % 2 == 0
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(obj: dict) -> "KinemaConfig":
        return KinemaConfig(
            video=VideoConfig(**obj["video"]),
            text=TextConfig(**obj["text"]),
            dit=DiTConfig(**obj["dit"]),
            decoder=DecoderConfig(**obj["decoder"]),
        ).validate()

    @staticmethod
    def kinema_tiny() -> "KinemaConfig":
        return KinemaConfig().validate()

    @staticmethod
    def parity_tiny() -> "KinemaConfig":
        """The shrunken config of models/fixtures/tiny (ARCHITECTURE.md, "Parity fixtures")."""
        return KinemaConfig(
            video=VideoConfig(width=48, height=32, fps=16),
            text=TextConfig(hidden=32, layers=2, heads=2, intermediate=64, max_text_tokens=32),
            dit=DiTConfig(dim=32, depth=2, heads=2, latent_channels=4, latent_height=4,
                          latent_width=6, freq_dim=32, chunk_frames=2, window_chunks=2,
                          rope_split=[4, 6, 6]),
            decoder=DecoderConfig(widths=[8, 8, 8, 8], latent_channels=4),
        ).validate()
