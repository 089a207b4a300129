"""Typed config of a Zero123 fine-tuning run (``configs/train/zero123.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from data.datasets.datamodule import RenderedDataConfig
from data.trainer import TrainerConfig


@dataclass
class InitConfig:
    """Where the weights start.

    ``kind``: ``"random"`` (model config's geometry, random weights), ``"zero123"`` (any weights
    ``Zero123Pipeline.from_pretrained`` reads: official .ckpt, diffusers folder, our folder) or ``"sd_unet"``
    (an SD-1.x diffusers folder such as ``lambdalabs/sd-image-variations-diffusers``: its 4-channel UNet is
    widened to 8 input channels with zero-initialised new channels; its ``vae`` / ``image_encoder`` are used when
    present).
    """

    kind: str = "random"
    path: str = ""
    ema: Optional[bool] = None
    #: ``kind: random`` only. A freshly initialised VAE has posterior std ~1 (log-variance ~0), so ~98 % of a
    #: target latent's variance is sampling noise that no conditioning can predict and the model learns to
    #: ignore the input view and pose. True fixes the posterior log-variance at -30 (near-deterministic, as in
    #: a trained VAE) so smoke runs can measure conditioning use.
    sharp_random_vae: bool = False
    #: ``kind: random`` only: LDM's ``scale_by_std``, i.e. ``scale_factor = 1 / std`` of the posterior means of
    #: up to 16 training images (0.18215 is SD's VAE value; a random VAE's latents need another scale).
    scale_by_std: bool = False


@dataclass
class OptimConfig:
    """Official recipe: AdamW (weight decay 0.01), 1e-4, 10x on the pose projection, 100 linear warm-up steps."""

    lr: float = 1.0e-4
    projection_lr_multiplier: float = 10.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    warmup_start_factor: float = 1.0e-6


@dataclass
class Zero123TrainConfig:
    """Everything a run needs. ``task`` selects the trainer in ``train.py``."""

    task: str = "zero123"
    model_config: str = "configs/zero123/zero123_xl.yaml"
    init: InitConfig = field(default_factory=InitConfig)
    data: RenderedDataConfig = field(default_factory=RenderedDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    #: Classifier-free-guidance dropout probability of each of the three official cases (5 % / 5 % / 5 %).
    cond_dropout: float = 0.05
    ema_decay: float = 0.9999
    use_ema: bool = True
    #: View indices kept out of training; validation targets are drawn from them (empty = no hold-out).
    holdout_views: list[int] = field(default_factory=list)
    #: Validation scores each held-out pair at this many (timestep, noise) draws, true vs shuffled poses.
    val_repeats: int = 8
    seed: int = 42
    output_dir: str = "runs/zero123"
    resume: str = ""
