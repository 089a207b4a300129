"""The ``syncdreamer`` preset against the recorded outputs of SyncDreamer's published eval_mesh.py.

Fixture: ../shared/fixtures/eval_reference (8 mesh pairs; full-precision Chamfer / IoU, voxel counts, the
downsampled point clouds the script used). Tolerances: volume IoU and voxel counts must be **exact**; Chamfer
within 5e-6 + 1e-4 relative (the reference rasteriser is a numba stand-in with its own float rounding and the
reference cameras are float32-rounded, so a handful of points change voxel; every printed 5-decimal line
must still match); point counts within 0.1 %.
"""
import json

import numpy as np
import pytest
from PIL import Image

from evaluation import syncdreamer as sd
from evaluation.distances import nearest_distances
from data.mesh import Mesh

FIXTURE = "fixtures/eval_reference"
PAIRS = ["a_self", "b_rotz40", "c_scale1.1", "d_sphere_vs_cube", "d2_sphere_vs_cube_subdiv", "e_spot_vs_duck",
         "f_noise1pct", "g_chicken_shipped_gt"]


def load_results(root):
    return json.loads((root / "results" / "syncdreamer_eval_mesh_results.json").read_text())


def _ply_vertices(path):
    import trimesh

    return np.asarray(trimesh.load(path, process=False).vertices, np.float64)


def test_cameras_match_the_reference_poses(shared):
    ref = json.loads((shared(FIXTURE) / "results" / "cameras_syncdreamer16.json").read_text())
    cams = sd.cameras()
    w2c = cams.w2c[:, :3].numpy()
    np.testing.assert_allclose(w2c, np.array(ref["world_to_camera_3x4"]), atol=3e-7)
    np.testing.assert_allclose(cams.intrinsics[0].numpy(), np.array(ref["K"]))


@pytest.mark.parametrize("gt_name, folder", [("spot", "spot"), ("sphere", "sphere"), ("chicken", "chicken_shipped")])
def test_gt_points_from_depth_pngs(shared, gt_name, folder):
    root = shared(FIXTURE)
    ours = sd.gt_points_from_pngs(root / "gt_depth" / folder)
    ref = _ply_vertices(root / "points" / f"{gt_name}__gt_points.ply")
    assert len(ours) == len(ref)
    d = nearest_distances(ours, ref)
    assert np.mean(d < 1e-6) > 0.998  # all but a few voxel means are identical to float precision


@pytest.mark.parametrize("pair", PAIRS)
def test_eval_mesh_pair(shared, pair):
    root = shared(FIXTURE)
    r = load_results(root)[pair]
    gt = Mesh.load(root / r["gt_mesh"])
    pred = Mesh.load(root / r["pred_mesh"])
    depth_dir = root / r["gt_depth_dir"].split(" ")[0]
    out = sd.evaluate(pred.vertices.numpy(), pred.faces.numpy(), gt.vertices.numpy(), gt.faces.numpy(),
                      r["gt_name_argument"], depth_dir)
    inter = r["intermediates"]
    assert out.volume_iou == r["volume_iou"]
    assert (out.voxels_pred, out.voxels_gt, out.voxels_intersection, out.voxels_union) == (
        inter["voxels_pred"], inter["voxels_gt"], inter["voxels_intersection"], inter["voxels_union"])
    assert out.chamfer == pytest.approx(r["chamfer"], rel=1e-4, abs=5e-6)
    assert out.pred_to_gt == pytest.approx(inter["mean_dist_pred_to_gt"], rel=2e-4, abs=5e-6)
    assert out.gt_to_pred == pytest.approx(inter["mean_dist_gt_to_pred"], rel=2e-4, abs=5e-6)
    assert out.num_gt_points == inter["n_points_gt"]
    assert abs(out.num_pred_points - inter["n_points_pred"]) <= 1e-3 * inter["n_points_pred"]
    printed = r["printed_line_cli_run1"].split("\t")
    assert f"{out.chamfer:.5f}" == printed[1] and f"{out.volume_iou:.5f}" == printed[2]


def test_pred_points_match_the_scripts_cloud(shared):
    root = shared(FIXTURE)
    pred = Mesh.load(root / "meshes" / "spot_rotz40.ply")
    ours = sd.pred_points(pred.vertices.numpy(), pred.faces.numpy())
    ref = _ply_vertices(root / "points" / "b_rotz40__pred_points.ply")
    assert np.median(nearest_distances(ours, ref)) < 1e-6
    assert np.mean(nearest_distances(ours, ref) < 1e-4) > 0.995


def test_perspective_correct_rasteriser_matches_the_subdivided_cube(shared):
    # README: with 12 huge triangles, the script's screen-linear depth pushes points behind the faces; a
    # perspective-correct rasteriser gives the subdivided cube's (d2) point cloud instead.
    root = shared(FIXTURE)
    cube = Mesh.load(root / "meshes" / "cube.ply")
    depth = sd.render_depth_maps(cube.vertices.numpy(), cube.faces.numpy(), screen_linear=False)
    ours = sd.points_from_depth(depth, np.isfinite(depth))
    sphere_gt = _ply_vertices(root / "points" / "sphere__gt_points.ply")
    chamfer = (nearest_distances(ours, sphere_gt).mean() + nearest_distances(sphere_gt, ours).mean()) / 2
    results = load_results(root)
    assert chamfer == pytest.approx(results["d2_sphere_vs_cube_subdiv"]["chamfer"], rel=0.02)
    assert abs(chamfer - results["d_sphere_vs_cube"]["chamfer"]) > 0.03


def test_gt_depth_rendered_from_mesh_matches_the_pngs(shared):
    root = shared(FIXTURE)
    spot = Mesh.load(root / "meshes" / "spot.ply")
    v = sd.normalise_gt(spot.vertices.numpy(), "spot")
    codes = sd.encode_depth_png(sd.render_depth_maps(v, spot.faces.numpy(), screen_linear=False))
    ref = np.stack([np.asarray(Image.open(root / "gt_depth" / "spot" / f"{k:03d}-depth.png")) for k in range(16)])
    fg = ref < 65535
    assert np.mean((codes < 65535) == fg) > 0.9999
    both = fg & (codes < 65535)
    assert np.mean(np.abs(codes[both].astype(int) - ref[both].astype(int)) <= 1) > 0.999


def test_depth_png_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="000-depth.png"):
        sd.gt_points_from_pngs(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(ValueError, match="16-bit"):
        sd.read_depth_png(tmp_path / "x.png")


def test_gt_yaw_table():
    assert sd.GT_YAW_DEG["chicken"] == 270.0 and sd.GT_YAW_DEG["sofa"] == -90.0
    v = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1]])
    turned = sd.normalise_gt(v, "chicken")  # +x goes to +y after the script's -270 deg turn
    np.testing.assert_allclose(turned[0] - turned[1], [0, 1, 0], atol=1e-12)
