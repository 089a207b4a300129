"""Latent-space volume rendering of a :class:`VoxelField` (the official ``render_one_view`` /
``render_ray_bundle`` of ``3drec``).

Rays: one per pixel through the pixel **centre** (pixel (i, j) at ``(i + 0.5, j + 0.5)`` in the pixel
convention of :mod:`data.conventions`, principal point at the image centre; this is the official K with its
``W/2 - 0.5`` offset on integer pixel coordinates), directions normalised, in float64; clipped to the box by the
slab test (zero direction components replaced by 1e-6), entry and exit clamped at 0. Then float32:
``k = int(max segment / step) + 1`` samples at ``t_min + i * step`` for the whole bundle, no jitter, samples past
the exit get density 0 (a ray that misses the box -- possible for corner pixels of far training views -- is
pure background, as officially: its segment is negative); ``alpha = 1 - exp(-sigma * step)``; features only where the weight exceeds the field's
threshold; ``latent = sum w c + (1 - sum w) * background``, ``depth = sum w t + (1 - sum w) * 10``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.cameras import Cameras
from score_distillation.field import VoxelField


class RenderError(ValueError):
    """A render request the renderer cannot serve (undefined camera orientation, non-square image, bad background)."""


@dataclass
class LatentRender:
    """One rendered view.

    Attributes:
        latent: (1, C, H, W) rendered latent features.
        depth: (H, W) expected ray distance (background depth where transparent).
        weights: (k, H, W) compositing weights of the k samples.
        opacity: (H, W) sum of the weights.
    """

    latent: torch.Tensor
    depth: torch.Tensor
    weights: torch.Tensor

    @property
    def opacity(self) -> torch.Tensor:
        return self.weights.sum(0)

    @property
    def num_samples(self) -> int:
        return self.weights.shape[0]


def camera_rays(camera: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre rays of one camera, row-major (x fastest).

    Returns:
        origins (H*W, 3) and unit directions (H*W, 3), float64 world frame.
    """
    if len(camera) != 1:
        raise RenderError(f"camera_rays renders one camera at a time, got {len(camera)}")
    cam = camera.to(dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(cam.height, dtype=torch.float64),
                            torch.arange(cam.width, dtype=torch.float64), indexing="ij")
    pixels = torch.stack([xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5], -1)[None]
    origins, dirs = cam.pixel_rays(pixels)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return origins[0].numpy().copy(), dirs[0].numpy()


def box_intersect(origins: np.ndarray, dirs: np.ndarray, aabb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test against ``aabb`` (2, 3) = (min, max); returns ``t_min``, ``t_max`` (N,), both clamped at 0."""
    d = np.where(dirs == 0, 1e-6, dirs)
    ts = (np.asarray(aabb, dtype=np.float64)[None] - origins[:, None]) / d[:, None]  # (N, 2, 3)
    t_min = ts.min(1).max(-1)
    t_max = ts.max(1).min(-1)
    return np.maximum(t_min, 0.0), np.maximum(t_max, 0.0)


def _background(background: torch.Tensor, channels: int, size: int, device) -> torch.Tensor:
    if background.ndim != 3 or background.shape[0] != channels:
        raise RenderError(f"background must be a ({channels}, h, w) latent image, got {tuple(background.shape)}")
    bg = background.to(device=device, dtype=torch.float32)[None]
    if bg.shape[-2:] != (size, size):
        bg = F.interpolate(bg, (size, size), mode="bilinear", align_corners=False)
    return bg[0].reshape(channels, -1).T  # (H*W, C)


def render_latent(field: VoxelField, camera: Cameras, background: torch.Tensor) -> LatentRender:
    """Render ``field`` from one camera (square image), differentiable w.r.t. the field's parameters.

    Args:
        camera: one camera (:class:`data.cameras.Cameras`, OpenCV axes) whose image is square.
        background: (C, h, w) latent composited behind the field (the official fixed "white" latent), resized
            bilinearly to the render size when h != H.
    """
    if camera.width != camera.height:
        raise RenderError(f"the latent renderer needs square images, got {camera.width}x{camera.height}")
    size, dev = camera.width, field.density.device
    origins, dirs = camera_rays(camera)
    t_min, t_max = box_intersect(origins, dirs, field.aabb.detach().cpu().double().numpy())
    if not np.isfinite(dirs).all():
        raise RenderError("the camera's rays are not finite (a look-at camera exactly above or below the origin has "
                          "no defined orientation): move the camera off the z axis")
    ro, rd, t0, t1 = (torch.as_tensor(a, dtype=torch.float32, device=dev) for a in (origins, dirs, t_min, t_max))
    n = ro.shape[0]
    step = field.step_size
    k = field.num_samples((t1 - t0).max())
    ticks = step * torch.arange(k, device=dev)  # (k,) float32
    dists = t0[None, :] + ticks[:, None]  # (k, n)
    points = ro[None] + rd[None] * dists[..., None]  # (k, n, 3)
    inside = ticks[:, None] < (t1 - t0)[None, :]  # (k, n)

    sigma = torch.zeros(k, n, device=dev).index_put((inside,), field.density_at(points[inside]))
    alpha = 1 - torch.exp(-sigma * step)
    trans = torch.cat([torch.ones(1, n, device=dev), torch.cumprod(1 - alpha, dim=0)[:-1]])
    weights = alpha * trans  # (k, n)

    visible = weights > field.cfg.weight_threshold
    c = field.cfg.channels
    colors = torch.zeros(k, n, c, device=dev).index_put((visible,), field.features_at(points[visible]))
    w = weights[..., None]
    rest = 1.0 - w.sum(0)  # (n, 1)
    latent = (w * colors).sum(0) + rest * _background(background, c, size, dev)
    depth = (w * dists[..., None]).sum(0) + rest * field.cfg.background_depth
    return LatentRender(
        latent=latent.T.reshape(1, c, size, size),
        depth=depth.reshape(size, size),
        weights=weights.reshape(k, size, size),
    )
