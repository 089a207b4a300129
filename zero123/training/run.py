"""``run_training(config, overrides)``: the Zero123 branch of ``train.py``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch

from data.trainer import build_trainer as trainer_for
from data.config import load_config, save_config
from data.datasets.rendered import Zero123PairsDataset, require_dataset_root
from zero123.training.config import Zero123TrainConfig
from zero123.training.data import Zero123DataModule
from zero123.training.init import initial_model, scale_latents_by_std
from zero123.training.lit_module import Zero123LitModule


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Zero123TrainConfig:
    cfg = load_config(Zero123TrainConfig, *([path] if path else []), overrides=list(overrides))
    if cfg.data.layout != "zero123":
        from data.config import ConfigError

        raise ConfigError(f"data.layout must be 'zero123' for Zero123 training, got '{cfg.data.layout}'")
    return cfg


def calibration_images(cfg: Zero123TrainConfig, count: int = 16) -> torch.Tensor:
    """(N,3,S,S) target images of the first ``count`` training objects (fixed pairs: same on every rank/resume)."""
    pairs = Zero123PairsDataset(cfg.data.root, cfg.data.train_list or None, cfg.data.image_size, seed=cfg.seed)
    return torch.stack([pairs[i]["target_image"] for i in range(min(count, len(pairs)))])


def build_trainer(cfg: Zero123TrainConfig, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    return trainer_for(cfg.trainer, cfg.output_dir, callbacks)


def run_training(
    config: str | Path | None, overrides: Sequence[str] = (), callbacks: Sequence[pl.Callback] = ()
) -> dict:
    """Fine-tune Zero123 as configured; returns a summary (also written to ``output_dir/summary.json``).

    At the end, rank 0 exports the EMA weights (raw if EMA is off) as a ``Zero123Pipeline`` folder in
    ``output_dir/final``.
    """
    cfg = load_train_config(config, overrides)
    require_dataset_root(cfg.data.root, "zero123")  # before building the model: a clear error, not a traceback
    pl.seed_everything(cfg.seed, workers=True)
    model_cfg, model = initial_model(cfg.init, cfg.model_config)
    if cfg.init.scale_by_std:
        scale_latents_by_std(model, calibration_images(cfg))
    module = Zero123LitModule(model, cfg)
    data = Zero123DataModule(cfg.data, cfg.holdout_views, seed=cfg.seed)
    trainer = build_trainer(cfg, callbacks)
    out = Path(cfg.output_dir)
    if trainer.is_global_zero:
        save_config(cfg, out / "train_config.yaml")
    trainer.fit(module, datamodule=data, ckpt_path=cfg.resume or None)
    summary = {"global_step": trainer.global_step, "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()}}
    if trainer.is_global_zero:
        from zero123.pipeline import Zero123Pipeline

        final = type(model)(model_cfg.model)
        final.load_state_dict(model.state_dict())
        final.unet.load_state_dict(module.unet_state(use_ema=True))
        Zero123Pipeline(final, model_cfg).save_pretrained(out / "final")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["run_training", "load_train_config"]
