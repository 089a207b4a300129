"""``run_training(config, overrides)``: the Zero123++ branch of ``train.py``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl

from data.trainer import build_trainer as trainer_for
from data.config import ConfigError, load_config, save_config
from data.datasets.rendered import require_dataset_root
from zero123plus.config import load_zero123plus_config
from zero123plus.pipeline import Zero123PlusPipeline
from zero123plus.training.config import Zero123PlusTrainConfig
from zero123plus.training.data import Zero123PlusDataModule
from zero123plus.training.lit_module import Zero123PlusLitModule

INIT_KINDS = ("random", "pretrained")


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Zero123PlusTrainConfig:
    cfg = load_config(Zero123PlusTrainConfig, *([path] if path else []), overrides=list(overrides))
    if cfg.init.kind not in INIT_KINDS:
        raise ConfigError(f"init.kind must be one of {INIT_KINDS}, got '{cfg.init.kind}'")
    return cfg


def build_trainer(cfg: Zero123PlusTrainConfig, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    return trainer_for(cfg.trainer, cfg.output_dir, callbacks)


def initial_pipeline(cfg: Zero123PlusTrainConfig) -> Zero123PlusPipeline:
    zcfg = load_zero123plus_config(*([cfg.model_config] if cfg.model_config else []))
    tile = zcfg.sampling.height // 3
    if tile != cfg.data.tile_size:
        raise ConfigError(f"data.tile_size ({cfg.data.tile_size}) must be the model config's tile "
                          f"(sampling.height / 3 = {tile})")
    if cfg.init.kind == "random":
        return Zero123PlusPipeline.from_config(zcfg, seed=cfg.seed)
    return Zero123PlusPipeline.from_pretrained(cfg.init.path, zcfg, unet=cfg.init.unet or None)


def run_training(
    config: str | Path | None, overrides: Sequence[str] = (), callbacks: Sequence[pl.Callback] = ()
) -> dict:
    """Fine-tune Zero123++ as configured; returns a summary (also written to ``output_dir/summary.json``).

    At the end, rank 0 exports the EMA UNet (raw if EMA is off) with the other components as a hub-layout folder
    ``output_dir/final`` that ``Zero123PlusPipeline.from_pretrained`` reads.
    """
    cfg = load_train_config(config, overrides)
    require_dataset_root(cfg.data.root, "zero123plus")  # before building the model: a clear error
    pl.seed_everything(cfg.seed, workers=True)
    pipe = initial_pipeline(cfg)
    model = pipe.model
    module = Zero123PlusLitModule(model, cfg)
    data = Zero123PlusDataModule(cfg.data, pipe.cfg.preprocess.background, model.vae_processor, model.clip_processor,
                                 seed=cfg.seed)
    trainer = build_trainer(cfg, callbacks)
    out = Path(cfg.output_dir)
    if trainer.is_global_zero:
        save_config(cfg, out / "train_config.yaml")
    trainer.fit(module, datamodule=data, ckpt_path=cfg.resume or None)
    summary = {"global_step": trainer.global_step,
               "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()}}
    if trainer.is_global_zero:
        model.unet.unet.load_state_dict(module.unet_state(use_ema=True))
        Zero123PlusPipeline(model.cpu(), pipe.cfg).save_pretrained(out / "final")
        save_config(pipe.cfg, out / "final" / "zero123plus_config.yaml")
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["load_train_config", "run_training"]
