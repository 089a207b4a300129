"""UV atlas, texel rasterisation, gutter dilation and textured GLB / OBJ files (data/texture.py, Mesh.export)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from data.mesh import Mesh
from data.render import RenderConfig, render_mesh
from data.cameras import Cameras
from data.texture import _face_blocks, bake_texture, fill_gutters, rasterize_uv, uv_atlas, vertex_colour_fn

pytest.importorskip("xatlas")


def _sphere(subdivisions: int = 3) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.4)
    v = torch.tensor(tm.vertices, dtype=torch.float32)
    return Mesh(v, torch.tensor(tm.faces, dtype=torch.int64), (v / 0.8 + 0.5).clamp(0, 1))


def _position_colour(points, face, bary):  # a smooth colour field: RGB = position
    return (points / 0.8 + 0.5).clamp(0, 1)


def test_rasterize_one_triangle_covers_its_area_with_exact_barycentrics():
    size = 64
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # lower-left half of the atlas
    s = rasterize_uv(uv, np.array([[0, 1, 2]]), size, border=0.0)
    assert abs(len(s.index) - size * size / 2) <= size + 1 and s.inside.all()
    rows, cols = np.divmod(s.index, size)
    u, v = (cols + 0.5) / size, 1 - (rows + 0.5) / size
    np.testing.assert_allclose(s.bary @ uv, np.stack([u, v], 1), atol=1e-9)  # the point the texel centre sits on
    assert (u + v <= 1 + 1e-9).all()
    # conservative coverage adds the texels the diagonal edge crosses, clamped onto the triangle
    c = rasterize_uv(uv, np.array([[0, 1, 2]]), size)
    assert len(c.index) > len(s.index) and (~c.inside).sum() == len(c.index) - len(s.index)
    assert (c.bary >= 0).all() and np.allclose(c.bary.sum(1), 1)


def test_fill_gutters_copies_the_nearest_covered_texel():
    tex = np.zeros((8, 8, 3), np.uint8)
    covered = np.zeros((8, 8), bool)
    tex[1, 1], covered[1, 1] = 200, True
    tex[6, 6], covered[6, 6] = 50, True
    out = fill_gutters(tex, covered)
    assert out[0, 0, 0] == 200 and out[7, 7, 0] == 50 and out[2, 2, 0] == 200 and out[5, 5, 0] == 50
    assert set(np.unique(out)) == {50, 200}


def test_bake_texture_keeps_geometry_and_samples_the_colour_function():
    mesh = _sphere()
    out, stats = bake_texture(mesh, _position_colour, 256)
    assert out.texture.shape == (256, 256, 3) and out.uv.shape == (out.num_vertices, 2)
    assert out.num_faces == mesh.num_faces and out.num_vertices >= mesh.num_vertices
    atlas = uv_atlas(mesh.vertices.numpy(), mesh.faces.numpy(), 256)
    np.testing.assert_array_equal(out.faces.numpy(), atlas.faces)  # deterministic atlas
    # same triangles (seam vertices duplicated, positions and vertex colours carried over)
    np.testing.assert_allclose(out.vertices[out.faces].numpy(), mesh.vertices[mesh.faces].numpy())
    np.testing.assert_allclose(out.vertex_colors[out.faces].numpy(), mesh.vertex_colors[mesh.faces].numpy())
    assert 0.2 < stats.coverage < 1 and stats.texels_per_second > 0
    # the texel under every vertex holds the colour function at that vertex (one texel = 1/256 of the field)
    uv = out.uv.numpy()
    col = np.clip((uv[:, 0] * 256).astype(int), 0, 255)
    row = np.clip(((1 - uv[:, 1]) * 256).astype(int), 0, 255)
    err = np.abs(out.texture[row, col] / 255.0 - _position_colour(out.vertices, None, None).numpy())
    assert err.max() < 0.02
    # gutters are filled: no black texel although the colour field is never black here
    assert out.texture.sum(-1).min() > 0


def test_vertex_colour_fn_bakes_a_vertex_coloured_mesh():
    mesh = _sphere(2)
    out, _ = bake_texture(mesh, vertex_colour_fn(mesh.vertex_colors, mesh.faces.numpy()), 128)
    uv = out.uv.numpy()
    col = np.clip((uv[:, 0] * 128).astype(int), 0, 127)
    row = np.clip(((1 - uv[:, 1]) * 128).astype(int), 0, 127)
    assert np.abs(out.texture[row, col] / 255.0 - out.vertex_colors.numpy()).max() < 0.05


def _psnr(a, b) -> float:
    return float(10 * torch.log10(1 / ((torch.as_tensor(a) - torch.as_tensor(b)) ** 2).mean()))


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_textured_files_load_with_uvs_and_texture_and_render_like_the_vertex_colours(tmp_path, suffix):
    mesh = _sphere(4)
    textured, _ = bake_texture(mesh, _position_colour, 512)
    path = textured.export(tmp_path / f"mesh{suffix}")
    if suffix == ".obj":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
        assert "map_Kd mesh.png" in (tmp_path / "mesh.mtl").read_text()
        assert "Kd 1.00000000 1.00000000 1.00000000" in (tmp_path / "mesh.mtl").read_text()
    tm = trimesh.load(path, process=False, force="mesh")
    assert isinstance(tm.visual, trimesh.visual.TextureVisuals)
    assert tm.visual.uv is not None and tm.visual.uv.shape == (len(tm.vertices), 2)
    image = tm.visual.material.image if suffix == ".obj" else tm.visual.material.baseColorTexture
    assert image is not None and image.size == (512, 512)
    if suffix == ".glb":  # white factor: viewers multiply the texture by it
        np.testing.assert_allclose(np.asarray(tm.visual.material.baseColorFactor)[:3], 255)
    loaded = Mesh.load(path)
    np.testing.assert_array_equal(loaded.texture, textured.texture)
    np.testing.assert_allclose(loaded.uv.numpy(), textured.uv.numpy(), atol=1e-6)
    # renders of the file and of the vertex-coloured mesh agree (texture orientation survives the round trip)
    cams = Cameras.from_spherical([60.0, 90.0, 120.0, 90.0], [0.0, 90.0, 180.0, 270.0], 1.5, size_px=96)
    cfg = RenderConfig(shading="flat", normals=False)
    assert _psnr(render_mesh(loaded, cams, cfg).rgb, render_mesh(mesh, cams, cfg).rgb) > 35


def test_ply_of_a_textured_mesh_keeps_vertex_colours(tmp_path):
    textured, _ = bake_texture(_sphere(2), _position_colour, 64)
    loaded = Mesh.load(textured.export(tmp_path / "mesh.ply"))
    assert loaded.texture is None and loaded.vertex_colors is not None
    np.testing.assert_allclose(loaded.vertex_colors.numpy(), textured.vertex_colors.numpy(), atol=1 / 255 + 1e-6)


def test_large_meshes_are_charted_in_blocks_of_one_atlas():
    mesh = _sphere(3)  # 1280 faces in blocks of at most 200
    atlas = uv_atlas(mesh.vertices.numpy(), mesh.faces.numpy(), 256, block_faces=200)
    np.testing.assert_array_equal(atlas.vmapping[atlas.faces], mesh.faces.numpy())  # source face order kept
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1
    s = rasterize_uv(atlas.uv, atlas.faces, 256, border=0.0)
    blocks = _face_blocks(mesh.vertices.numpy(), mesh.faces.numpy(), 200)
    assert len(blocks) > 4 and sorted(np.concatenate(blocks)) == list(range(mesh.num_faces))
    per_block = [rasterize_uv(atlas.uv, atlas.faces[b], 256, border=0.0).index for b in blocks]
    all_texels = np.concatenate(per_block)
    assert len(np.unique(all_texels)) == len(all_texels)  # charts of different blocks do not overlap
    whole = rasterize_uv(*(lambda a: (a.uv, a.faces))(uv_atlas(mesh.vertices.numpy(), mesh.faces.numpy(), 256)),
                         256, border=0.0)
    assert len(s.index) > 0.5 * len(whole.index)  # the blocks' seams cost some packing density only
