"""Sampling the dense latent volume at continuous points (spec sections 8.4 and 8.6).

:func:`sample_latent` reproduces the official custom trilinear sampler used by the SDF decoder: align-corners
index mapping, **x -> first volume axis**, result forced to zero unless ``0 < index < size`` on every axis, and
built from plain differentiable tensor ops so that second derivatives exist (the Eikonal term needs them).
:func:`sample_volume_grid` is the ``F.grid_sample`` lookup the blending network's projector uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def channels_last_table(volume: torch.Tensor) -> torch.Tensor:
    """(C, X, Y, Z) or (1, C, X, Y, Z) volume -> (X * Y * Z, C) contiguous rows (x outermost, z fastest)."""
    if volume.dim() == 5:
        volume = volume[0]
    return volume.permute(1, 2, 3, 0).reshape(-1, volume.shape[0])


def sample_latent(volume: torch.Tensor, points: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """Trilinear sample with zero outside.

    Args:
        volume: (C, X, Y, Z) or (1, C, X, Y, Z) dense features over [-1, 1]^3 (node i at -1 + 2 i / (size - 1)).
        points: (P, 3) normalised coordinates (x, y, z).
        table: optional ``channels_last_table(volume)`` (pass it when sampling the same volume many times:
            one contiguous C-vector per corner is much faster to gather than C strided values).

    Returns:
        (P, C) features; differentiable (to any order) w.r.t. ``points`` and ``volume``.
    """
    if volume.dim() == 5:
        volume = volume[0]
    c, nx, ny, nz = volume.shape
    if table is None:
        table = channels_last_table(volume)
    sizes = points.new_tensor([nx, ny, nz])
    index = (points + 1) / 2 * (sizes - 1)  # (P, 3) fractional node index per axis
    inside = ((index > 0) & (index < sizes)).all(dim=1)
    with torch.no_grad():
        lo = torch.floor(index)
        maxes = torch.tensor([nx - 1, ny - 1, nz - 1], device=points.device)
        lo_i = lo.long()
        corner = torch.stack([torch.minimum(lo_i.clamp_min(0), maxes),
                              torch.minimum((lo_i + 1).clamp_min(0), maxes)], 1)  # (P, 2, 3): lower, upper
        flat = (corner[:, :, 0, None, None] * ny + corner[:, None, :, 1, None]) * nz + corner[:, None, None, :, 2]
    # per-axis weights of the lower / upper corner, as the official sampler: (lo + 1 - t) and (t - lo)
    w = torch.stack([(lo + 1) - index, index - lo], 1)  # (P, 2, 3)
    weights = w[:, :, 0, None, None] * w[:, None, :, 1, None] * w[:, None, None, :, 2]  # (P, 2, 2, 2)
    values = table[flat.reshape(-1, 8)]  # (P, 8, C)
    out = (values * weights.reshape(-1, 8, 1)).sum(1)
    return torch.where(inside[:, None], out, torch.zeros_like(out))


def sample_latent_fast(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """:func:`sample_latent`'s values through ``F.grid_sample`` (about 6x faster on CPU), first derivatives only.

    The two agree (to float rounding) for points in [-1, 1]^3, where the official rule reduces to "zero on the
    -1 faces"; other points go through :func:`sample_latent`. Used by the SDF-only queries of meshing and normals,
    never by training (the Eikonal term needs second derivatives).

    Args:
        volume: (C, X, Y, Z) or (1, C, X, Y, Z); points: (P, 3) normalised.

    Returns:
        (P, C).
    """
    if volume.dim() == 5:
        volume = volume[0]
    if points.numel() == 0 or bool(points.detach().abs().max() > 1):
        return sample_latent(volume, points)
    sizes = points.new_tensor(volume.shape[1:])
    inside = ((points + 1) / 2 * (sizes - 1) > 0).all(dim=1)
    out = sample_volume_grid(volume, points)
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
