"""Round trips and fixed points of the geometry conventions (data/conventions.py, data/cameras.py)."""
import math

import numpy as np
import pytest
import torch

from data import conventions as conv
from data.cameras import Cameras


def test_polar_elevation_fixed_points():
    for polar, elev in [(0, 90), (90, 0), (60, 30), (120, -30), (180, -90)]:
        assert conv.polar_to_elevation_deg(polar) == elev
        assert conv.elevation_to_polar_deg(elev) == polar


def test_azimuth_origin_and_direction():
    # azimuth 0 on -y, azimuth 90 on +x, polar 0 on +z (world up)
    p = conv.spherical_to_position([90, 90, 0], [0, 90, 0], 2.0)
    torch.testing.assert_close(p, torch.tensor([[0, -2, 0], [2, 0, 0], [0, 0, 2.0]], dtype=torch.float64), atol=1e-12, rtol=0)


def test_spherical_round_trip():
    rng = np.random.default_rng(0)
    polar, az, r = rng.uniform(1, 179, 200), rng.uniform(0, 360, 200), rng.uniform(0.5, 3, 200)
    cams = Cameras.from_spherical(polar, az, r, dtype=torch.float64)
    p2, a2, r2 = cams.spherical()
    np.testing.assert_allclose(p2, polar, atol=1e-9)
    np.testing.assert_allclose(a2, az, atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-12)


def test_camera_looks_at_origin_and_up_is_up():
    cams = Cameras.from_spherical([60.0, 90.0, 120.0], [30.0, 200.0, 310.0], 1.2, dtype=torch.float64)
    pix, depth = cams.project(torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(pix[:, 0], torch.full((3, 2), 128.0, dtype=torch.float64))
    torch.testing.assert_close(depth[:, 0], torch.full((3,), 1.2, dtype=torch.float64))
    # a point above the origin appears higher in the image (smaller v): +z world is image-up
    pix_up, _ = cams.project(torch.tensor([[0, 0, 0.1]], dtype=torch.float64))
    assert (pix_up[:, 0, 1] < 128).all()
    # rotations are orthonormal with det +1
    r = cams.c2w[:, :3, :3]
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(3, dtype=torch.float64))


def test_project_unproject_round_trip():
    g = torch.Generator().manual_seed(0)
    cams = Cameras.from_spherical([45.0, 100.0], [10.0, 250.0], [1.2, 2.0], dtype=torch.float64)
    pts = (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5) * 0.8
    pix, depth = cams.project(pts)
    back = cams.unproject(pix, depth)
    torch.testing.assert_close(back, pts.expand(2, 50, 3), atol=1e-12, rtol=0)


def test_opengl_opencv_round_trip():
    c2w = Cameras.from_spherical([30.0, 70.0], [0.0, 45.0], 1.5, dtype=torch.float64).c2w
    gl = conv.opencv_to_opengl(c2w)
    torch.testing.assert_close(conv.opengl_to_opencv(gl), c2w)
    # OpenGL cameras look along -z: the origin is at negative camera z
    w2c_gl = torch.linalg.inv(gl)
    assert (w2c_gl[:, 2, 3] < 0).all()


def test_fov_focal_round_trip():
    assert conv.focal_to_fov(conv.FOCAL_PX, conv.IMAGE_SIZE) == pytest.approx(49.13, abs=0.01)
    assert conv.fov_to_focal(conv.focal_to_fov(280.0, 256), 256) == pytest.approx(280.0)
    assert math.isclose(conv.polar_to_elevation_deg(conv.elevation_to_polar_deg(12.5)), 12.5)


@pytest.mark.parametrize("polar_deg, azimuth_deg", [(90.0, 30.0), (35.0, 200.0), (140.0, 300.0)])
def test_rig_object_radius_frames_a_sphere_at_the_input_fill(polar_deg, azimuth_deg):
    """A sphere of RIG_OBJECT_RADIUS seen from any rig camera: its silhouette's diameter is INPUT_OBJECT_FILL of
    the image (ray-cast, within a pixel), the framing of a preprocessed input."""
    import trimesh

    from data.mesh import Mesh
    from data.render import RayCaster, pixel_centers

    sphere = trimesh.creation.icosphere(subdivisions=5, radius=conv.RIG_OBJECT_RADIUS)
    mesh = Mesh(torch.as_tensor(sphere.vertices, dtype=torch.float32), torch.as_tensor(sphere.faces))
    cams = Cameras.from_spherical([polar_deg], [azimuth_deg], conv.CAMERA_RADIUS, dtype=torch.float64)
    hit = RayCaster(mesh).render(cams).hit.reshape(conv.IMAGE_SIZE, conv.IMAGE_SIZE).numpy()
    width = np.flatnonzero(hit.any(0))
    height = np.flatnonzero(hit.any(1))
    expected = conv.INPUT_OBJECT_FILL * conv.IMAGE_SIZE
    assert abs(len(width) - expected) <= 1.5 and abs(len(height) - expected) <= 1.5
    assert conv.framed_object_radius(1.0) > conv.RIG_OBJECT_RADIUS > conv.framed_object_radius(0.5)
