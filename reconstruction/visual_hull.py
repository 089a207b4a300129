"""Visual hull: the classical reconstruction from silhouettes and cameras (a baseline for the learned model).

A point belongs to the hull when it projects onto the foreground in every view. Object-centric captures show
the whole object in every view, so a point outside a view's image (or behind its camera) is empty: this bounds
the hull (otherwise the cones behind clusters of nearby views stay uncarved). The occupancy is evaluated on a
regular grid and meshed with marching cubes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from data.cameras import Cameras
from data.mesh import Mesh
from data.reconstruction_frame import ReconstructionFrame
from data.views import Views


def silhouette_occupancy(
    cameras: Cameras, masks: torch.Tensor, points: torch.Tensor, chunk: int = 65536
) -> torch.Tensor:
    """Soft occupancy of world points carved by silhouettes.

    Args:
        cameras: N cameras (world frame, OpenCV).
        masks: (N, 1, H, W) foreground in [0, 1], H/W matching the cameras.
        points: (P, 3) world points.

    Returns:
        (P,) float in [0, 1]: the minimum over the views of the bilinearly sampled mask (pixel (u, v) samples
        the mask at column u, row v; no half-pixel shift); 0 outside any view's image or behind its camera.
    """
    if masks.ndim != 4 or masks.shape[0] != len(cameras) or masks.shape[1] != 1:
        raise ValueError(f"masks must be ({len(cameras)}, 1, H, W), got {tuple(masks.shape)}")
    h, w = masks.shape[-2:]
    out = []
    cams = cameras.to(points.device, torch.float32)
    m = masks.to(points.device, torch.float32)
    for start in range(0, points.shape[0], chunk):
        pts = points[start:start + chunk].to(torch.float32)
        uv, depth = cams.project(pts)  # (N, P, 2), (N, P)
        grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
        seen = (depth > 1e-6) & (grid.abs() <= 1).all(-1)
        sampled = F.grid_sample(m, grid[:, :, None, :], mode="bilinear", align_corners=True)[:, 0, :, 0]
        out.append(torch.where(seen, sampled, torch.zeros_like(sampled)).min(0).values)
    return torch.cat(out)


def occupancy_to_mesh(occupancy: np.ndarray, bbox_min, bbox_max, level: float = 0.5) -> Mesh:
    """Marching cubes of an (R, R, R) occupancy grid (indexed [x, y, z], nodes spanning the box) -> Mesh.

    The grid is padded with empty cells so the surface is closed. Raises ``ValueError`` if it is empty.
    """
    from skimage.measure import marching_cubes

    occ = np.pad(np.asarray(occupancy, dtype=np.float32), 1, constant_values=0.0)
    if occ.max() <= level or occ.min() >= level:
        raise ValueError("the occupancy grid has no surface at the requested level (empty or full hull)")
    verts, faces, _, _ = marching_cubes(occ, level=level, gradient_direction="descent")
    lo = np.asarray(bbox_min, dtype=np.float64)
    hi = np.asarray(bbox_max, dtype=np.float64)
    res = np.asarray(occupancy.shape, dtype=np.float64)
    verts = lo + (verts - 1.0) * (hi - lo) / (res - 1.0)
    return Mesh(torch.as_tensor(verts, dtype=torch.float32), torch.as_tensor(faces.astype(np.int64)))


def visual_hull(
    views: Views,
    frame: ReconstructionFrame | None = None,
    resolution: int = 128,
    bbox: tuple[float, float] = (-1.0, 1.0),
) -> Mesh:
    """Mesh of the visual hull of posed silhouettes, in the world frame.

    Args:
        views: N views with ``masks`` and world-frame cameras.
        frame: if given, the grid spans ``bbox`` per axis of its normalised frame (the reconstruction
            network's volume); otherwise ``bbox`` is in world units.
        resolution: grid nodes per axis.
    """
    if views.masks is None:
        raise ValueError("visual_hull needs views with masks (Views.masks is None)")
    axis = torch.linspace(bbox[0], bbox[1], resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    points = frame.points_to_world(grid.double()).float() if frame is not None else grid
    occ = silhouette_occupancy(views.cameras, views.masks, points)
    mesh = occupancy_to_mesh(occ.reshape(resolution, resolution, resolution).cpu().numpy(), [bbox[0]] * 3,
                             [bbox[1]] * 3)
    if frame is not None:
        mesh = Mesh(frame.points_to_world(mesh.vertices.double()).float(), mesh.faces)
    return mesh
