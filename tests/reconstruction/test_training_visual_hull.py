"""The visual-hull baseline carves a sphere from analytic silhouettes."""
import pytest
import torch

from data import layout
from data.cameras import Cameras
from data.reconstruction_frame import ReconstructionFrame
from data.views import Views
from reconstruction.visual_hull import occupancy_to_mesh, silhouette_occupancy, visual_hull

RADIUS = 0.3


def _sphere_views(size=64):
    cams = layout.cameras_for(layout.all_nearby_views(60.0))
    k = cams.intrinsics.clone()
    k[:, :2] *= size / cams.width
    cams = Cameras(cams.c2w, k, size, size)
    v, u = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pix = torch.stack([u, v], -1).reshape(1, -1, 2).float().expand(len(cams), -1, -1)
    o, d = cams.pixel_rays(pix)
    d = d / d.norm(dim=-1, keepdim=True)
    # ray-sphere distance: |o - (o.d) d| < R
    closest = o - (o * d).sum(-1, keepdim=True) * d
    masks = (closest.norm(dim=-1) < RADIUS).float().reshape(len(cams), 1, size, size)
    return Views(torch.ones(len(cams), 3, size, size), cams, masks, source="render")


def test_visual_hull_contains_the_sphere_and_is_tight():
    views = _sphere_views()
    frame = ReconstructionFrame.from_cameras(views.cameras[0], views.cameras)
    mesh = visual_hull(views, frame, resolution=48)
    r = mesh.vertices.norm(dim=-1)
    assert r.min() > RADIUS - 0.03
    assert r.median() < RADIUS + 0.05  # 32 views around the object carve close to the sphere
    world = visual_hull(views, None, resolution=40, bbox=(-0.5, 0.5))
    assert world.vertices.norm(dim=-1).median() == pytest.approx(RADIUS, abs=0.06)


def test_occupancy_is_empty_outside_any_view_and_errors():
    views = _sphere_views(32)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 50.0]])
    occ = silhouette_occupancy(views.cameras, views.masks, pts)
    assert occ[0] == 1.0 and occ[1] == 0.0 and occ[2] == 0.0
    with pytest.raises(ValueError, match="masks must be"):
        silhouette_occupancy(views.cameras, views.masks[0], pts)
    with pytest.raises(ValueError, match="no surface"):
        occupancy_to_mesh(torch.zeros(4, 4, 4).numpy(), [-1] * 3, [1] * 3)
    with pytest.raises(ValueError, match="needs views with masks"):
        visual_hull(Views(views.images, views.cameras))
