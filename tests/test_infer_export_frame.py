"""The official .obj/.glb export frame (spec 9.4), defined once in data/conventions.py."""
import numpy as np
import torch
import trimesh

from data import conventions as conv
from data.mesh import Mesh


def test_export_frame_is_the_official_rotation_sequence():
    # rotate +90 deg about x, then 180 deg about z, then negate x (spec section 9.4)
    rx = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    rz = trimesh.transformations.rotation_matrix(np.pi, [0, 0, 1])
    official = np.diag([-1.0, 1.0, 1.0, 1.0]) @ rz @ rx
    assert np.allclose(conv.EXPORT_FRAME_FROM_WORLD, official, atol=1e-12)
    assert np.linalg.det(conv.EXPORT_FRAME_FROM_WORLD[:3, :3]) < 0 and conv.EXPORT_FRAME_FLIPS_WINDING


def test_export_frame_keeps_normals_outward():
    box = trimesh.creation.box(extents=(0.2, 0.4, 0.6))
    mesh = Mesh.from_trimesh(box)
    out = mesh.transformed(torch.from_numpy(conv.EXPORT_FRAME_FROM_WORLD),
                           flip_winding=conv.EXPORT_FRAME_FLIPS_WINDING).to_trimesh()
    assert out.is_winding_consistent and out.volume > 0  # positive volume = outward normals
    assert np.allclose(out.extents, (0.2, 0.6, 0.4))  # world z (up) became y
