"""Reconstructor contract on the tiny config (random weights) and the official frame handling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data import layout
from data.cameras import Cameras
from data.config import ConfigError, load_config
from data.mesh import Mesh
from data.views import Views
from reconstruction import ReconstructionConfig, Reconstructor, SceneInputs
from reconstruction.cost_volume import active_voxels
from reconstruction.meshing import marching_cubes

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
SIZE = 32  # the 256 px rig scaled by 1/8 keeps the tests fast


def tiny_config(**overrides) -> ReconstructionConfig:
    return load_config(ReconstructionConfig, ROOT / "configs/reconstruction/tiny.yaml", overrides=[
        "device=cpu", *[f"{k}={v}" for k, v in overrides.items()]])


def rig(polar: float, size: int = SIZE) -> tuple[Cameras, Cameras]:
    """Sources (32 nearby views) and reference (first-stage view 0) at ``size`` px."""
    scale = size / 256

    def resize(c: Cameras) -> Cameras:
        k = c.intrinsics.clone()
        k[:, :2] *= scale
        return Cameras(c.c2w, k, size, size)

    return resize(layout.cameras_for(layout.all_nearby_views(polar))), resize(layout.cameras_for(layout.schedule(polar)[:1]))


def synthetic_views(polar: float = 75.0) -> tuple[Views, Cameras]:
    sources, reference = rig(polar)
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(len(sources), 3, SIZE, SIZE, generator=gen)
    return Views(images, sources, names=tuple(v.name for v in layout.all_nearby_views(polar))), reference


@pytest.fixture(scope="module")
def tiny_run():
    views, reference = synthetic_views()
    rec = Reconstructor.from_config(tiny_config())
    return rec, views, reference, rec.reconstruct(views, reference)


def test_tiny_reconstruction_outputs(tiny_run):
    rec, views, reference, out = tiny_run
    mesh = out.mesh
    assert isinstance(mesh, Mesh) and mesh.num_faces > 0
    assert mesh.vertex_colors.shape == (mesh.num_vertices, 3)
    assert float(mesh.vertex_colors.min()) >= 0 and float(mesh.vertex_colors.max()) <= 1
    assert out.sdf.resolution == (32, 32, 32) and out.sdf.frame == "normalised"
    # the mesh lives in the world frame: mapping it back lands on the zero level set of the returned grid
    verts, faces = marching_cubes(out.sdf)
    torch.testing.assert_close(out.frame.points_to_normalised(mesh.vertices.double()), torch.from_numpy(verts),
                               atol=1e-5, rtol=0)
    assert np.array_equal(mesh.faces.numpy(), faces)
    torch.testing.assert_close(out.frame.ref_c2w, reference.c2w[0].double())


def test_mesh_exports_and_reloads(tiny_run, tmp_path):
    mesh = tiny_run[3].mesh
    path = mesh.export(tmp_path / "mesh.ply")
    back = Mesh.load(path)
    assert back.num_vertices == mesh.num_vertices
    np.testing.assert_allclose(back.vertex_colors.numpy(), np.floor(mesh.vertex_colors.numpy() * 255) / 255,
                               atol=1e-6)


@pytest.mark.slow
def test_chunking_does_not_change_results(tiny_run):
    rec, views, reference, out = tiny_run
    enc = rec.encode(SceneInputs.from_views(views, reference))
    pts = out.frame.points_to_normalised(out.mesh.vertices[:40].double()).float()
    small = Reconstructor(rec.model, tiny_config(point_chunk=7, colour_chunk=5, sdf_block=11))
    torch.testing.assert_close(small.colours(enc, pts), rec.colours(enc, pts))
    torch.testing.assert_close(small.sdf_volume(enc, 12, "dense").sdf, rec.sdf_volume(enc, 12, "dense").sdf)


@pytest.mark.slow
def test_same_seed_same_weights_and_mesh_resolution_argument(tiny_run):
    rec, views, reference, _ = tiny_run
    other = Reconstructor.from_config(tiny_config())
    for (k, a), (_, b) in zip(rec.model.state_dict().items(), other.model.state_dict().items()):
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            torch.testing.assert_close(a, b, msg=k)
    out = other.reconstruct(views, reference, mesh_resolution=20)
    assert out.sdf.resolution == (20, 20, 20)


def test_bad_inputs_fail_clearly():
    views, reference = synthetic_views()
    with pytest.raises(ValueError, match="exactly 1 camera"):
        SceneInputs.from_views(views, Cameras.cat([reference, reference]))
    with pytest.raises(ValueError, match="at least 2 source views"):
        SceneInputs.from_views(views.select([0]), reference)
    with pytest.raises(ConfigError, match="mesh_resolution"):
        Reconstructor.from_config(ReconstructionConfig(mesh_resolution=2))


@pytest.mark.parametrize("polar", [90, 60])
def test_inputs_from_views_match_the_official_loader(shared, polar):
    """World-frame views + reference camera -> the loader's normalised tensors and the same active voxels."""
    ref = np.load(shared("fixtures/one2345_parity/recon") / f"recon_polar{polar:03d}.npz")
    sources, reference = rig(polar, 256)
    images = torch.from_numpy(ref["src_images_u8"]).permute(0, 3, 1, 2).float() / 255
    inputs = SceneInputs.from_views(Views(images, sources), reference)
    np.testing.assert_allclose(inputs.w2cs, ref["in_w2cs"], atol=1e-6)
    np.testing.assert_allclose(inputs.intrinsics, ref["in_intrinsics"])
    np.testing.assert_allclose(inputs.proj_mats, ref["in_affine_mats"], rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(inputs.frame.scale_mat, ref["in_scale_mat"], atol=1e-6)
    np.testing.assert_allclose(inputs.frame.ref_c2w, ref["in_trans_mat"], atol=1e-6)
    coords = active_voxels(96, 0.02105263, inputs.proj_mats, 256, 256).numpy()
    occ = np.zeros((96,) * 3, bool)
    occ[coords[:, 0], coords[:, 1], coords[:, 2]] = True
    official = np.unpackbits(ref["occupancy_packbits"])[: 96 ** 3].reshape((96,) * 3).astype(bool)
    assert np.array_equal(occ, official)
    # output frame: the official mesh.ply vertices are the marching-cubes vertices mapped to the world
    world = inputs.frame.points_to_world(torch.from_numpy(ref["r64_mc_vertices_normalized"]).double())
    assert world.shape == ref["r64_meshply_vertices_world"].shape  # no vertex was merged in this export
    np.testing.assert_allclose(world.numpy(), ref["r64_meshply_vertices_world"], atol=1e-5)
    colours_u8 = np.floor(ref["r64_vertex_rgb_float"] * 255).astype(np.uint8)
    assert np.array_equal(colours_u8, ref["r64_meshply_vertex_colors_rgba_u8"][:, :3])
