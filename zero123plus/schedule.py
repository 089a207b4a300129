"""Noise schedule and sampler of Zero123++ (spec section 7): linear betas, v-prediction, Euler-ancestral.

The sampler is diffusers' ``EulerAncestralDiscreteScheduler`` built from the hub ``scheduler_config.json`` with the
variant's ``timestep_spacing`` (``trailing``: README / InstantMesh; ``linspace``: the hub config as stored, its last
step at t = 0, fractional t in between). sigma_t = sqrt((1 - abar_t) / abar_t), interpolated at fractional t.
"""
from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler, EulerAncestralDiscreteScheduler

#: ``sudo-ai/zero123plus-v1.2`` ``scheduler/scheduler_config.json`` (the training schedule).
HUB_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "EulerAncestralDiscreteScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}


def euler_ancestral(config: dict[str, Any] | None = None, timestep_spacing: str | None = None):
    """The inference scheduler: hub config (default :data:`HUB_SCHEDULER_CONFIG`), spacing overridden if given."""
    cfg = dict(HUB_SCHEDULER_CONFIG if config is None else config)
    if timestep_spacing is not None:
        cfg["timestep_spacing"] = timestep_spacing
    return EulerAncestralDiscreteScheduler.from_config(cfg)


def training_scheduler(config: dict[str, Any] | None = None) -> DDPMScheduler:
    """The training noise schedule (``DDPMScheduler`` of the same config, as the official wrapper builds)."""
    return DDPMScheduler.from_config(dict(HUB_SCHEDULER_CONFIG if config is None else config))


def alphas_cumprod(beta_schedule: str = "linear", beta_start: float = 0.00085, beta_end: float = 0.012,
                   num_train_timesteps: int = 1000) -> torch.Tensor:
    """(T,) float32 cumulative alphas of diffusers' ``linear`` (Zero123++) or ``scaled_linear`` (SD) betas."""
    if beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    elif beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    else:
        raise ValueError(f"beta_schedule must be 'linear' or 'scaled_linear', got {beta_schedule!r}")
    return torch.cumprod(1.0 - betas, dim=0)


def log_snr(abar: torch.Tensor) -> torch.Tensor:
    """log(abar / (1 - abar)), the log signal-to-noise ratio of each training timestep."""
    return torch.log(abar / (1.0 - abar))


def sigmas_of(abar: torch.Tensor) -> torch.Tensor:
    """Euler-A noise levels sqrt((1 - abar) / abar) at the integer training timesteps."""
    return ((1 - abar) / abar) ** 0.5


__all__ = ["HUB_SCHEDULER_CONFIG", "alphas_cumprod", "euler_ancestral", "log_snr", "sigmas_of",
           "training_scheduler"]
