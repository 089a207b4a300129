"""Sampling the dense latent volume at continuous points (spec sections 8.4 and 8.6).

:func:`sample_latent` reproduces the official custom trilinear sampler used by the SDF decoder: align-corners
index mapping, **x -> first volume axis**, result forced to zero unless ``0 < index < size`` on every axis, and
built from plain differentiable tensor ops so that second derivatives exist (the Eikonal term needs them).
:func:`sample_volume_grid` is the ``F.grid_sample`` lookup the blending network's projector uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_latent(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Trilinear sample with zero outside.

    Args:
        volume: (C, X, Y, Z) or (1, C, X, Y, Z) dense features over [-1, 1]^3 (node i at -1 + 2 i / (size - 1)).
        points: (P, 3) normalised coordinates (x, y, z).

    Returns:
        (P, C) features; differentiable (to any order) w.r.t. ``points`` and ``volume``.
    """
    if volume.dim() == 5:
        volume = volume[0]
    c, nx, ny, nz = volume.shape
    sizes = points.new_tensor([nx, ny, nz])
    index = (points + 1) / 2 * (sizes - 1)  # (P, 3) fractional node index per axis
    inside = ((index > 0) & (index < sizes)).all(dim=1)
    with torch.no_grad():
        lo = torch.floor(index)
    frac_hi = index - lo  # weight of the upper corner
    frac_lo = (lo + 1) - index  # weight of the lower corner
    lo_i = lo.long()
    maxes = torch.tensor([nx - 1, ny - 1, nz - 1], device=points.device)
    corners_lo = torch.minimum(lo_i.clamp_min(0), maxes)
    corners_hi = torch.minimum((lo_i + 1).clamp_min(0), maxes)
    flat = volume.reshape(c, -1)
    out = points.new_zeros(points.shape[0], c)
    for dx in (0, 1):
        ix = corners_hi[:, 0] if dx else corners_lo[:, 0]
        wx = frac_hi[:, 0] if dx else frac_lo[:, 0]
        for dy in (0, 1):
            iy = corners_hi[:, 1] if dy else corners_lo[:, 1]
            wy = frac_hi[:, 1] if dy else frac_lo[:, 1]
            for dz in (0, 1):
                iz = corners_hi[:, 2] if dz else corners_lo[:, 2]
                wz = frac_hi[:, 2] if dz else frac_lo[:, 2]
                values = flat[:, (ix * ny + iy) * nz + iz]  # (C, P)
                out = out + values.t() * (wx * wy * wz)[:, None]
    return torch.where(inside[:, None], out, torch.zeros_like(out))


def sample_volume_grid(volume: torch.Tensor, points: torch.Tensor, mode: str = "bilinear",
                       align_corners: bool = True) -> torch.Tensor:
    """``F.grid_sample`` of a (C, X, Y, Z) volume at (..., 3) normalised points (x -> first axis), zero padding.

    Returns (..., C).
    """
    lead = points.shape[:-1]
    grid = points.reshape(1, 1, 1, -1, 3).flip(-1).to(volume.dtype)
    out = F.grid_sample(volume[None], grid, mode=mode, padding_mode="zeros", align_corners=align_corners)
    return out.reshape(volume.shape[0], -1).t().reshape(*lead, volume.shape[0])
