"""Sampling loops over prepared conditioning: the official DDIM (eta 1) and DPM-Solver++.

Randomness is drawn per target view from its own CPU generator (seeded per view), in a fixed order: the
starting latent first, then one noise tensor per DDIM step. A view's result therefore does not depend on
which other views share its batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from zero123.model import Zero123Model
from zero123.schedule import ddim_step, official_ddim_schedule


@dataclass
class Conditioning:
    """What the UNet is conditioned on, per target view.

    Attributes:
        context: (B, 1, E) cross-attention token (projected [CLIP | pose]).
        concat: (B, 4, h, w) unscaled VAE posterior mode of the conditioning image.
    """

    context: torch.Tensor
    concat: torch.Tensor

    def __getitem__(self, index) -> "Conditioning":
        return Conditioning(self.context[index], self.concat[index])

    def __len__(self) -> int:
        return self.context.shape[0]


class ViewNoise:
    """Per-view Gaussian noise streams: ``draw()`` returns (B, *shape), row i from view i's generator."""

    def __init__(self, seeds: list[int], shape: tuple[int, ...], device: torch.device):
        self.generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        self.shape, self.device = shape, device

    def draw(self) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators]).to(self.device)


def sample_ddim(
    model: Zero123Model,
    cond: Conditioning,
    x_T: torch.Tensor,
    num_steps: int,
    guidance_scale: float,
    eta: float = 1.0,
    step_noise: Optional[Callable[[int], torch.Tensor]] = None,
    on_step: Optional[Callable[[], None]] = None,
) -> torch.Tensor:
    """Official DDIM sampling from ``x_T`` (B,4,h,w); returns the final scaled latent (float32).

    ``step_noise(k)`` gives the standard-normal noise of executed step k (required when eta > 0).
    """
    schedule = official_ddim_schedule(model.alphas_cumprod, num_steps, eta)
    x = x_T.to(torch.float32)
    for k, t in enumerate(schedule.timesteps.tolist()):
        ts = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = model.guided_noise(x, ts, cond.context, cond.concat, guidance_scale).to(torch.float32)
        noise = step_noise(k) if (step_noise is not None and eta > 0) else None
        if eta > 0 and noise is None:
            raise ValueError("eta > 0 needs step noise")
        x, _ = ddim_step(x, eps, schedule, k, noise)
        if on_step is not None:
            on_step()
    return x


def dpm_solver_scheduler(model: Zero123Model, num_steps: int):
    """diffusers' 2nd-order multistep DPM-Solver++ on the model's training betas."""
    from diffusers import DPMSolverMultistepScheduler

    c = model.cfg
    betas = np.linspace(c.beta_start**0.5, c.beta_end**0.5, c.num_train_timesteps, dtype=np.float64) ** 2
    sched = DPMSolverMultistepScheduler(
        num_train_timesteps=c.num_train_timesteps, trained_betas=betas, algorithm_type="dpmsolver++",
        solver_order=2, prediction_type="epsilon", timestep_spacing="leading", steps_offset=1,
    )
    sched.set_timesteps(num_steps)
    return sched


def sample_dpm_solver(
    model: Zero123Model,
    cond: Conditioning,
    x_T: torch.Tensor,
    num_steps: int,
    guidance_scale: float,
    on_step: Optional[Callable[[], None]] = None,
) -> torch.Tensor:
    """DPM-Solver++ (deterministic given ``x_T``); ``num_steps`` UNet calls."""
    sched = dpm_solver_scheduler(model, num_steps)
    x = x_T.to(torch.float32) * sched.init_noise_sigma
    for t in sched.timesteps.tolist():
        ts = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        eps = model.guided_noise(x, ts, cond.context, cond.concat, guidance_scale).to(torch.float32)
        x = sched.step(eps, int(t), x).prev_sample
        if on_step is not None:
            on_step()
    return x


def executed_steps(scheduler: str, num_steps: int, num_train_timesteps: int = 1000) -> int:
    """UNet calls per sample: official DDIM drops its highest grid entry (75 -> 76, 50 -> 49)."""
    if scheduler == "ddim":
        from zero123.schedule import official_ddim_grid

        return len(official_ddim_grid(num_steps, num_train_timesteps)) - 1
    return num_steps
