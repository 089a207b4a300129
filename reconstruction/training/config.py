"""Typed configuration of reconstruction training (``configs/train/reconstruction.yaml``).

Load with ``data.config.load_config(TrainReconstructionConfig, path, overrides=[...])``; unknown keys fail.
Defaults are the official recipe (spec sections 10-11).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reconstruction.config import ReconstructionConfig


@dataclass
class TrainDataConfig:
    """Where the training objects come from.

    Attributes:
        layout: ``"official"`` (``zero12345_narrow`` + pose/split JSON, spec 11.1) or ``"renders"`` (this
            project's rendered reconstruction dataset, see ``scripts/render_dataset.py``).
        root: dataset folder.
        train_split, val_split: official: keys of ``lvis_split_cc_by.json``; renders: split list files (one
            object id per line, absolute or relative to ``root``), ``""``/null = every object (train) / no validation.
        num_main_views: ground-truth main views per object (8; a sample's reference and target are among them).
        image_size: square size the images are resized to (official 256); intrinsics follow.
        gt_source_probability: per sample, probability of ground-truth source views instead of Zero123's
            predictions (official: 0 = predicted sources, ground-truth targets).
        num_workers: DataLoader workers.
        cache: keep decoded objects in memory (small datasets only).
        val_objects: number of validation objects rendered / meshed at each validation.
        source_views: indices (official order ``k_j`` -> ``4 k + j``) of the source views used; empty = all 32.
            Reduced CPU configs use a subset; the official recipe uses all 32.
    """

    layout: str = "official"
    root: str = ""
    train_split: str | None = "train"
    val_split: str | None = "val"
    num_main_views: int = 8
    image_size: int = 256
    gt_source_probability: float = 0.0
    num_workers: int = 2
    cache: bool = False
    val_objects: int = 1
    source_views: list[int] = field(default_factory=list)


@dataclass
class RenderTrainConfig:
    """NeuS rendering during training (spec section 10).

    Attributes:
        num_uniform_rays, num_foreground_rays: rays per object per step (official 128 + 384).
        n_samples: coarse samples per ray (64); n_importance: up-sampled samples (64, over ``up_sample_steps``).
        up_sample_steps: rounds of up-sampling (4; inv_s = 64 * 2^i).
        perturb: jitter the coarse samples inside their bins (1.0 = on).
        random_points: uniform random points of [-1, 1]^3 for the sparsity term (1024).
        ray_chunk: rays per renderer call (bounds memory; no batch-statistics layer is involved).
        anneal_end: steps of the cos-annealing ramp (25 000).
    """

    num_uniform_rays: int = 128
    num_foreground_rays: int = 384
    n_samples: int = 64
    n_importance: int = 64
    up_sample_steps: int = 4
    perturb: float = 1.0
    random_points: int = 1024
    ray_chunk: int = 512
    anneal_end: int = 25_000


@dataclass
class LossConfig:
    """Loss weights and their schedules (spec section 11.4)."""

    color_weight: float = 1.0
    eikonal_weight: float = 0.1
    sparsity_weight: float = 0.02
    sparsity_ramp_steps: int = 50_000
    sparsity_scale: float = 100.0
    fg_mask_weight: float = 0.1
    fg_mask_start_step: int = 50_000
    fg_mask_min_background_fraction: float = 0.02
    depth_weight: float = 0.0


@dataclass
class OptimConfig:
    """Adam with the per-iteration cosine-to-floor schedule (spec section 11.5).

    Attributes:
        end_step: T of the cosine; ``round_end_to_epochs`` rounds it up to whole epochs like the official runner.
        variance_lr_scale: learning-rate multiplier of NeuS's variance parameter (official 1.0). Short runs raise
            it so the logistic density sharpens within the run (its inv_s otherwise grows over ~1e5 steps).
        sdf_mlp_lr_scale: learning-rate multiplier of the SDF decoder MLP (``sdf_network_lod0.sdf_layer``;
            official 1.0). Short runs give the image/volume networks a higher rate than the geometrically
            initialised decoder, whose sphere a large step destroys.
    """

    lr: float = 2e-4
    lr_floor: float = 0.1
    end_step: int = 200_000
    round_end_to_epochs: bool = True
    grad_clip: float = 1.0
    variance_lr_scale: float = 1.0
    sdf_mlp_lr_scale: float = 1.0


@dataclass
class InitConfig:
    """Initialisation of fresh networks (not used with ``trainer.init_official`` or when resuming).

    Attributes:
        variance: initial NeuS variance parameter v, inv_s = exp(10 v) (official 0.2: inv_s 7.4).
        latent_weight_std: std of the SDF decoder's weights on its 16 volume-latent inputs (official geometric
            init: 0, so the cost volume only starts to shape the SDF once those weights have grown).
    """

    variance: float = 0.2
    latent_weight_std: float = 0.0


@dataclass
class TrainerConfig:
    """Lightning trainer settings.

    Attributes:
        max_steps: optimisation steps (official checkpoint: 215 000).
        max_time: optional wall-clock limit ``"DD:HH:MM:SS"`` (training stops early, e.g. on shared CPUs).
        accelerator, devices, strategy, precision: passed to ``lightning.Trainer`` (``ddp`` uses gloo on CPU).
        output_dir: checkpoints (``checkpoints/``), logs (``tensorboard/``, ``csv/``), validation renders/meshes.
        ckpt_every: steps between checkpoints (official 5 000); ``val_every``: steps between validation renders
            and meshes (official 1 600).
        val_mesh_resolution: marching-cubes grid of the validation meshes.
        val_render_size: validation images are rendered at this size (square), 0 = the data's image size.
        log_every: steps between logged scalars.
        resume: a checkpoint of this trainer (``last.ckpt``) to resume exactly (optimizer, schedule, step).
        init_official: an official ``ckpt_XXXXXX.pth`` to initialise the networks from (weights only).
        seed: global seed.
    """

    max_steps: int = 215_000
    max_time: str | None = None
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    output_dir: str = "outputs/train/reconstruction"
    ckpt_every: int = 5_000
    val_every: int = 1_600
    val_mesh_resolution: int = 128
    val_render_size: int = 0
    log_every: int = 50
    resume: str | None = None
    init_official: str | None = None
    seed: int = 0


@dataclass
class TrainReconstructionConfig:
    """Everything ``train.py`` needs for the reconstruction module."""

    task: str = "reconstruction"
    model: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    data: TrainDataConfig = field(default_factory=TrainDataConfig)
    render: RenderTrainConfig = field(default_factory=RenderTrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init: InitConfig = field(default_factory=InitConfig)
