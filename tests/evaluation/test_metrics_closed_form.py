"""Closed-form checks of the metrics core: concentric spheres, rotated copies, shifted cubes, open meshes."""
import numpy as np
import pytest
import trimesh

from evaluation import compare_point_clouds, occupancy_grid, sample_surface, volume_iou, voxel_downsample
from evaluation.alignment import euler_zyx, icp, kabsch, normalise_bbox
from evaluation.protocols import evaluate_sampled, load_protocol


def sphere_points(radius, count, seed):
    d = np.random.default_rng(seed).normal(size=(count, 3))
    return radius * d / np.linalg.norm(d, axis=1, keepdims=True)


@pytest.mark.parametrize("r1, r2", [(0.5, 0.55), (0.4, 0.3)])
def test_concentric_spheres_chamfer_and_fscore(r1, r2):
    gap = abs(r1 - r2)
    pred, gt = sphere_points(r1, 20_000, 0), sphere_points(r2, 20_000, 1)
    thresholds = (gap * 0.9, gap * 1.5)
    m = compare_point_clouds(pred, gt, thresholds)
    # every nearest distance is >= |r1 - r2|; dense samples make it tend to exactly |r1 - r2|
    assert gap <= m.pred_to_gt < gap * 1.02 and gap <= m.gt_to_pred < gap * 1.02
    assert m.chamfer == pytest.approx(gap, rel=2e-2)
    assert m.fscore[gap * 0.9] == 0.0  # nothing is closer than the gap
    assert m.fscore[gap * 1.5] == 1.0
    sq = compare_point_clouds(pred, gt, squared=True)
    assert sq.chamfer == pytest.approx(gap**2, rel=4e-2)


def test_fscore_partial_overlap_is_harmonic_mean():
    gt = np.zeros((4, 3))
    gt[:, 0] = [0, 1, 2, 3]
    pred = np.array([[0, 0, 0], [1, 0, 0], [10, 0, 0.0]])  # precision 2/3; gt points 0,1 matched (+ none else)
    m = compare_point_clouds(pred, gt, (0.5,))
    p, r = 2 / 3, 2 / 4
    assert m.precision[0.5] == pytest.approx(p) and m.recall[0.5] == pytest.approx(r)
    assert m.fscore[0.5] == pytest.approx(2 * p * r / (p + r))


def test_concentric_sphere_meshes_through_the_protocol():
    inner, outer = trimesh.creation.icosphere(5, 0.45), trimesh.creation.icosphere(5, 0.5)
    cfg = load_protocol("one2345", overrides=["normalisation=none", "alignment=none", "num_points=50000"])
    out = evaluate_sampled(inner.vertices, inner.faces, outer.vertices, outer.faces, cfg)
    assert out["chamfer"] == pytest.approx(0.05, rel=3e-2)
    assert out["fscore@0.05"] < 0.5  # most distances are just above 0.05 (strict test)
    # volume IoU of nested balls = (r1 / r2)^3 up to grid discretisation
    assert out["volume_iou"] == pytest.approx((0.45 / 0.5) ** 3, abs=0.03)


def asymmetric_mesh():
    a = trimesh.creation.capsule(height=0.6, radius=0.2)
    b = trimesh.creation.box((0.3, 0.2, 0.5))
    b.apply_translation((0.3, 0.1, 0.2))
    c = trimesh.creation.icosphere(2, 0.12)
    c.apply_translation((-0.1, 0.25, -0.3))
    m = trimesh.util.concatenate([a, b, c])
    return np.asarray(m.vertices), np.asarray(m.faces)


def rotation_error_deg(estimated, applied):
    return np.rad2deg(np.arccos(np.clip((np.trace(estimated @ applied) - 1) / 2, -1, 1)))


def test_rotated_copy_is_recovered_by_yaw_search_and_icp():
    v, f = asymmetric_mesh()
    applied = euler_zyx(137.0, 0.0, 0.0)
    out = evaluate_sampled(v @ applied.T + [0.1, -0.2, 0.05], f, v, f, load_protocol("one2345"))
    assert rotation_error_deg(np.array(out["alignment"]["rotation"]), applied) < 0.5
    assert out["fscore@0.05"] == 1.0
    assert out["volume_iou"] > 0.98


@pytest.mark.parametrize("angles", [(100.0, 35.0, -70.0)])
def test_rotated_copy_is_recovered_by_so3_search(angles):
    v, f = asymmetric_mesh()
    applied = euler_zyx(*angles)
    cfg = load_protocol("sf3d", overrides=["rotation_steps=8"])
    out = evaluate_sampled(v @ applied.T, f, v, f, cfg)
    assert rotation_error_deg(np.array(out["alignment"]["rotation"]), applied) < 1.0
    assert out["fscore@0.1"] == 1.0


def test_without_alignment_a_rotation_is_charged():
    v, f = asymmetric_mesh()
    cfg = load_protocol("one2345", overrides=["alignment=none"])
    out = evaluate_sampled(v @ euler_zyx(90.0, 0, 0).T, f, v, f, cfg)
    assert out["fscore@0.05"] < 0.8


def test_known_transform_is_used_instead_of_search():
    v, f = asymmetric_mesh()
    applied = euler_zyx(60.0, 0, 0)
    known = np.eye(4)
    known[:3, :3] = applied.T  # maps the prediction back into the GT frame
    out = evaluate_sampled(v @ applied.T, f, v, f, load_protocol("one2345"), known_transform=known)
    assert out["alignment"]["mode"] == "known"
    assert out["fscore@0.05"] == 1.0
    with pytest.raises(ValueError, match="known pred->GT transform"):
        evaluate_sampled(v, f, v, f, load_protocol("one2345", overrides=["alignment=known"]))


def test_kabsch_and_icp_recover_a_rigid_motion():
    pts = np.random.default_rng(3).normal(size=(500, 3)) * [1.0, 0.5, 0.2]
    rot, t = euler_zyx(10, -5, 7), np.array([0.05, -0.02, 0.03])
    r_est, t_est = kabsch(pts, pts @ rot.T + t)
    np.testing.assert_allclose(r_est, rot, atol=1e-10)
    np.testing.assert_allclose(t_est, t, atol=1e-10)
    rigid = icp(pts, pts @ rot.T + t, iterations=100)
    np.testing.assert_allclose(rigid.apply(pts), pts @ rot.T + t, atol=1e-6)


def box(lo, hi):
    b = trimesh.creation.box(np.subtract(hi, lo))
    b.apply_translation((np.asarray(lo) + np.asarray(hi)) / 2)
    return b


def test_cube_against_shifted_cube_volume_iou():
    # mesh2sdf grid at 64: samples k/32, k = -32..31. A box (-0.3, 0.3) holds k = -9..9 (19 per axis);
    # shifted by 0.2 along x: (-0.1, 0.5) holds k = -3..15 (19); the overlap k = -3..9 (13).
    a, b = box([-0.3] * 3, [0.3] * 3), box([-0.1, -0.3, -0.3], [0.5, 0.3, 0.3])
    occ_a, occ_b = occupancy_grid(a.vertices, a.faces), occupancy_grid(b.vertices, b.faces)
    assert occ_a.sum() == 19**3 and occ_b.sum() == 19**3
    assert volume_iou(occ_a, occ_b) == pytest.approx(13 / 25)
    assert volume_iou(occ_a, occ_b) == pytest.approx(0.4 / 0.8, abs=0.03)  # continuous value 0.5


def test_box_faces_on_sample_planes_count_as_empty():
    cube = box([-0.5] * 3, [0.5] * 3)
    assert occupancy_grid(cube.vertices, cube.faces).sum() == 31**3
    bigger = box([-0.5 - 1e-6] * 3, [0.5 + 1e-6] * 3)
    assert occupancy_grid(bigger.vertices, bigger.faces).sum() == 33**3


def test_open_mesh_is_handled():
    cube = box([-0.3] * 3, [0.3] * 3)
    closed = occupancy_grid(cube.vertices, cube.faces)
    normals = cube.face_normals
    no_top = cube.faces[normals[:, 2] < 0.5]  # hole in the +z face: no x-line passes through it
    np.testing.assert_array_equal(occupancy_grid(cube.vertices, no_top), closed)
    no_side = cube.faces[normals[:, 0] < 0.5]  # hole facing +x: parity breaks only along x-lines
    occ = occupancy_grid(cube.vertices, no_side)
    assert occ.shape == closed.shape and (occ & closed).sum() == closed.sum()


def test_occupancy_rejects_bad_faces():
    with pytest.raises(ValueError, match="vertices"):
        occupancy_grid(np.zeros((3, 3)), np.array([[0, 1, 5]]))


def test_sampling_is_on_the_surface_and_seeded():
    s = trimesh.creation.icosphere(4, 0.5)
    pts = sample_surface(s.vertices, s.faces, 5000, seed=1)
    assert np.abs(np.linalg.norm(pts, axis=1) - 0.5).max() < 2e-3
    np.testing.assert_array_equal(pts, sample_surface(s.vertices, s.faces, 5000, seed=1))
    with pytest.raises(ValueError, match="zero surface area"):
        sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)


def test_voxel_downsample_averages_cells():
    pts = np.array([[0.0, 0, 0], [0.004, 0, 0], [0.02, 0, 0], [0.021, 0.002, 0]])
    # grid anchored at min - 0.005: cells [-0.005, 0.005), ..., [0.015, 0.025)
    out = voxel_downsample(pts, 0.01)
    np.testing.assert_allclose(out, [[0.002, 0, 0], [0.0205, 0.001, 0]])


def test_normalise_bbox():
    v = np.array([[1.0, 2, 3], [3, 3, 3.5]])
    n, scale, centre = normalise_bbox(v, 1.0)
    np.testing.assert_allclose(n.max(0) - n.min(0), [1.0, 0.5, 0.25])
    np.testing.assert_allclose((n.max(0) + n.min(0)) / 2, 0, atol=1e-12)
