"""Sparse cost volume from the 32 source views (spec section 8.2).

All voxels of a cubic grid over [-1, 1]^3 are projected into every source view with the official ``affine_mats``
(``K @ w2c``, normalised frame); voxels seen by at least two views are kept, and for those the compressed 2D
features of **all** views are bilinearly sampled (zero outside the image) and reduced to
``[variance (C) || mean (C)]`` with the visible-view count as the denominator.

Voxel order is the official one: x outermost, z fastest (``meshgrid(..., indexing="ij")``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Depth floor applied to non-negative projected depths before the perspective division.
DEPTH_EPS = 1e-6


def voxel_grid(resolution: int, device=None) -> torch.Tensor:
    """(R^3, 3) int64 integer coordinates (x, y, z) in official order (x outermost, z fastest)."""
    axis = torch.arange(resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def voxel_positions(coords: torch.Tensor, voxel_size: float, origin: float = -1.0) -> torch.Tensor:
    """(N, 3) integer voxel coordinates -> (N, 3) float32 normalised positions ``coords * size + origin``."""
    return coords.to(torch.float32) * voxel_size + origin


def project_points(points: torch.Tensor, proj_mats: torch.Tensor, width: int, height: int):
    """Project normalised points into every view the way the official back-projection does.

    Args:
        points: (N, 3) float32 positions.
        proj_mats: (V, 4, 4) ``affine_mats`` (K @ w2c padded), float32.

    Returns:
        grid (V, N, 2) in grid_sample units (align_corners=True; [-1, 1] spans pixel 0 .. size-1),
        visible (V, N) bool: inside the image (inclusive) and in front of the camera.
    """
    homog = torch.cat([points.t(), points.new_ones(1, points.shape[0])], 0)  # (4, N)
    projected = proj_mats @ homog.expand(proj_mats.shape[0], 4, -1)  # (V, 4, N)
    x, y, z = projected[:, 0], projected[:, 1], projected[:, 2]
    z = torch.where(z >= 0, z.clamp_min(DEPTH_EPS), z)
    grid = torch.stack([2 * (x / z) / (width - 1) - 1, 2 * (y / z) / (height - 1) - 1], -1)
    visible = (grid.abs() <= 1).all(-1) & (z > 0)
    return grid, visible


def active_voxels(resolution: int, voxel_size: float, proj_mats: torch.Tensor, width: int, height: int,
                  min_views: int = 2, chunk: int = 65536) -> torch.Tensor:
    """Integer coordinates (N, 3) int64 of the voxels visible in at least ``min_views`` views (official order)."""
    coords = voxel_grid(resolution, proj_mats.device)
    keep = []
    for part in coords.split(chunk):
        _, visible = project_points(voxel_positions(part, voxel_size), proj_mats, width, height)
        keep.append(visible.sum(0) >= min_views)
    return coords[torch.cat(keep)]


def variance_mean_cost(features: torch.Tensor, coords: torch.Tensor, voxel_size: float, proj_mats: torch.Tensor,
                       chunk: int = 65536) -> torch.Tensor:
    """Aggregate per-view features at voxels.

    Args:
        features: (V, C, H, W) compressed feature maps (the official 16-channel compress-layer output).
        coords: (N, 3) integer voxel coordinates.
        proj_mats: (V, 4, 4) projection (affine_mats) into pixel units of the (H, W) maps.
        chunk: voxels per step (bounds memory at about V * chunk * C floats; no batch statistics involved).

    Returns:
        (N, 2C): variance ``S2/n - (S1/n)^2`` then mean ``S1/n``, with S1, S2 sums over **all** views and
        n = number of views the voxel is visible in (+1e-5).
    """
    v, c, h, w = features.shape
    out = []
    for part in coords.split(chunk):
        grid, visible = project_points(voxel_positions(part, voxel_size), proj_mats, w, h)
        sampled = F.grid_sample(features, grid[:, None], padding_mode="zeros", align_corners=True)[:, :, 0]  # (V,C,n)
        inv_count = 1.0 / (visible.sum(0).to(features.dtype) + 1e-5)  # (n,)
        mean = sampled.sum(0) * inv_count  # (C, n): sums over the views, no (n, V, C) copy
        variance = sampled.square().sum(0) * inv_count - mean ** 2
        out.append(torch.cat([variance, mean], 0).t())
    return torch.cat(out) if out else features.new_zeros(0, 2 * c)
