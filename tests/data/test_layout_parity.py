"""The view layout and reconstruction frames reproduce the official pose.json and loader cameras."""
import json

import numpy as np
import pytest
import torch

from data import layout
from data.cameras import Cameras
from data.reconstruction_frame import ReconstructionFrame, affine_mats, near_far

POLARS = [20, 30, 45, 60, 75, 76, 90, 105, 120, 149]


@pytest.mark.parametrize("polar", POLARS)
def test_pose_json_matches_official(shared, polar):
    ref = json.loads((shared("fixtures/one2345_parity/cameras") / f"pose_polar{polar:03d}.json").read_text())
    ours = layout.pose_json(polar)
    assert list(ours["c2ws"]) == list(ref["c2ws"])
    np.testing.assert_allclose(ours["intrinsics"], ref["intrinsics"], atol=1e-12)
    np.testing.assert_allclose(ours["near_far"], ref["near_far"], atol=1e-12)
    for key in ref["c2ws"]:
        np.testing.assert_allclose(ours["c2ws"][key], ref["c2ws"][key], atol=1e-6, err_msg=key)


@pytest.mark.parametrize("polar", POLARS)
def test_reconstruction_cameras_match_official(shared, polar):
    ref = np.load(shared("fixtures/one2345_parity/cameras") / f"cameras_polar{polar:03d}.npz")
    views = layout.schedule(polar)
    sources = layout.cameras_for(layout.all_nearby_views(polar), torch.float64)
    reference = layout.cameras_for(views[:1], torch.float64)
    assert [f"{v.name}.png" for v in layout.all_nearby_views(polar)] == list(ref["src_img_ids"])
    frame = ReconstructionFrame.from_cameras(reference, sources)
    np.testing.assert_allclose(frame.scale_mat, ref["scale_mat"], atol=1e-5)
    np.testing.assert_allclose(frame.ref_c2w, ref["trans_mat"], atol=1e-6)
    src = frame.cameras_to_normalised(sources)
    np.testing.assert_allclose(src.c2w, ref["src_c2ws"], atol=1e-5)
    np.testing.assert_allclose(src.w2c, ref["src_w2cs"], atol=1e-5)
    np.testing.assert_allclose(src.intrinsics, ref["src_intrinsics"], atol=1e-6)
    np.testing.assert_allclose(affine_mats(src), ref["src_affine_mats"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(near_far(src), ref["src_near_fars"], atol=1e-5)
    query = frame.cameras_to_normalised(reference)
    np.testing.assert_allclose(query.c2w[0], ref["query_c2w"], atol=1e-5)
    np.testing.assert_allclose(near_far(query)[0], ref["query_near_far"], atol=1e-5)
    targets = frame.cameras_to_normalised(layout.cameras_for(views[:8], torch.float64))
    np.testing.assert_allclose(targets.w2c, ref["target_candidate_w2cs"], atol=1e-5)


def test_layout_structure():
    for polar, ring2 in [(75, ("4", "5", "6", "7")), (76, ("8", "9", "10", "11"))]:
        first = layout.first_stage_views(polar)
        assert tuple(v.name for v in first[4:]) == ring2
        assert first[4].polar_deg == polar + (30 if polar <= 75 else -30)
        near = layout.all_nearby_views(polar)
        assert len(near) == 32 and near[5].name == "1_1" and near[5].parent == "1"
        assert (near[5].polar_deg, near[5].azimuth_deg) == (polar + 10, 120)


def test_frame_point_round_trip():
    polar = 60
    frame = ReconstructionFrame.from_cameras(
        layout.cameras_for(layout.schedule(polar)[:1], torch.float64),
        layout.cameras_for(layout.all_nearby_views(polar), torch.float64),
    )
    pts = torch.randn(20, 3, dtype=torch.float64) * 0.3
    torch.testing.assert_close(frame.points_to_world(frame.points_to_normalised(pts)), pts)
    # a world point projects to the same pixel through world and normalised cameras
    cams = layout.cameras_for(layout.all_nearby_views(polar), torch.float64)
    pix_w, _ = cams.project(pts)
    pix_n, _ = frame.cameras_to_normalised(cams).project(frame.points_to_normalised(pts))
    torch.testing.assert_close(pix_w, pix_n)
    assert isinstance(cams, Cameras)


def test_relative_pose_between_cameras_recovers_schedule_deltas():
    from data.layout import RelativePose

    polar = 60
    parents = layout.first_stage_views(polar)
    near = layout.all_nearby_views(polar)
    parent_of = {v.name: v for v in parents}
    src = layout.cameras_for([parent_of[v.parent] for v in near], torch.float64)
    tgt = layout.cameras_for(near, torch.float64)
    rel = RelativePose.between(src, tgt)
    expected = RelativePose.from_views(near)
    torch.testing.assert_close(rel.delta_polar_deg, expected.delta_polar_deg)
    torch.testing.assert_close(rel.delta_azimuth_deg, expected.delta_azimuth_deg)
    torch.testing.assert_close(rel.delta_radius, expected.delta_radius, atol=1e-12, rtol=0)
