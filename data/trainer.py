"""The Lightning trainer shared by the diffusion fine-tuners (``zero123.training``, ``zero123plus.training``).

:class:`TrainerConfig` is the ``trainer:`` section of their YAML configs; :func:`build_trainer` turns it into a
``pl.Trainer`` that checkpoints every ``checkpoint_every_n_steps`` under ``<output_dir>/checkpoints`` (plus
``last.ckpt``) and logs CSV under ``<output_dir>/logs``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger


@dataclass
class TrainerConfig:
    """Lightning trainer settings (``--accelerator/--devices/--strategy`` on the command line override these)."""

    max_steps: int = 1000
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 500
    val_check_interval: Optional[int] = None
    gradient_checkpointing: bool = False
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1


def _devices(value: str):
    return int(value) if str(value).isdigit() else value


def build_trainer(t: TrainerConfig, output_dir: str | Path, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """``pl.Trainer`` for the settings ``t``, writing checkpoints and CSV logs under ``output_dir``."""
    out = Path(output_dir)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=t.checkpoint_every_n_steps,
                           save_top_k=-1, save_last=True, filename="step{step:07d}", auto_insert_metric_name=False)
    return pl.Trainer(
        max_steps=t.max_steps, accelerator=t.accelerator, devices=_devices(t.devices), strategy=t.strategy,
        precision=t.precision, log_every_n_steps=t.log_every_n_steps, val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None if t.val_check_interval else 1,
        gradient_clip_val=t.gradient_clip_val, accumulate_grad_batches=t.accumulate_grad_batches,
        callbacks=[ckpt, *callbacks], logger=CSVLogger(str(out), name="logs"), default_root_dir=str(out),
        enable_progress_bar=False, num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the SeededSampler of the training loader splits the data among ranks
    )
