"""Asset loading: named errors for bad files, normalisation, declared up axes, multi-part scenes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data import conventions as conv
from data.assets import (
    AssetCorruptError,
    AssetEmptyError,
    AssetNonFiniteError,
    AssetNotFoundError,
    load_asset,
    load_asset_with_info,
    up_axis_rotation,
)
from data.mesh import Mesh, MeshError

MESHES = "data/meshes"


def _write_obj(path, vertices, faces):
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def _asymmetric_mesh() -> Mesh:
    """A tetrahedron with distinct extents along x, y, z."""
    v = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return Mesh(v, f)


# ---------------------------------------------------------------------- named errors
def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.glb"
    with pytest.raises(AssetNotFoundError, match="nope.glb"):
        load_asset(path)


def test_empty_file_is_named(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_bytes(b"")
    with pytest.raises(AssetEmptyError, match="empty.obj"):
        load_asset(path)


def test_obj_without_faces_is_empty(tmp_path):
    path = tmp_path / "points.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(AssetEmptyError, match="points.obj"):
        load_asset(path)


def test_corrupt_glb_is_named(tmp_path):
    path = tmp_path / "broken.glb"
    path.write_bytes(b"glTF" + bytes(range(256)) * 4)
    with pytest.raises(AssetCorruptError, match="broken.glb"):
        load_asset(path)


def test_truncated_real_glb_is_corrupt(tmp_path, shared):
    data = (shared(MESHES) / "khronos/Duck/Duck.glb").read_bytes()
    path = tmp_path / "truncated.glb"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(AssetCorruptError, match="truncated.glb"):
        load_asset(path)


def test_nan_vertices_are_named(tmp_path):
    path = _write_obj(tmp_path / "nan.obj", [(0, 0, 0), (1, 0, 0), ("nan", 1, 0)], [(0, 1, 2)])
    with pytest.raises(AssetNonFiniteError, match="nan.obj"):
        load_asset(path)


def test_asset_errors_are_mesh_errors():
    for cls in (AssetCorruptError, AssetEmptyError, AssetNonFiniteError, AssetNotFoundError):
        assert issubclass(cls, MeshError)


def test_bad_up_axis_rejected(tmp_path):
    path = _write_obj(tmp_path / "t.obj", [(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1, 2)])
    with pytest.raises(ValueError, match="up_axis"):
        load_asset(path, up_axis="up")


# ---------------------------------------------------------------------- frames
@pytest.mark.parametrize("axis", ["+x", "-x", "+y", "-y", "+z", "-z"])
def test_up_axis_rotation_is_proper_and_maps_axis_to_z(axis):
    r = up_axis_rotation(axis)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    source = np.zeros(3)
    source["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    assert np.allclose(r @ source, [0.0, 0.0, 1.0])


def test_same_object_saved_with_other_up_axes_loads_identically(tmp_path):
    mesh = _asymmetric_mesh()
    reference = load_asset(mesh.export(tmp_path / "z.obj"), up_axis="+z")
    for axis in ("+y", "-x"):
        # store the object as a file whose up axis is `axis`: inverse of the loader's rotation
        to_file = torch.as_tensor(up_axis_rotation(axis).T, dtype=torch.float32)
        m = torch.eye(4)
        m[:3, :3] = to_file
        path = mesh.transformed(m).export(tmp_path / f"{axis[1]}.obj")
        loaded = load_asset(path, up_axis=axis)
        assert torch.allclose(loaded.vertices, reference.vertices, atol=1e-6)


def test_normalisation_uses_project_constant(tmp_path):
    mesh = _asymmetric_mesh()
    loaded = load_asset(mesh.export(tmp_path / "t.obj"), up_axis="+z")
    lo, hi = loaded.bounds()
    assert torch.isclose((hi - lo).max(), torch.tensor(conv.OBJECT_BBOX_SIZE))
    assert torch.allclose(lo + hi, torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize(
    "relative",
    ["khronos/CesiumMilkTruck/CesiumMilkTruck.glb", "khronos/Avocado/glTF/Avocado.gltf", "hope/milk/textured.obj"],
)
def test_real_assets_are_normalised_and_textured(relative, shared):
    mesh, info = load_asset_with_info(shared(MESHES) / relative)
    lo, hi = mesh.bounds()
    assert abs(float((hi - lo).max()) - conv.OBJECT_BBOX_SIZE) < 1e-5
    assert torch.allclose(lo + hi, torch.zeros(3), atol=1e-5)
    assert mesh.texture is not None and mesh.uv is not None and mesh.uv.shape == (mesh.num_vertices, 2)
    assert info.up_axis == ("+y" if relative.endswith((".glb", ".gltf")) else "+z")


def test_multi_part_scene_is_flattened_with_instances(shared):
    """The truck: 4 meshes, the wheel mesh instanced twice -> 5 parts, all faces kept, one packed texture."""
    import trimesh

    path = shared(MESHES) / "khronos/CesiumMilkTruck/CesiumMilkTruck.glb"
    scene = trimesh.load(path, force="scene")
    expected_faces = sum(len(scene.geometry[scene.graph[n][1]].faces) for n in scene.graph.nodes_geometry)
    mesh, info = load_asset_with_info(path)
    assert info.num_parts == len(scene.graph.nodes_geometry) == 5
    assert mesh.num_faces == expected_faces
    assert mesh.texture.ndim == 3 and max(mesh.texture.shape[:2]) <= 2048


def _cap_to_body_width(mesh: Mesh) -> float:
    """Horizontal extent of the top 15 % of an object over that of its middle slice."""
    v = mesh.vertices.double()
    z = v[:, 2]
    top = v[z > z.max() - 0.15 * (z.max() - z.min())]
    middle = v[(z - (z.max() + z.min()) / 2).abs() < 0.05]
    width = lambda p: float((p[:, :2].max(0).values - p[:, :2].min(0).values).max())  # noqa: E731
    return width(top) / width(middle)


def test_gltf_y_up_and_obj_z_up_bottles_come_out_upright(tmp_path, shared):
    """A +Z-up OBJ bottle and a glTF (+Y-up) bottle: both tall along world z with the narrow cap on top."""
    root = shared(MESHES)
    bbq = load_asset(root / "hope/bbq_sauce/bbq_sauce.obj", up_axis="+z")
    # the ketchup scan is stored +Y up: written as GLB unchanged it is a correct (+Y-up) glTF file
    raw = load_asset(root / "hope/ketchup/textured.obj", up_axis="+z", normalize=False)
    glb = raw.export(tmp_path / "ketchup.glb")
    ketchup, info = load_asset_with_info(glb)  # auto: glTF -> +Y up
    assert info.up_axis == "+y"
    for mesh in (bbq, ketchup):
        extent = mesh.bounds()[1] - mesh.bounds()[0]
        assert int(extent.argmax()) == 2, f"not tall along z: extent {extent.tolist()}"
        assert _cap_to_body_width(mesh) < 0.8
    # the same file read with the wrong up axis lies on its side
    lying = load_asset(glb, up_axis="+z")
    assert int((lying.bounds()[1] - lying.bounds()[0]).argmax()) != 2


def test_scene_mixing_texture_and_vertex_colours_keeps_both_colours(tmp_path):
    import trimesh
    from PIL import Image

    box = trimesh.creation.box()
    box.visual = trimesh.visual.TextureVisuals(uv=np.full((len(box.vertices), 2), 0.5),
                                               image=Image.new("RGB", (4, 4), (200, 10, 10)))
    ball = trimesh.creation.icosphere(2)
    ball.apply_translation([3.0, 0.0, 0.0])
    ball.visual.vertex_colors = [0, 255, 0, 255]
    path = tmp_path / "mixed.glb"
    trimesh.Scene([box, ball]).export(path)
    mesh, info = load_asset_with_info(path, up_axis="+z")
    assert info.num_parts == 2 and mesh.vertex_colors is not None
    on_ball = mesh.vertices[:, 0] > 0.0  # the ball sits at +x after centring
    assert torch.allclose(mesh.vertex_colors[on_ball], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(mesh.vertex_colors[~on_ball], torch.tensor([200, 10, 10]) / 255.0, atol=1e-6)


def test_up_axis_help_says_which_shared_objs_need_plus_y(capsys):
    """``--help`` of both render commands says the HOPE / Keenan Crane OBJs are +Y up (and bbq_sauce is not)."""
    import importlib.util
    from pathlib import Path

    from data.render.__main__ import parse_args as render_args

    script = Path(__file__).resolve().parents[2] / "scripts" / "render_dataset.py"
    spec = importlib.util.spec_from_file_location("render_dataset_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for parse in (render_args, module.parse_args):
        with pytest.raises(SystemExit):
            parse(["--help"])
        text = " ".join(capsys.readouterr().out.split())
        for words in ("--up-axis +y", "HOPE", "Keenan Crane", "bbq_sauce"):
            assert words in text, f"{words!r} missing from --help"
