"""Per-view inputs of the blending network at 3D points (official ``Projector``; spec section 8.6).

Points are in the normalised frame; cameras are the source views' OpenCV ``w2c`` in that frame with unchanged
pixel intrinsics. Projection clamps depth at 1e-3 and pushes coordinates outside [-1, 1] to 2 so they sample
zero; a view "sees" a point when both grid coordinates are strictly inside (-1, 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reconstruction.volume_sampling import sample_volume_grid

#: Depth floor of the blending projection (the cost volume uses a different rule, see cost_volume.py).
PROJECTION_DEPTH_EPS = 1e-3


@dataclass
class BlendingInputs:
    """Inputs of :class:`reconstruction.rendering_network.BlendingNetwork` for points of shape ``B``.

    Attributes:
        geometry: (*B, C) latent sampled (grid_sample, align_corners) from the dense volume.
        view_features: (V, *B, 3 + F) sampled RGB then fused 2D features.
        ray_diff: (V, *B, 4).
        mask: (V, *B) bool.
    """

    geometry: torch.Tensor
    view_features: torch.Tensor
    ray_diff: torch.Tensor
    mask: torch.Tensor


def sample_views(points: torch.Tensor, maps: torch.Tensor, w2cs: torch.Tensor, intrinsics: torch.Tensor):
    """Bilinearly sample (V, C, H, W) maps at the projections of (*B, 3) points.

    Returns features (V, *B, C) and the in-image mask (V, *B) bool.
    """
    v, c, h, w = maps.shape
    lead = points.shape[:-1]
    proj = intrinsics @ w2cs[:, :3, :]  # (V, 3, 4)
    pts = points.reshape(1, -1, 3).transpose(1, 2).expand(v, 3, -1)
    cam = proj[:, :3, :3].bmm(pts) + proj[:, :3, 3:]
    z = cam[:, 2].clamp(min=PROJECTION_DEPTH_EPS)
    gx = 2 * (cam[:, 0] / z) / (w - 1) - 1
    gy = 2 * (cam[:, 1] / z) / (h - 1) - 1
    gx = torch.where((gx > 1) | (gx < -1), torch.full_like(gx, 2.0), gx)
    gy = torch.where((gy > 1) | (gy < -1), torch.full_like(gy, 2.0), gy)
    inside = (gx.abs() < 1.0) & (gy.abs() < 1.0)
    grid = torch.stack([gx, gy], -1)[:, None]  # (V, 1, P, 2)
    sampled = F.grid_sample(maps, grid, padding_mode="zeros", align_corners=True)[:, :, 0]  # (V, C, P)
    return sampled.transpose(1, 2).reshape(v, *lead, c), inside.reshape(v, *lead)


def ray_differences(points: torch.Tensor, target_dirs: torch.Tensor, source_centres: torch.Tensor) -> torch.Tensor:
    """(V, *B, 4): unit(target - source) and target . source, with source = unit vector point -> camera v.

    Args:
        points: (*B, 3); target_dirs: (*B, 3) unit target directions (towards the query camera, or the surface
            normal at mesh export); source_centres: (V, 3) camera centres.
    """
    lead = points.shape[:-1]
    pts = points.reshape(-1, 3)
    to_src = source_centres[:, None, :] - pts[None]
    to_src = to_src / (torch.norm(to_src, dim=-1, keepdim=True) + 1e-6)
    tgt = target_dirs.reshape(1, -1, 3)
    diff = tgt - to_src
    direction = diff / torch.clamp(torch.norm(diff, dim=-1, keepdim=True), min=1e-6)
    dot = (tgt * to_src).sum(-1, keepdim=True)
    return torch.cat([direction, dot], -1).reshape(source_centres.shape[0], *lead, 4)


def directions_to_camera(points: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(*B, 3) unit vectors from points to one camera centre (3,) (official ``+1e-6`` in the norm)."""
    d = centre - points
    return d / (torch.norm(d, dim=-1, keepdim=True) + 1e-6)


def blending_inputs(points: torch.Tensor, target_dirs: torch.Tensor, latent: torch.Tensor, mask_volume: torch.Tensor,
                    feature_maps: torch.Tensor, images: torch.Tensor, w2cs: torch.Tensor,
                    intrinsics: torch.Tensor) -> BlendingInputs:
    """Gather everything the blending network needs at (*B, 3) normalised points.

    Args:
        latent: (C, X, Y, Z) dense latent volume; mask_volume: (1, X, Y, Z) active-voxel mask.
        feature_maps: (V, 56, H, W) fused maps; images: (V, 3, H, W) source colours in [0, 1].
        w2cs: (V, 4, 4); intrinsics: (V, 3, 3).
    """
    geometry = sample_volume_grid(latent, points)
    in_box = (points.abs() < 1.0).all(-1)
    in_mask = sample_volume_grid(mask_volume.to(latent.dtype), points)[..., 0] > 0
    feats, seen = sample_views(points, feature_maps, w2cs, intrinsics)
    colours, _ = sample_views(points, images, w2cs, intrinsics)
    centres = torch.linalg.inv(w2cs)[:, :3, 3]
    ray_diff = ray_differences(points, target_dirs, centres)
    mask = seen & (in_box & in_mask)[None]
    return BlendingInputs(geometry, torch.cat([colours, feats], -1), ray_diff, mask)
