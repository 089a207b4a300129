"""NeuS volume rendering of the cost-volume SDF for training and validation (spec section 10).

Composes the inference networks (SDF decoder, variance, blending network and its projector); nothing here is
used by mesh export. Per ray (unit direction, normalised frame): uniform samples with optional jitter,
``up_sample_steps`` rounds of NeuS importance up-sampling without gradients (inv_s = 64 * 2^i), then the
render core with the cos-annealed alpha, white background, depth and the Eikonal inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reconstruction.model import ReconstructionModel
from reconstruction.projector import blending_inputs, directions_to_camera
from reconstruction.sparse_sdf_network import ConditionalVolume
from reconstruction.volume_sampling import sample_volume_grid

#: SDF value assigned to samples outside the active volume (official).
OUTSIDE_SDF = 100.0


@dataclass(frozen=True)
class RenderSettings:
    """Sampling settings: coarse samples, up-sampled samples (over ``up_sample_steps`` rounds), jitter, cos
    annealing ratio rho in [0, 1]."""

    n_samples: int = 64
    n_importance: int = 64
    up_sample_steps: int = 4
    perturb: float = 1.0
    anneal_ratio: float = 1.0


@dataclass
class RenderOutput:
    """Per-ray results for R rays with S samples each.

    Attributes:
        color: (R, 3) in [0, 1] (white background); depth: (R,) expected distance along the ray;
        weight_sum: (R,) accumulated opacity; normal: (R, 3) weight-averaged unit SDF gradient;
        sdf: (R, S) SDF at the samples (``OUTSIDE_SDF`` outside the volume); gradients: (R, S, 3);
        inside: (R, S) bool samples inside the active volume; ray_valid: (R,) bool, seen by enough views.
    """

    color: torch.Tensor
    depth: torch.Tensor
    weight_sum: torch.Tensor
    normal: torch.Tensor
    sdf: torch.Tensor
    gradients: torch.Tensor
    inside: torch.Tensor
    ray_valid: torch.Tensor


def in_volume_mask(volume: ConditionalVolume, points: torch.Tensor) -> torch.Tensor:
    """(..., 3) points -> (...,) bool: nearest lookup of the active-voxel mask (PyTorch default
    ``align_corners=False``, as the official render core)."""
    m = sample_volume_grid(volume.mask.to(points.dtype), points, mode="nearest", align_corners=False)
    return m[..., 0] > 0


def _alpha_from_sdf(prev_sdf, next_sdf, inv_s):
    prev_cdf, next_cdf = torch.sigmoid(prev_sdf * inv_s), torch.sigmoid(next_sdf * inv_s)
    return (prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)


def _transmittance_weights(alpha: torch.Tensor) -> torch.Tensor:
    """alpha (R, S) -> weights alpha * exclusive cumprod(1 - alpha + 1e-7)."""
    ones = torch.ones_like(alpha[:, :1])
    return alpha * torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-7], -1), -1)[:, :-1]


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """Deterministic inverse-CDF samples: bins (R, S) edges, weights (R, S-1) -> (R, n) positions."""
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    u = torch.linspace(0.5 / n, 1.0 - 0.5 / n, n, device=bins.device, dtype=bins.dtype).expand(bins.shape[0], n)
    idx = torch.searchsorted(cdf, u.contiguous(), right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(1, below), cdf.gather(1, above)
    bin_lo, bin_hi = bins.gather(1, below), bins.gather(1, above)
    denom = torch.where(cdf_hi - cdf_lo < 1e-5, torch.ones_like(cdf_hi), cdf_hi - cdf_lo)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


def _sdf_where_inside(model: ReconstructionModel, volume: ConditionalVolume, pts: torch.Tensor,
                      inside: torch.Tensor) -> torch.Tensor:
    """SDF at (..., 3) points, ``OUTSIDE_SDF`` where ``inside`` is False (no gradients)."""
    out = torch.full(pts.shape[:-1], OUTSIDE_SDF, device=pts.device, dtype=pts.dtype)
    if inside.any():
        out[inside] = model.sdf_network_lod0.sdf(pts[inside], volume)[0][:, 0]
    return out


@torch.no_grad()
def up_sample(model: ReconstructionModel, volume: ConditionalVolume, origins, dirs, z_vals, sdf,
              settings: RenderSettings):
    """NeuS hierarchical up-sampling: returns the merged, sorted (R, S + n_importance) depths."""
    steps = settings.up_sample_steps
    if settings.n_importance <= 0 or steps <= 0:
        return z_vals
    per_step = settings.n_importance // steps
    for i in range(steps):
        inv_s = 64.0 * 2 ** i
        pts = origins[:, None] + dirs[:, None] * z_vals[..., None]
        inside = in_volume_mask(volume, pts).to(z_vals.dtype)
        seg_inside = inside[:, :-1] * inside[:, 1:]
        prev_sdf, next_sdf = sdf[:, :-1], sdf[:, 1:]
        prev_z, next_z = z_vals[:, :-1], z_vals[:, 1:]
        mid_sdf = (prev_sdf + next_sdf) * 0.5
        slope = (next_sdf - prev_sdf) / (next_z - prev_z + 1e-5)
        prev_slope = torch.cat([torch.zeros_like(slope[:, :1]), slope[:, :-1]], -1)
        slope = torch.minimum(prev_slope, slope).clamp(-10.0, 0.0) * seg_inside
        dist = next_z - prev_z
        alpha = _alpha_from_sdf(mid_sdf - slope * dist * 0.5, mid_sdf + slope * dist * 0.5, inv_s) * seg_inside
        new_z = sample_pdf(z_vals, _transmittance_weights(alpha), per_step)
        new_pts = origins[:, None] + dirs[:, None] * new_z[..., None]
        new_sdf = _sdf_where_inside(model, volume, new_pts, in_volume_mask(volume, new_pts))
        z_vals, order = torch.sort(torch.cat([z_vals, new_z], -1), -1)
        sdf = torch.cat([sdf, new_sdf], -1).gather(1, order)
    return z_vals


def render_rays(model: ReconstructionModel, volume: ConditionalVolume, fused_maps: torch.Tensor,
                images: torch.Tensor, w2cs: torch.Tensor, intrinsics: torch.Tensor, origins: torch.Tensor,
                dirs: torch.Tensor, near: float, far: float, settings: RenderSettings,
                training: bool = True, generator: torch.Generator | None = None) -> RenderOutput:
    """Render R rays of the query camera.

    Args:
        volume: the encoded scene; fused_maps (V, 56, H, W), images (V, 3, H, W), w2cs (V, 4, 4),
            intrinsics (V, 3, 3): the source views (normalised frame).
        origins, dirs: (R, 3) ray origins (the query camera centre) and unit directions.
        near, far: the query view's near/far (normalised units, along the unit ray).
        training: keep the graph of the SDF gradients (Eikonal / cos terms) and jitter samples.
        generator: CPU generator of the jitter (None: the global RNG).
    """
    r, dev, dt = origins.shape[0], origins.device, origins.dtype
    n = settings.n_samples
    z_vals = near + (far - near) * torch.linspace(0.0, 1.0, n, device=dev, dtype=dt).expand(r, n)
    if settings.perturb > 0 and training:
        jitter = torch.rand(r, n, dtype=dt, generator=generator).to(dev) if generator is not None else \
            torch.rand(r, n, device=dev, dtype=dt)
        z_vals = z_vals + (jitter - 0.5) * (far - near) / n
    with torch.no_grad():
        coarse_pts = origins[:, None] + dirs[:, None] * z_vals[..., None]
        coarse_sdf = model.sdf_network_lod0.sdf(coarse_pts.reshape(-1, 3), volume)[0].reshape(r, n)
    z_vals = up_sample(model, volume, origins, dirs, z_vals, coarse_sdf, settings)

    s = z_vals.shape[1]
    dists = torch.cat([z_vals[:, 1:] - z_vals[:, :-1], torch.full_like(z_vals[:, :1], (far - near) / n)], -1)
    mid_z = z_vals + dists * 0.5
    pts = origins[:, None] + dirs[:, None] * mid_z[..., None]  # (R, S, 3)
    inside = in_volume_mask(volume, pts)
    sdf = torch.full((r, s), OUTSIDE_SDF, device=dev, dtype=dt)
    grads = torch.zeros(r, s, 3, device=dev, dtype=dt)
    colours = torch.zeros(r, s, 3, device=dev, dtype=dt)
    ray_valid = torch.zeros(r, dtype=torch.bool, device=dev)
    if inside.any():
        with torch.enable_grad():
            p_in = pts[inside].detach().requires_grad_(True)
            sdf_in = model.sdf_network_lod0.sdf(p_in, volume)[0]
            (g_in,) = torch.autograd.grad(sdf_in, p_in, torch.ones_like(sdf_in), create_graph=training,
                                          retain_graph=training)
        sdf = sdf.masked_scatter(inside, sdf_in[:, 0])
        grads = grads.masked_scatter(inside[..., None].expand_as(grads), g_in)
        query_centre = origins[0]
        to_query = directions_to_camera(pts, query_centre)
        inp = blending_inputs(pts, to_query, volume.latent, volume.mask, fused_maps, images, w2cs, intrinsics)
        rgb, valid = model.rendering_network_lod0(inp.geometry, inp.view_features, inp.ray_diff,
                                                  inp.mask & inside[None])
        colours, ray_valid = rgb, valid[..., 0]

    inv_s = model.variance_network_lod0(1)[0, 0].clamp(1e-6, 1e6)
    rho = settings.anneal_ratio
    cos = (dirs[:, None] * grads).sum(-1)
    iter_cos = -(F.relu(-cos * 0.5 + 0.5) * (1.0 - rho) + F.relu(-cos) * rho) * inside
    iter_cos = iter_cos.clamp(-10.0, 10.0)
    alpha = _alpha_from_sdf(sdf - iter_cos * dists * 0.5, sdf + iter_cos * dists * 0.5, inv_s)
    alpha = alpha.clamp(0.0, 1.0) * inside
    weights = _transmittance_weights(alpha)
    weight_sum = weights.sum(-1)
    color = (weights[..., None] * colours).sum(1) + (1.0 - weight_sum)[:, None]
    depth = (weights * mid_z).sum(-1)
    normal = (weights[..., None] * F.normalize(grads, dim=-1, eps=1e-6)).sum(1)
    return RenderOutput(color, depth, weight_sum, normal, sdf, grads, inside, ray_valid)
