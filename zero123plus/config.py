"""Typed configuration of Zero123++ (YAML under ``configs/zero123plus/``, schema line 1).

Three variants (spec section 1), each a preset of this schema selected by ``variant``:

============  ====================  ==========  =================  ========  =====  ==========
variant       weights (registry)    poses       background         fg ratio  steps  spacing
============  ====================  ==========  =================  ========  =====  ==========
``v1.2``      ``zero123plus_v12``   v1.2 table  grey 127 (paste)   as given  28     trailing
``v1.1``      ``zero123plus_v11``   v1.1 table  grey 127 (paste)   as given  28     linspace
instantmesh   v1.2 + InstantMesh    v1.2 table  white 255          0.85      75     trailing
              UNet file
============  ====================  ==========  =================  ========  =====  ==========

Precedence: schema defaults < the variant's preset < config files (in order) < ``key=value`` overrides.
The ``model`` section only shapes *random* weights (:meth:`Zero123PlusPipeline.from_config`); pretrained folders
carry their own ``config.json`` per component. The defaults describe the real model (SD2 UNet, OpenCLIP ViT-H).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from data.config import ConfigError, load_config, read_yaml

VARIANTS = ("v1.2", "v1.1", "instantmesh")
SPACINGS = ("trailing", "linspace", "leading")

#: What each variant changes relative to the schema defaults (spec sections 1, 4 and 7).
VARIANT_PRESETS: dict[str, dict[str, Any]] = {
    "v1.2": {
        "weights": {"pipeline": "zero123plus_v12"},
        "preprocess": {"background": 127, "foreground_ratio": None},
        "sampling": {"num_inference_steps": 28, "timestep_spacing": "trailing"},
    },
    "v1.1": {
        "weights": {"pipeline": "zero123plus_v11"},
        "preprocess": {"background": 127, "foreground_ratio": None},
        "sampling": {"num_inference_steps": 28, "timestep_spacing": "linspace"},
    },
    "instantmesh": {
        "weights": {"pipeline": "zero123plus_v12", "unet": "instantmesh_unet"},
        "preprocess": {"background": 255, "foreground_ratio": 0.85},
        "sampling": {"num_inference_steps": 75, "timestep_spacing": "trailing"},
    },
}
#: Camera table of each variant (``data.layout.ZERO123PLUS_ELEVATION_DEG`` key).
POSE_SET = {"v1.2": "v1.2", "v1.1": "v1.1", "instantmesh": "v1.2"}


@dataclass
class UNetConfig:
    """diffusers ``UNet2DConditionModel`` geometry (SD 2.x, v-prediction). ``attention_head_dim`` = heads (legacy)."""

    block_out_channels: list[int] = field(default_factory=lambda: [320, 640, 1280, 1280])
    down_block_types: list[str] = field(default_factory=lambda: ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"])
    up_block_types: list[str] = field(default_factory=lambda: ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
    layers_per_block: int = 2
    attention_head_dim: list[int] = field(default_factory=lambda: [5, 10, 20, 20])
    cross_attention_dim: int = 1024
    norm_num_groups: int = 32
    sample_size: int = 96

    def to_diffusers(self) -> dict[str, Any]:
        return dict(
            sample_size=self.sample_size, in_channels=4, out_channels=4,
            down_block_types=tuple(self.down_block_types), up_block_types=tuple(self.up_block_types),
            block_out_channels=tuple(self.block_out_channels), layers_per_block=self.layers_per_block,
            attention_head_dim=list(self.attention_head_dim), cross_attention_dim=self.cross_attention_dim,
            norm_num_groups=self.norm_num_groups, use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0,
        )


@dataclass
class VAEConfig:
    """diffusers ``AutoencoderKL`` geometry (SD KL-f8)."""

    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 512, 512])
    layers_per_block: int = 2
    norm_num_groups: int = 32
    sample_size: int = 512

    def to_diffusers(self) -> dict[str, Any]:
        n = len(self.block_out_channels)
        return dict(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block, latent_channels=4, norm_num_groups=self.norm_num_groups,
            sample_size=self.sample_size, scaling_factor=0.18215,
        )


@dataclass
class TextEncoderConfig:
    """transformers ``CLIPTextConfig`` (OpenCLIP ViT-H text tower with SD2's 23 layers)."""

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 23
    num_attention_heads: int = 16
    vocab_size: int = 49408

    def to_transformers(self) -> dict[str, Any]:
        return dict(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            vocab_size=self.vocab_size, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
            projection_dim=self.hidden_size, bos_token_id=self.vocab_size - 2, eos_token_id=self.vocab_size - 1,
            pad_token_id=1,
        )


@dataclass
class VisionEncoderConfig:
    """transformers ``CLIPVisionConfig`` (OpenCLIP ViT-H/14, projection = the text hidden size)."""

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    projection_dim: int = 1024

    def to_transformers(self) -> dict[str, Any]:
        return dict(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            projection_dim=self.projection_dim, image_size=224, patch_size=14, hidden_act="gelu",
            layer_norm_eps=1e-5, num_channels=3,
        )


@dataclass
class ModelConfig:
    """Geometry of random-weight models (pretrained folders bring their own)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vision_encoder: VisionEncoderConfig = field(default_factory=VisionEncoderConfig)


@dataclass
class WeightsConfig:
    """Where pretrained weights come from: a registry name of ``data/weights.py``, a local path or ``hf://`` id.

    ``pipeline``: the hub-layout folder; ``unet``: a replacement UNet state-dict file (InstantMesh);
    ``controlnet``: a depth ControlNet folder (None = no ControlNet).
    """

    pipeline: Optional[str] = "zero123plus_v12"
    unet: Optional[str] = None
    controlnet: Optional[str] = None


@dataclass
class PreprocessConfig:
    """Input handling: RGBA composited onto ``background`` (0-255 grey level; 127 official, 255 InstantMesh);
    ``foreground_ratio`` (InstantMesh 0.85) re-frames the object's alpha box to that fraction of a square first
    (None = the image as given, the official pipeline)."""

    background: int = 127
    foreground_ratio: Optional[float] = None


@dataclass
class SamplingConfig:
    """Sampler defaults (each can be overridden per call). Euler-ancestral, v-prediction, linear betas."""

    num_inference_steps: int = 28
    guidance_scale: float = 4.0
    timestep_spacing: str = "trailing"
    #: Output grid size (px); 960x640 = 3x2 tiles of 320 (the trained size).
    height: int = 960
    width: int = 640
    #: Depth-ControlNet residual scale (README depth example: 0.75).
    controlnet_scale: float = 0.75


@dataclass
class Zero123PlusConfig:
    """A Zero123++ variant. Load with :func:`load_zero123plus_config`."""

    variant: str = "v1.2"
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    #: True for random-weight configs: outputs are meaningless (recorded with every result).
    random_weights: bool = False

    @property
    def pose_set(self) -> str:
        return POSE_SET[self.variant]

    def validate(self) -> "Zero123PlusConfig":
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got '{self.variant}'")
        s = self.sampling
        if s.timestep_spacing not in SPACINGS:
            raise ConfigError(f"sampling.timestep_spacing must be one of {SPACINGS}, got '{s.timestep_spacing}'")
        if s.num_inference_steps < 1:
            raise ConfigError(f"sampling.num_inference_steps must be >= 1, got {s.num_inference_steps}")
        if s.height % 24 or s.width % 16 or s.height <= 0 or s.width <= 0:
            raise ConfigError(
                f"sampling.height/width must be multiples of 24/16 (a 3x2 grid of tiles whose side is a multiple "
                f"of 8), got {s.height}x{s.width}"
            )
        if s.height // 3 != s.width // 2:
            raise ConfigError(f"sampling.height/width must form a 3x2 grid of square tiles, got {s.height}x{s.width}")
        p = self.preprocess
        if not 0 <= p.background <= 255:
            raise ConfigError(f"preprocess.background must be a grey level in 0..255, got {p.background}")
        if p.foreground_ratio is not None and not 0.0 < p.foreground_ratio <= 1.0:
            raise ConfigError(f"preprocess.foreground_ratio must be in (0, 1] or null, got {p.foreground_ratio}")
        u, m = self.model.unet, self.model
        if len(u.down_block_types) != len(u.block_out_channels) or len(u.up_block_types) != len(u.block_out_channels):
            raise ConfigError("model.unet: down/up_block_types must have one entry per block_out_channels entry")
        if len(u.attention_head_dim) != len(u.block_out_channels):
            raise ConfigError("model.unet.attention_head_dim must have one entry per block_out_channels entry")
        if not (u.cross_attention_dim == m.text_encoder.hidden_size == m.vision_encoder.projection_dim):
            raise ConfigError(
                "model: unet.cross_attention_dim, text_encoder.hidden_size and vision_encoder.projection_dim must be "
                f"equal (the image embedding is added to the text states), got {u.cross_attention_dim}, "
                f"{m.text_encoder.hidden_size}, {m.vision_encoder.projection_dim}"
            )
        return self


def _variant_of(sources, overrides) -> str:
    variant = Zero123PlusConfig.variant
    for src in sources:
        layer = src if isinstance(src, dict) else OmegaConf.to_container(read_yaml(src))
        variant = layer.get("variant", variant) if isinstance(layer, dict) else variant
    for item in overrides:
        key, eq, value = str(item).partition("=")
        if eq and key.strip() == "variant":
            variant = value.strip()
    if variant not in VARIANTS:
        raise ConfigError(f"unknown Zero123++ variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    return variant


def load_zero123plus_config(
    *sources: str | Path | dict, overrides: tuple[str, ...] | list[str] = (), variant: str | None = None
) -> Zero123PlusConfig:
    """Typed, validated config: defaults < variant preset < ``sources`` < ``overrides``.

    ``variant`` (e.g. from ``--variant``) wins over a ``variant:`` key in the sources.
    """
    if variant is not None:
        overrides = [*overrides, f"variant={variant}"]
    name = _variant_of(sources, overrides)
    return load_config(Zero123PlusConfig, VARIANT_PRESETS[name], *sources, overrides=overrides).validate()
