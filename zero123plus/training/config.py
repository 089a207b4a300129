"""Typed config of a Zero123++ fine-tuning run (``configs/train/zero123plus*.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from data.trainer import TrainerConfig


@dataclass
class InitConfig:
    """Where the weights start: ``random`` (the model config's geometry) or ``pretrained`` (a hub-layout folder /
    hub id / registry name in ``path``, optionally with a replacement ``unet`` file such as InstantMesh's)."""

    kind: str = "pretrained"
    path: str = "zero123plus_v12"
    unet: str = ""


@dataclass
class DataConfig:
    """A ``zero123plus``-layout dataset (``scripts/render_dataset.py --layout zero123plus``).

    ``tile_size`` must match the rendered tiles (and ``model_config``'s grid: height = 3 tiles, width = 2).
    ``cond_resize``: InstantMesh's augmentation, the conditioning view resized (bicubic) to a random side in
    [min, max] before the VAE / CLIP processors (``[]`` = off; validation items use a fixed draw).
    """

    root: str = ""
    train_list: str = ""
    val_list: str = ""
    batch_size: int = 2
    num_workers: int = 0
    tile_size: int = 320
    cond_resize: list[int] = field(default_factory=lambda: [128, 512])


@dataclass
class OptimConfig:
    """AdamW on the UNet (InstantMesh fine-tunes the whole UNet at 1e-5), optional linear warm-up, then constant.

    (InstantMesh's ``CosineAnnealingWarmRestarts(3000, eta_min=lr / 4)`` is stepped once per *epoch* by Lightning's
    default, i.e. practically constant over an Objaverse-size run.)
    """

    lr: float = 1.0e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    warmup_start_factor: float = 1.0e-6


@dataclass
class Zero123PlusTrainConfig:
    """Everything a run needs. ``task`` selects the trainer in ``train.py``."""

    task: str = "zero123plus"
    #: Zero123++ config (variant, preprocessing, and for ``init.kind: random`` the geometry).
    model_config: str = ""
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    #: Probability (per batch, as InstantMesh) of dropping the condition: empty-prompt context without the image
    #: term and the reference latent of an all-black image.
    cond_dropout: float = 0.1
    ema_decay: float = 0.9999
    use_ema: bool = True
    seed: int = 42
    output_dir: str = "runs/zero123plus"
    resume: str = ""
