"""Marching cubes on analytic SDFs: area and volume within 1 %, outward orientation, frame mapping."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reconstruction.meshing import evaluate_sdf_grid, marching_cubes


def _trimesh(verts, faces):
    import trimesh

    return trimesh.Trimesh(verts, faces, process=False)


@pytest.mark.parametrize("radius,resolution", [(0.5, 96), (0.3, 64)])
def test_sphere_area_and_volume(radius, resolution):
    centre = torch.tensor([0.1, -0.05, 0.02])
    grid = evaluate_sdf_grid(lambda p: (p - centre).norm(dim=-1) - radius, resolution, block=40)
    assert grid.sdf.shape == (resolution,) * 3
    verts, faces = marching_cubes(grid)
    mesh = _trimesh(verts, faces)
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius ** 3, rel=0.01)  # positive: outward normals
    assert mesh.area == pytest.approx(4 * math.pi * radius ** 2, rel=0.01)
    np.testing.assert_allclose(np.linalg.norm(verts - centre.numpy(), axis=1), radius, atol=2 / resolution)


def test_grid_nodes_follow_linspace_and_ij_indexing():
    grid = evaluate_sdf_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], 5, block=2)
    axis = torch.linspace(-1, 1, 5)
    expected = axis[:, None, None] + 10 * axis[None, :, None] + 100 * axis[None, None, :]
    torch.testing.assert_close(grid.sdf, expected)


def test_no_surface_gives_empty_arrays():
    grid = evaluate_sdf_grid(lambda p: torch.ones(p.shape[0]), 8)
    verts, faces = marching_cubes(grid)
    assert verts.shape == (0, 3) and faces.shape == (0, 3)
