"""Typed configuration of the Zero123 model and its sampler (YAML under ``configs/zero123/``).

The defaults describe the official full-size model (SD-1 UNet with 8 input channels, KL-f8 VAE, OpenAI CLIP
ViT-L/14 image tower, Linear(772 -> 768) pose projection) and the sampler One-2-3-45 uses (DDIM, eta 1,
guidance 3, "75 steps"). ``configs/zero123/tiny.yaml`` shrinks every width for tests and CPU smoke runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from data.config import ConfigError, load_config

#: Schedulers understood by :mod:`zero123.sampling`.
SCHEDULERS = ("ddim", "dpmsolver++")


@dataclass
class UNetConfig:
    """diffusers ``UNet2DConditionModel`` geometry. ``attention_head_dim`` carries the number of heads (legacy)."""

    block_out_channels: list[int] = field(default_factory=lambda: [320, 640, 1280, 1280])
    down_block_types: list[str] = field(
        default_factory=lambda: ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    )
    up_block_types: list[str] = field(default_factory=lambda: ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
    layers_per_block: int = 2
    attention_head_dim: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    sample_size: int = 32
    in_channels: int = 8
    out_channels: int = 4

    def to_diffusers(self) -> dict[str, Any]:
        """Keyword arguments of ``UNet2DConditionModel`` (official Zero123 conversion settings)."""
        return dict(
            sample_size=self.sample_size,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            down_block_types=tuple(self.down_block_types),
            up_block_types=tuple(self.up_block_types),
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            attention_head_dim=self.attention_head_dim,
            cross_attention_dim=self.cross_attention_dim,
            norm_num_groups=self.norm_num_groups,
            use_linear_projection=False,
            flip_sin_to_cos=True,
            freq_shift=0,
        )


@dataclass
class VAEConfig:
    """diffusers ``AutoencoderKL`` geometry (KL-f8 of SD-1 by default)."""

    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 512, 512])
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 256

    def to_diffusers(self) -> dict[str, Any]:
        n = len(self.block_out_channels)
        return dict(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups,
            sample_size=self.sample_size,
            scaling_factor=0.18215,
        )


@dataclass
class ImageEncoderConfig:
    """transformers ``CLIPVisionConfig`` of the frozen CLIP image tower (ViT-L/14 by default)."""

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    projection_dim: int = 768

    def to_transformers(self) -> dict[str, Any]:
        return dict(
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            projection_dim=self.projection_dim,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            num_channels=3,
        )


@dataclass
class ModelConfig:
    """The whole Zero123 model: three networks, the pose projection and the training noise schedule."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    #: Latent scale applied to target latents (the concat latent is NOT scaled).
    scale_factor: float = 0.18215
    num_train_timesteps: int = 1000
    #: LDM "linear" schedule = linspace in sqrt space, squared (diffusers "scaled_linear").
    beta_start: float = 0.00085
    beta_end: float = 0.012
    #: Size of the 4 pose numbers appended to the CLIP embedding.
    pose_dim: int = 4


@dataclass
class SamplingConfig:
    """Sampler defaults (each can be overridden per ``generate`` call).

    ``scheduler``: ``"ddim"`` = the official LDM DDIM sampler (uniform grid, highest entry dropped, so
    "75" runs 76 steps); ``"dpmsolver++"`` = diffusers' multistep DPM-Solver++ (2nd order), much fewer steps.
    """

    scheduler: str = "ddim"
    num_inference_steps: int = 75
    guidance_scale: float = 3.0
    eta: float = 1.0
    #: Largest number of target views denoised in one UNet call (CFG doubles the UNet batch).
    max_batch_size: int = 8
    #: On CUDA: cap the batch so the estimated activation memory stays below this many GB (None = free memory).
    memory_budget_gb: Optional[float] = None


@dataclass
class Zero123Config:
    """Model geometry + sampler defaults. Load with :func:`load_zero123_config`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def validate(self) -> "Zero123Config":
        s = self.sampling
        if s.scheduler not in SCHEDULERS:
            raise ConfigError(f"sampling.scheduler must be one of {SCHEDULERS}, got '{s.scheduler}'")
        if s.num_inference_steps < 1:
            raise ConfigError(f"sampling.num_inference_steps must be >= 1, got {s.num_inference_steps}")
        if s.max_batch_size < 1:
            raise ConfigError(f"sampling.max_batch_size must be >= 1, got {s.max_batch_size}")
        u = self.model.unet
        if len(u.down_block_types) != len(u.block_out_channels) or len(u.up_block_types) != len(u.block_out_channels):
            raise ConfigError("model.unet: down/up_block_types must have one entry per block_out_channels entry")
        if u.in_channels != 2 * self.model.vae.latent_channels:
            raise ConfigError(
                f"model.unet.in_channels ({u.in_channels}) must be twice model.vae.latent_channels "
                f"({self.model.vae.latent_channels}): noisy target latent + conditioning latent"
            )
        return self


def load_zero123_config(*sources: str | Path | dict, overrides: tuple[str, ...] | list[str] = ()) -> Zero123Config:
    """Typed config from YAML files / dicts (unknown keys fail), validated."""
    return load_config(Zero123Config, *sources, overrides=overrides).validate()
