"""Render-based metrics of a predicted mesh: CLIP similarity, PSNR and SSIM between renders of prediction and GT.

One-2-3-45's render set-up (its ``render/`` scripts): each mesh scaled so its bounding box's longest side is 0.8
and centred; 24 cameras, 12 azimuths every 30 deg at 30 deg elevation plus 12 at 0 deg; distance 1.3; a 35 mm
lens on a 32 mm sensor (focal = 35/32 x image width). Rendering uses :mod:`data.render` (pyrender, CPU); the
paper used Blender Cycles, so absolute values differ while rankings are comparable.
"""
from __future__ import annotations

import numpy as np
import torch

from data.cameras import Cameras
from evaluation.alignment import normalise_bbox
from evaluation.images import image_metrics
from data.mesh import Mesh

AZIMUTHS_DEG = tuple(float(a) for a in range(0, 360, 30))
ELEVATIONS_DEG = (30.0, 0.0)
RENDER_DISTANCE = 1.3
RENDER_OBJECT_SIZE = 0.8
LENS_MM, SENSOR_MM = 35.0, 32.0


def one2345_cameras(size: int = 256) -> Cameras:
    """The 24 render cameras (12 at 30 deg elevation, then 12 at 0 deg), ``size`` x ``size`` pixels."""
    elevation = np.repeat(ELEVATIONS_DEG, len(AZIMUTHS_DEG))
    azimuth = np.tile(AZIMUTHS_DEG, len(ELEVATIONS_DEG))
    return Cameras.from_spherical(90.0 - elevation, azimuth, RENDER_DISTANCE, LENS_MM / SENSOR_MM * size, size)


def render_normalised(mesh: Mesh, cameras: Cameras, object_size: float = RENDER_OBJECT_SIZE) -> torch.Tensor:
    """(N, 3, H, W) renders on white of ``mesh`` rescaled to ``object_size`` (longest side) and centred."""
    from data.render import render_mesh  # pyrender/EGL: imported only when renders are requested

    v, _, _ = normalise_bbox(mesh.vertices.detach().cpu().numpy(), object_size)
    scaled = Mesh(torch.as_tensor(v, dtype=torch.float32), mesh.faces, mesh.vertex_colors, mesh.uv, mesh.texture)
    return render_mesh(scaled, cameras).rgb


def render_metrics(pred: Mesh, gt: Mesh, *, size: int = 256, clip=None, lpips_net=None) -> dict:
    """PSNR / SSIM (/ CLIP similarity / LPIPS) between the 24 renders of ``pred`` and ``gt``.

    ``pred`` must already be aligned to ``gt`` (same frame); both are rescaled independently for rendering.
    ``clip`` is a :class:`evaluation.clip_similarity.ClipSimilarity` or None.
    """
    cams = one2345_cameras(size)
    pred_img, gt_img = render_normalised(pred, cams), render_normalised(gt, cams)
    out = image_metrics(pred_img, gt_img, lpips_net)
    if clip is not None:
        scored = clip.score(pred_img, gt_img)
        out["clip_similarity"] = scored["clip_similarity"]
        out["per_view"]["clip_similarity"] = scored["per_view"]
    return out
