"""Point clouds for evaluation: surface sampling, depth-map back-projection and voxel downsampling."""
from __future__ import annotations

import numpy as np
import torch

from data.cameras import Cameras


def sample_surface(vertices, faces, count: int, seed: int = 0) -> np.ndarray:
    """Area-weighted uniform samples on a triangle mesh.

    Args:
        vertices: (V, 3) positions; faces: (F, 3) indices.
        count: number of points.
        seed: numpy generator seed (the result is deterministic for a given mesh and seed).

    Returns:
        (count, 3) float64 points on the surface.
    """
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    tri = v[f]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("cannot sample a mesh with zero surface area (no non-degenerate triangle)")
    rng = np.random.default_rng(seed)
    which = rng.choice(len(f), size=count, p=areas / total)
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1.0  # fold the unit square onto the triangle
    r1[flip], r2[flip] = 1.0 - r1[flip], 1.0 - r2[flip]
    t = tri[which]
    return t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])


def backproject_depth(depth: np.ndarray, mask: np.ndarray, cameras: Cameras, pixel_offset: float = 0.0) -> np.ndarray:
    """World points of the masked pixels of depth maps.

    Args:
        depth: (N, H, W) z-depth along each camera's optical axis (world units).
        mask: (N, H, W) bool, pixels to use.
        cameras: N cameras (OpenCV, :class:`data.cameras.Cameras`).
        pixel_offset: added to the integer (col, row) before back-projection: 0.5 for pixel centres, 0.0 for
            the integer-index convention of SyncDreamer's ``mask_depth_to_pts``.

    Returns:
        (P, 3) float64 world points, views in order, pixels row-major within a view.
    """
    c2w = cameras.c2w.detach().cpu().to(torch.float64).numpy()
    k = cameras.intrinsics.detach().cpu().to(torch.float64).numpy()
    out = []
    for n in range(len(cameras)):
        rows, cols = np.nonzero(mask[n])
        z = np.asarray(depth[n][rows, cols], np.float64)
        x = (cols + pixel_offset - k[n, 0, 2]) / k[n, 0, 0] * z
        y = (rows + pixel_offset - k[n, 1, 2]) / k[n, 1, 1] * z
        cam = np.stack([x, y, z], 1)
        out.append(cam @ c2w[n, :3, :3].T + c2w[n, :3, 3])
    return np.concatenate(out, 0) if out else np.zeros((0, 3))


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Average the points falling into each cell of a grid of ``voxel_size`` cubes.

    The grid is anchored half a cell below the cloud's own minimum corner (Open3D's ``voxel_down_sample``
    convention, used by SyncDreamer's evaluation), so two clouds get unaligned grids.

    Args:
        points: (P, 3) points.
        voxel_size: cell side (world units).

    Returns:
        (Q, 3) float64 cell means, ordered by cell index.
    """
    p = np.asarray(points, np.float64)
    if len(p) == 0:
        return p.reshape(0, 3)
    origin = p.min(0) - voxel_size * 0.5
    cells = np.floor((p - origin) / voxel_size).astype(np.int64)
    cells -= cells.min(0)
    span = cells.max(0) + 1
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse)
    sums = np.stack([np.bincount(inverse, weights=p[:, a], minlength=len(counts)) for a in range(3)], 1)
    return sums / counts[:, None]
