"""The official LDM DDIM schedule (as Zero123 / One-2-3-45 run it) and its update step.

``DDIMSampler`` with "uniform" discretisation builds the grid ``range(0, T, T // S) + 1`` and its sampling loop
drops the grid's **highest** entry, so "75 steps" runs 76 steps (976 ... 1) and "50" runs 49 (961 ... 1).
The step uses float32 scalars: ``a_t`` and ``sqrt(1 - a_t)`` come from the float32 cumulative alphas,
``a_prev`` (alpha of the previous grid entry, ``alphas_cumprod[0]`` for the last step) and
``sigma = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))`` are computed in float64 and cast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DDIMSchedule:
    """Per executed step (sampling order, highest timestep first), the float32 scalars the update uses.

    Attributes:
        timesteps: (K,) int64 model timesteps.
        grid: (G,) int64 the full uniform grid, ascending (G = K + 1).
        a_t, a_prev, sigma, sqrt_one_minus_a_t: (K,) float32.
    """

    timesteps: torch.Tensor
    grid: torch.Tensor
    a_t: torch.Tensor
    a_prev: torch.Tensor
    sigma: torch.Tensor
    sqrt_one_minus_a_t: torch.Tensor

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])


def official_ddim_grid(num_steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """The sampler's uniform grid, ascending: ``arange(0, T, T // S) + 1`` (more than S entries if S does not divide T)."""
    if not 2 <= num_steps <= num_train_timesteps // 2:
        raise ValueError(
            f"official DDIM needs 2 <= num_inference_steps <= {num_train_timesteps // 2}, got {num_steps}"
        )
    grid = np.arange(0, num_train_timesteps, num_train_timesteps // num_steps) + 1
    if grid[-1] >= num_train_timesteps:  # e.g. S = 3: stride 333 reaches t = 1000 (the official sampler fails too)
        raise ValueError(
            f"official DDIM with {num_steps} steps would use timestep {grid[-1]} >= {num_train_timesteps}; "
            "choose another step count (e.g. 4, 5, 10, 50, 75)"
        )
    return grid


def official_ddim_schedule(alphas_cumprod: torch.Tensor, num_steps: int, eta: float = 1.0) -> DDIMSchedule:
    """The schedule the official sampler runs for "``num_steps``" steps.

    Args:
        alphas_cumprod: (T,) float32 training cumulative alphas.
        num_steps: the requested step count (the UI / One-2-3-45 number, e.g. 75 or 50).
        eta: DDIM stochasticity (official demo and One-2-3-45: 1.0).
    """
    acp = alphas_cumprod.detach().cpu().to(torch.float32)
    grid = official_ddim_grid(num_steps, acp.shape[0])
    # Bit-exact replay of the sampler's mixed numpy/torch arithmetic: alphas float32, alphas_prev float64;
    # ``ndarray / tensor`` runs as ``tensor.reciprocal() * ndarray`` (float32 reciprocal); numpy's sqrt.
    alphas = acp[grid]
    alphas_prev = torch.tensor([float(acp[0])] + acp[grid[:-1]].tolist(), dtype=torch.float64)
    ratio = (1.0 - alphas).reciprocal() * (1.0 - alphas_prev) * (1.0 - alphas / alphas_prev)
    sigmas = eta * torch.from_numpy(np.sqrt(ratio.numpy()))
    sqrt_one_minus = torch.from_numpy(np.sqrt((1.0 - alphas).numpy()))
    order = torch.arange(len(grid) - 2, -1, -1)  # highest entry dropped, then descending
    f32 = lambda a: a[order].to(torch.float32)  # noqa: E731
    return DDIMSchedule(
        timesteps=torch.from_numpy(grid.astype(np.int64))[order],
        grid=torch.from_numpy(grid.astype(np.int64)),
        a_t=f32(alphas), a_prev=f32(alphas_prev), sigma=f32(sigmas), sqrt_one_minus_a_t=f32(sqrt_one_minus),
    )


def ddim_step(
    latents: torch.Tensor, eps: torch.Tensor, schedule: DDIMSchedule, k: int, noise: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One official DDIM update at executed step ``k``.

    Args:
        latents: (B,4,h,w) current x_t (float32).
        eps: (B,4,h,w) guided noise prediction.
        noise: (B,4,h,w) standard normal noise (multiplied by sigma here); None when sigma is 0.

    Returns:
        ``(x_prev, pred_x0)``, no clipping.
    """
    dev, dt = latents.device, latents.dtype
    a_t, a_prev = schedule.a_t[k].to(dev, dt), schedule.a_prev[k].to(dev, dt)
    sigma, s1m = schedule.sigma[k].to(dev, dt), schedule.sqrt_one_minus_a_t[k].to(dev, dt)
    pred_x0 = (latents - s1m * eps) / a_t.sqrt()
    dir_xt = (1.0 - a_prev - sigma**2).sqrt() * eps
    x_prev = a_prev.sqrt() * pred_x0 + dir_xt
    if noise is not None and float(schedule.sigma[k]) != 0.0:
        x_prev = x_prev + sigma * noise.to(dev, dt)
    return x_prev, pred_x0
