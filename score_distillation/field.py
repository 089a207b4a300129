"""``VoxelField``: the official ``V_SD`` latent-feature voxel grid (density + 4 latent channels per voxel).

Layout: parameters are stored ``[1, C, Z, Y, X]`` and sampled with ``grid_sample`` (trilinear,
``align_corners=False``, zero padding) at coordinates ``(x, y, z)`` normalised from the box to [-1, 1], so a
voxel's value sits at its centre ``-L + (2i + 1) L / N``. World axes are those of :mod:`data.conventions`
(+z up).

Density activation: ``softplus(raw * exp(d_scale) + density_shift)``; features have no activation (they are
Zero123 latents, decoded by the VAE).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from score_distillation.config import FieldConfig


class VoxelField(nn.Module):
    """Density / latent-feature grid over ``bbox_len * [-1, 1]^3``.

    Parameters (in the official order, which is also the optimiser's group order): ``density`` [1,1,N,N,N]
    (init 0), ``color`` [1,C,N,N,N] (init N(0,1)), ``bg`` [1,C,h,h] (init N(0,1); unused without a background
    texture, kept so the parameter set and the RNG draws match the official grid), ``d_scale`` scalar (init 0).
    """

    def __init__(self, cfg: FieldConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FieldConfig()
        if cfg.grid_size < 2:
            raise ValueError(f"field.grid_size must be >= 2, got {cfg.grid_size}")
        n = cfg.grid_size
        self.density = nn.Parameter(torch.zeros(1, 1, n, n, n))
        self.color = nn.Parameter(torch.randn(1, cfg.channels, n, n, n, generator=generator))
        self.bg = nn.Parameter(torch.randn(1, cfg.channels, cfg.bg_texture_hw, cfg.bg_texture_hw, generator=generator))
        self.d_scale = nn.Parameter(torch.tensor(0.0))
        lo = torch.full((3,), -float(cfg.bbox_len))
        self.register_buffer("aabb", torch.stack([lo, -lo]), persistent=False)  # (2, 3) float32

    # ------------------------------------------------------------------ geometry
    @property
    def grid_size(self) -> int:
        return self.density.shape[-1]

    @property
    def step_size(self) -> float:
        """Ray-marching step (world units): mean voxel side x ``step_ratio``, rounded to float32 as officially."""
        aabb = self.aabb.detach().cpu()
        voxel = (aabb[1] - aabb[0]) / torch.tensor([self.grid_size] * 3)
        return float(voxel.float().mean() * self.cfg.step_ratio)

    def num_samples(self, max_length: torch.Tensor | float) -> int:
        """Samples per ray for a bundle whose longest in-box segment is ``max_length``: ``int(len / step) + 1``."""
        length = torch.as_tensor(max_length, dtype=torch.float32).detach().cpu()
        return max(int(float(length / self.step_size)) + 1, 1)

    def grid_coords(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) world points -> (1, P, 1, 1, 3) ``grid_sample`` coordinates in [-1, 1]."""
        lo, hi = self.aabb[0], self.aabb[1]
        return ((points - lo) / (hi - lo) * 2 - 1).reshape(1, -1, 1, 1, 3)

    # ------------------------------------------------------------------ queries
    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """The density activation applied to raw grid values (sampled or whole-grid)."""
        return F.softplus(raw * torch.exp(self.d_scale) + self.cfg.density_shift)

    def density_at(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) world points -> (P,) activated density."""
        raw = F.grid_sample(self.density, self.grid_coords(points), align_corners=False).reshape(-1)
        return self.activate(raw)

    def features_at(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) world points -> (P, C) latent features (identity activation)."""
        feats = F.grid_sample(self.color, self.grid_coords(points), align_corners=False)
        return feats.reshape(self.cfg.channels, -1).T

    # ------------------------------------------------------------------ optimisation
    def param_groups(self, lr: float, bg_lr: float = 1e-4) -> list[dict]:
        """Official ``opt_params``: one group per parameter, ``bg`` at ``bg_lr``, the others (``d_scale`` too) at
        ``lr``."""
        return [{"params": [p], "lr": bg_lr if name == "bg" else lr, "name": name}
                for name, p in self.named_parameters()]
