"""SDF grid evaluation and marching cubes (spec sections 9.1-9.2).

The official export evaluates the SDF at ``linspace(-1, 1, R)`` per axis (blocks of 64^3, indexing "ij") and runs
PyMCubes on ``-SDF``; here scikit-image's marching cubes runs on the same field. Vertex positions agree to the
interpolation, the triangulation of ambiguous cells may differ (parity is on fields, not triangles).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from data.sdf_volume import SDFVolume


def evaluate_sdf_grid(sdf_fn: Callable[[torch.Tensor], torch.Tensor], resolution: int, block: int = 64,
                      bound: float = 1.0, device=None) -> SDFVolume:
    """SDF on a resolution^3 grid over [-bound, bound]^3.

    Args:
        sdf_fn: (P, 3) float32 points -> (P,) or (P, 1) SDF (positive outside).
        block: points per axis per call (block^3 points per call bound the memory).

    Returns:
        :class:`SDFVolume` (sdf (R, R, R) float32 on CPU, indexed [x, y, z]).
    """
    axis = torch.linspace(-bound, bound, resolution, device=device)
    out = torch.empty(resolution, resolution, resolution, dtype=torch.float32)
    for i, xs in enumerate(axis.split(block)):
        for j, ys in enumerate(axis.split(block)):
            for k, zs in enumerate(axis.split(block)):
                pts = torch.stack(torch.meshgrid(xs, ys, zs, indexing="ij"), -1).reshape(-1, 3)
                vals = sdf_fn(pts).reshape(len(xs), len(ys), len(zs))
                out[i * block:i * block + len(xs), j * block:j * block + len(ys), k * block:k * block + len(zs)] = \
                    vals.detach().float().cpu()
    lo = torch.full((3,), -float(bound))
    return SDFVolume(out, lo, -lo, frame="normalised")


def marching_cubes(volume: SDFVolume, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of an SDF grid.

    Returns:
        vertices (V, 3) float64 in the volume's frame and faces (F, 3) int64, counter-clockwise seen from
        outside (positive SDF), i.e. outward normals. Empty arrays when the level is not crossed.
    """
    from skimage import measure

    field = volume.sdf.detach().cpu().numpy().astype(np.float32)
    if not (field.min() < level < field.max()):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _, _ = measure.marching_cubes(field, level=level)
    spacing = volume.spacing.double().numpy()
    verts = verts.astype(np.float64) * spacing + volume.bbox_min.double().numpy()
    # On a field that increases outwards, skimage's default face order gives outward normals (positive signed
    # volume; checked by tests/reconstruction/test_meshing.py).
    return verts, faces.astype(np.int64)
