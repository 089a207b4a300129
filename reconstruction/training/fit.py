"""Building and running a reconstruction training from a config (used by ``train.py`` and the benchmark).

``fit(cfg)`` wires readers -> sample datasets -> loaders, the LightningModule, checkpoints every
``trainer.ckpt_every`` steps (``last.ckpt`` for exact resume), validation renders/meshes every
``trainer.val_every`` steps, TensorBoard and CSV logs under ``trainer.output_dir``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from data.config import ConfigError, load_config, save_config
from data.datasets.one2345_official import One2345OfficialDataset
from data.datasets.seeded import ResumableDataLoader
from reconstruction.checkpoint import load_official_checkpoint
from reconstruction.model import ReconstructionModel
from reconstruction.training.config import TrainReconstructionConfig
from reconstruction.training.lit_module import ReconstructionLitModule
from reconstruction.training.samples import ObjectReader, TrainingSampleDataset

LAYOUTS = ("official", "renders")


def load_training_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainReconstructionConfig:
    """Typed config from a YAML file (or the defaults) plus ``key=value`` overrides; validates the values."""
    cfg = load_config(TrainReconstructionConfig, *([path] if path else []), overrides=overrides)
    if cfg.task != "reconstruction":
        raise ConfigError(f"task must be 'reconstruction' for this trainer, got {cfg.task!r}")
    if cfg.data.layout not in LAYOUTS:
        raise ConfigError(f"data.layout must be one of {LAYOUTS}, got {cfg.data.layout!r}")
    if cfg.data.image_size % 4:
        raise ConfigError(f"data.image_size must be divisible by 4 (feature pyramid), got {cfg.data.image_size}")
    if cfg.render.num_uniform_rays + cfg.render.num_foreground_rays < 1:
        raise ConfigError("render.num_uniform_rays + render.num_foreground_rays must be >= 1")
    cfg.model.validate()
    return cfg


def _split_list(root: Path, split: str | None) -> Path | None:
    """A rendered dataset's split: a list file (absolute or relative to the root); empty = every object."""
    if not split:
        return None
    for path in (Path(split), root / split):
        if path.is_file():
            return path
    raise ConfigError(f"split list '{split}' not found (looked for {split} and {root / split}); give a file with "
                      "one object id per line, or '' for every object")


def build_readers(cfg: TrainReconstructionConfig) -> tuple[ObjectReader, ObjectReader | None]:
    """Train and validation readers of ``cfg.data``: the official layout or our rendered datasets."""
    d = cfg.data
    if not d.root:
        raise ConfigError("data.root is empty: set it to the dataset folder (e.g. data.root=/data/one2345)")
    if d.layout == "official":
        return (One2345OfficialDataset(d.root, d.train_split, d.image_size),
                One2345OfficialDataset(d.root, d.val_split, d.image_size) if d.val_split else None)
    from data.datasets.rendered import RenderedReconstructionDataset, require_dataset_root

    root = require_dataset_root(d.root, "reconstruction")
    train = RenderedReconstructionDataset(root, _split_list(root, d.train_split), "auto", d.image_size)
    val = (RenderedReconstructionDataset(root, _split_list(root, d.val_split), "auto", d.image_size)
           if d.val_split else None)
    return train, val


def build_loaders(cfg: TrainReconstructionConfig, train_reader: ObjectReader, val_reader: ObjectReader | None):
    """Training loader: order and per-sample draws are functions of (``trainer.seed``, epoch, sample) and it
    resumes mid-epoch (:class:`~data.datasets.seeded.ResumableDataLoader`); validation: fixed samples."""
    d = cfg.data
    train_set = TrainingSampleDataset(train_reader, d.gt_source_probability, d.num_main_views, cache=d.cache,
                                      source_views=d.source_views)
    workers = d.num_workers
    train = ResumableDataLoader(train_set, 1, seed=cfg.trainer.seed, shuffle=True, num_workers=workers,
                                persistent_workers=workers > 0, drop_last=False)
    val = None
    if val_reader is not None and len(val_reader) > 0 and d.val_objects > 0:
        val_set = TrainingSampleDataset(val_reader, d.gt_source_probability, d.num_main_views, fixed_target=True,
                                        cache=d.cache, source_views=d.source_views, seed=cfg.trainer.seed)
        val = DataLoader(val_set, batch_size=1, shuffle=False, num_workers=0)
    return train, val


def fresh_model(cfg: TrainReconstructionConfig) -> ReconstructionModel:
    """Newly initialised networks (official init, then ``cfg.init``), seeded by the global RNG."""
    model = ReconstructionModel()
    init = cfg.init
    with torch.no_grad():
        model.variance_network_lod0.variance.fill_(init.variance)
        if init.latent_weight_std > 0:
            mlp = model.sdf_network_lod0.sdf_layer
            for lin in (mlp.lin1, mlp.lin2):
                lin.weight_v[:, -mlp.latent_channels:].normal_(0.0, init.latent_weight_std)
                lin.weight_g.copy_(lin.weight_v.norm(dim=1, keepdim=True))
    return model


def build_model(cfg: TrainReconstructionConfig) -> ReconstructionModel:
    """Fresh networks (:func:`fresh_model`), or the official checkpoint's when ``trainer.init_official`` is set."""
    if cfg.trainer.init_official:
        return load_official_checkpoint(cfg.trainer.init_official)
    return fresh_model(cfg)


def build_trainer(cfg: TrainReconstructionConfig, has_val: bool, callbacks: Sequence[pl.Callback] = ()
                  ) -> pl.Trainer:
    t = cfg.trainer
    out = Path(t.output_dir)
    loggers = [pl.loggers.CSVLogger(out, name="csv")]
    try:
        loggers.append(pl.loggers.TensorBoardLogger(out, name="tensorboard"))
    except ModuleNotFoundError:  # tensorboard is a dev extra
        pass
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="step{step:07d}",
                                        auto_insert_metric_name=False, every_n_train_steps=t.ckpt_every,
                                        save_top_k=-1, save_last=True)
    val_kwargs = {"check_val_every_n_epoch": None, "val_check_interval": t.val_every} if has_val else {
        "limit_val_batches": 0}
    return pl.Trainer(
        max_steps=t.max_steps, max_time=t.max_time, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, precision=t.precision, gradient_clip_val=cfg.optim.grad_clip, gradient_clip_algorithm="norm",
        log_every_n_steps=t.log_every, logger=loggers, callbacks=[ckpt, *callbacks], default_root_dir=out,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the SeededSampler of the training loader splits the data among ranks
        **val_kwargs,
    )


def fit(cfg: TrainReconstructionConfig, readers: tuple[ObjectReader, ObjectReader | None] | None = None,
        callbacks: Sequence[pl.Callback] = (), model: ReconstructionModel | None = None
        ) -> tuple[ReconstructionLitModule, pl.Trainer]:
    """Train (or resume with ``trainer.resume``) and return the module and the trainer.

    Args:
        readers: (train, validation) object readers; default: from ``cfg.data``.
        model: networks to train (default: :func:`build_model`).
    """
    pl.seed_everything(cfg.trainer.seed, workers=True)
    train_reader, val_reader = readers if readers is not None else build_readers(cfg)
    train_loader, val_loader = build_loaders(cfg, train_reader, val_reader)
    module = ReconstructionLitModule(cfg, steps_per_epoch=len(train_loader), model=model or build_model(cfg))
    trainer = build_trainer(cfg, val_loader is not None, callbacks)
    if trainer.global_rank == 0:
        save_config(cfg, Path(cfg.trainer.output_dir) / "config.yaml")
    if cfg.trainer.resume and not Path(cfg.trainer.resume).is_file():
        raise FileNotFoundError(f"trainer.resume: checkpoint not found: {cfg.trainer.resume}")
    trainer.fit(module, train_loader, val_loader, ckpt_path=cfg.trainer.resume)
    # a run stopped by max_time ends between periodic checkpoints: keep its final state resumable too
    trainer.save_checkpoint(Path(cfg.trainer.output_dir) / "checkpoints" / "last.ckpt")
    return module, trainer


def run_training(config_path: str | Path | None, overrides: Sequence[str] = ()) -> str:
    """``train.py`` entry for ``task: reconstruction``; returns a one-line summary.

    ``resume=<ckpt>`` (what ``train.py --resume`` passes) is accepted as ``trainer.resume``.
    """
    overrides = [f"trainer.{o}" if o.startswith("resume=") else o for o in overrides]
    cfg = load_training_config(config_path, overrides)
    torch.set_float32_matmul_precision("high")
    module, trainer = fit(cfg)
    ckpt_dir = Path(cfg.trainer.output_dir) / "checkpoints"
    return f"reconstruction: trained to step {trainer.global_step}; checkpoints in {ckpt_dir}"
