"""CPU renderer: depth vs ray casting, back-projection onto the surface, texture placement, light, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data import conventions as conv
from data.assets import load_asset
from data.cameras import Cameras
from data.config import ConfigError, load_config
from data.mesh import Mesh
from data.render import MeshRenderer, RenderConfig, pixel_centers, render_mesh
from data.render.__main__ import main as render_cli
from data.render.io import load_render, save_render
from data.views import Views

MESHES = "data/meshes"
REAL = ["hope/bbq_sauce/bbq_sauce.obj", "khronos/CesiumMilkTruck/CesiumMilkTruck.glb"]


def _surface_distance(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.double().numpy(), mesh.faces.numpy(), process=False)
    return trimesh.proximity.ProximityQuery(tm).on_surface(points)[1]


def _odd_cameras() -> Cameras:
    """Rig views plus a non-square camera with an off-centre principal point (tests K handling)."""
    rig = Cameras.from_spherical([60.0, 100.0], [30.0, 200.0], conv.CAMERA_RADIUS, dtype=torch.float64)
    c2w = Cameras.from_spherical([75.0], [120.0], 1.5, dtype=torch.float64).c2w
    k = torch.tensor([[[230.0, 0.0, 110.0], [0.0, 250.0, 70.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    return rig, Cameras(c2w, k, width=200, height=160)


@pytest.mark.parametrize("relative", REAL)
def test_raster_depth_matches_ray_casting(relative, shared):
    mesh = load_asset(shared(MESHES) / relative)
    renderer = MeshRenderer(mesh, RenderConfig(supersample=1, normals=False, shading="flat"))
    for cams in _odd_cameras():
        out = renderer.render(cams)
        cast = renderer.raycaster.render(cams)
        n, h, w = len(cams), cams.height, cams.width
        ref = cast.depth.reshape(n, h, w)
        hit = cast.hit.reshape(n, h, w)
        raster = out.depth[:, 0].double()
        # silhouettes agree (a pixel may flip only where an edge passes exactly through its centre)
        assert ((raster > 0) != hit).float().mean() < 1e-3
        # sampled pixels away from depth discontinuities: within 1e-3 of the object size
        pad = torch.nn.functional.pad(ref[:, None], (1, 1, 1, 1), value=0.0)[:, 0]
        neigh = torch.stack([pad[:, 1:-1, :-2], pad[:, 1:-1, 2:], pad[:, :-2, 1:-1], pad[:, 2:, 1:-1]])
        smooth = hit & ((neigh - ref).abs() < 0.02).all(0) & (raster > 0)
        idx = torch.nonzero(smooth)
        sample = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))[:3000]]
        err = (raster - ref)[sample[:, 0], sample[:, 1], sample[:, 2]].abs()
        assert len(sample) > 1000
        assert float(err.max()) < 1e-3 * conv.OBJECT_BBOX_SIZE, float(err.max())
    renderer.close()


@pytest.mark.parametrize("relative", ["hope/bbq_sauce/bbq_sauce.obj", "khronos/Duck/Duck.glb"])
def test_back_projected_silhouette_lands_on_surface(relative, shared, tmp_path):
    """Every pixel with depth, back-projected through the cameras stored on disk, lies on the mesh."""
    mesh = load_asset(shared(MESHES) / relative)
    cams = Cameras.from_spherical([50.0, 95.0, 130.0], [10.0, 140.0, 260.0], dtype=torch.float64,
                                  focal_px=140.0, size_px=128)
    out = render_mesh(mesh, cams, RenderConfig(supersample=3, normals=False))
    loaded, names = load_render(save_render(out, tmp_path / "r"))
    assert names == ["000", "001", "002"]
    depth = loaded.depth[:, 0].reshape(len(cams), -1).double()
    pix = pixel_centers(128, 128).expand(len(cams), -1, -1)
    points = loaded.cameras.unproject(pix, depth)[depth > 0].numpy()
    # the silhouette: alpha-covered pixels are where depth is (up to sub-pixel edge coverage)
    covered = loaded.alpha[:, 0].reshape(len(cams), -1)
    assert (depth[covered >= 1.0] > 0).all()
    assert len(points) > 3000
    dist = _surface_distance(mesh, points)
    assert dist.max() < 1e-3 * conv.OBJECT_BBOX_SIZE, dist.max()
    assert np.median(dist) < 1e-4


def test_normals_match_ray_casting_and_face_the_camera(shared):
    mesh = load_asset(shared(MESHES) / "khronos/Duck/Duck.glb")
    cams = Cameras.from_spherical([60.0, 110.0], [0.0, 200.0], dtype=torch.float64, focal_px=140.0, size_px=128)
    with MeshRenderer(mesh, RenderConfig(supersample=1, shading="flat")) as renderer:
        out = renderer.render(cams)
        cast = renderer.raycaster.render(cams)
    raster = out.normals.permute(0, 2, 3, 1).reshape(len(cams), -1, 3).double()
    both = cast.hit & (out.depth[:, 0].reshape(len(cams), -1) > 0)
    cos = (raster * cast.normals).sum(-1)[both]
    assert float(cos.quantile(0.01)) > np.cos(np.deg2rad(3.0))  # 8-bit encoded normals: a few degrees at most
    _, dirs = cams.pixel_rays(pixel_centers(128, 128).expand(len(cams), -1, -1))
    assert float(((cast.normals * dirs).sum(-1)[cast.hit] < 0).double().mean()) > 0.99  # outward, towards camera


# ---------------------------------------------------------------------- texture placement
FACES = {  # outward axis -> (corner ordering in the face plane: origin, +u direction, +v direction)
    "+x": ((1, -1, -1), (0, 2, 0), (0, 0, 2)),
    "-x": ((-1, 1, -1), (0, -2, 0), (0, 0, 2)),
    "+y": ((1, 1, -1), (-2, 0, 0), (0, 0, 2)),
    "-y": ((-1, -1, -1), (2, 0, 0), (0, 0, 2)),
    "+z": ((-1, -1, 1), (2, 0, 0), (0, 2, 0)),
    "-z": ((-1, 1, -1), (2, 0, 0), (0, -2, 0)),
}
CELL = 16  # texture pixels per quadrant


def _quadrant_colour(face: int, qu: int, qv: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + 4 * face + 2 * qu + qv)
    return rng.integers(20, 236, 3).astype(np.uint8)


def _textured_cube() -> Mesh:
    """Side-0.5 cube; face k uses texture cell (k % 3, k // 3) of a 3 x 2 grid, 2 x 2 coloured quadrants each."""
    tex = np.zeros((2 * 2 * CELL, 3 * 2 * CELL, 3), np.uint8)
    verts, uvs, faces = [], [], []
    for k, (origin, du, dv) in enumerate(FACES.values()):
        col, row = k % 3, k // 3
        for qu in range(2):
            for qv in range(2):
                # texture rows grow downwards while v grows upwards (uv origin bottom-left)
                r0 = (2 - row) * 2 * CELL - (qv + 1) * CELL
                c0 = col * 2 * CELL + qu * CELL
                tex[r0:r0 + CELL, c0:c0 + CELL] = _quadrant_colour(k, qu, qv)
        o, du, dv = (np.asarray(a, np.float64) * 0.25 for a in (origin, du, dv))
        corners = [o, o + du, o + du + dv, o + dv]
        u0, v0 = col / 3.0, row / 2.0
        cuv = [(u0, v0), (u0 + 1 / 3, v0), (u0 + 1 / 3, v0 + 0.5), (u0, v0 + 0.5)]
        base = len(verts)
        verts += corners
        uvs += cuv
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return Mesh(torch.tensor(np.array(verts), dtype=torch.float32), torch.tensor(faces),
                uv=torch.tensor(uvs, dtype=torch.float32), texture=tex)


def test_cube_texture_lands_where_uvs_put_it():
    cube = _textured_cube()
    # two cameras that together see all six faces
    cams = Cameras.from_spherical([55.0, 125.0], [45.0, 225.0], 1.6, dtype=torch.float64)
    out = render_mesh(cube, cams, RenderConfig(shading="flat", supersample=1, normals=False))
    checked = 0
    for k, (axis, (origin, du, dv)) in enumerate(FACES.items()):
        o, du, dv = (torch.tensor(a, dtype=torch.float64) * 0.25 for a in (origin, du, dv))
        for qu in range(2):
            for qv in range(2):
                point = o + (0.25 + 0.5 * qu) * du + (0.25 + 0.5 * qv) * dv
                normal = torch.zeros(3, dtype=torch.float64)
                normal["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
                for i in range(len(cams)):
                    if float((cams.centers[i] - point) @ normal) <= 0:  # face not visible from this camera
                        continue
                    uv, _ = cams[i].project(point[None])
                    u, v = (int(x) for x in uv[0, 0])
                    got = (out.rgb[i, :, v, u] * 255).round().numpy()
                    assert np.abs(got - _quadrant_colour(k, qu, qv)).max() <= 2, (axis, qu, qv, got)
                    checked += 1
    assert checked == 24  # every quadrant of every face seen exactly once


def test_light_settings_change_shading():
    cube = _textured_cube()
    cams = Cameras.from_spherical([55.0], [45.0], 1.6, dtype=torch.float64)
    flat = render_mesh(cube, cams, RenderConfig(shading="flat", supersample=1, normals=False))
    ambient = render_mesh(cube, cams, RenderConfig(light="none", ambient=0.5, supersample=1, normals=False))
    fg = flat.alpha[0, 0] > 0
    assert torch.allclose(ambient.rgb[0][:, fg], 0.5 * flat.rgb[0][:, fg], atol=1.5 / 255)
    # a world light from +x: the +x face is brighter than the -y face (same albedo statistics ~ compare ratio)
    lit = render_mesh(cube, cams, RenderConfig(light="world", light_direction=[-1.0, 0.0, 0.0], ambient=0.2,
                                               light_intensity=0.8, supersample=1))
    n = lit.normals[0]
    ratio = lit.rgb[0].sum(0) / flat.rgb[0].sum(0).clamp_min(1e-3)
    facing_x = (n[0] > 0.99) & fg
    facing_y = (n[1] < -0.99) & fg
    assert torch.allclose(ratio[facing_x], torch.tensor(1.0), atol=0.03)
    assert torch.allclose(ratio[facing_y], torch.tensor(0.2), atol=0.03)


def test_render_config_rejects_unknown_keys_and_values():
    with pytest.raises(ConfigError):
        load_config(RenderConfig, {"shadows": True})
    with pytest.raises((ConfigError, ValueError)):
        load_config(RenderConfig, {"supersample": 2})


def test_cli_writes_views_and_cameras(tmp_path, shared):
    mesh = shared(MESHES) / "khronos/Duck/Duck.glb"
    out = tmp_path / "duck"
    code = render_cli([str(mesh), "--polar", "60", "--azimuth", "0", "90", "--size", "64", "--out", str(out),
                       "--set", "supersample=1"])
    assert code == 0
    views = Views.load(out)
    assert views.images.shape == (2, 3, 64, 64) and views.names == ("000", "001")
    meta = json.loads((out / "cameras.json").read_text())
    assert [round(v["azimuth_deg"], 6) for v in meta["views"]] == [0.0, 90.0]
    assert meta["up_axis"] == "+y" and meta["config"]["supersample"] == 1
    assert views.cameras.intrinsics[0, 0, 0] == pytest.approx(conv.FOCAL_PX * 64 / conv.IMAGE_SIZE)
    assert (views.images < 0.99).any() and views.images[:, :, 0, 0].min() > 0.99  # object on white


def test_cli_reports_bad_mesh(tmp_path, capsys):
    bad = tmp_path / "bad.obj"
    bad.write_bytes(b"")
    assert render_cli([str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "bad.obj" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _masks(folder):
    """(N, H, W) bool foreground of a render folder (its ``*_mask.png`` files)."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(f)) > 0 for f in sorted(folder.glob("*_mask.png"))])


@pytest.mark.parametrize("relative", ["khronos/BoxTextured/BoxTextured.glb", "hope/milk/textured.obj"])
def test_cli_default_rig_frames_the_whole_object(relative, tmp_path, shared):
    """`python -m data.render MESH --polar 90` at the default rig: the object as a preprocessed input frames it
    (at most 75 % of the image, nothing on the border); `--framing bbox` (longest side 1) fills past the frame."""
    mesh = shared(MESHES) / relative
    args = [str(mesh), "--polar", "90", "--azimuth", "0", "45", "90", "--size", "64", "--up-axis", "+y",
            "--set", "supersample=1"]
    assert render_cli([*args, "--out", str(tmp_path / "rig")]) == 0
    fg = _masks(tmp_path / "rig")
    assert fg.any((1, 2)).all()
    assert not (fg[:, 0].any() or fg[:, -1].any() or fg[:, :, 0].any() or fg[:, :, -1].any())
    assert len(fg) == 3
    span = max(int(fg.any(2).sum(1).max()), int(fg.any(1).sum(1).max()))
    assert span <= conv.INPUT_OBJECT_FILL * 64 + 1
    meta = json.loads((tmp_path / "rig" / "cameras.json").read_text())
    assert meta["framing"] == "rig"
    assert render_cli([*args, "--framing", "bbox", "--out", str(tmp_path / "bbox")]) == 0
    fg = _masks(tmp_path / "bbox")
    assert fg[:, 0].any() or fg[:, -1].any() or fg[:, :, 0].any() or fg[:, :, -1].any()
