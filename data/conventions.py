"""Geometry conventions of the whole project: the single place where angles, axes and frames are defined.

Nothing outside this module re-derives a convention; everything else calls these functions.

World frame (One-2-3-45 / Zero123 Objaverse renders)
----------------------------------------------------
* Right-handed, **+z is up**. The object sits at the origin, normalised so that the longest side of its
  axis-aligned bounding box is :data:`OBJECT_BBOX_SIZE` (1.0 world unit), centred on the box centre.
* Spherical camera parameters:

  - ``polar_deg``: angle between the camera centre and +z, in degrees. 0 = looking straight down from
    above, 90 = on the horizon, 180 = from below. The official One-2-3-45 code calls this number
    "elevation"; here it is always named *polar*.
  - ``elevation_deg = 90 - polar_deg``: angle above the horizon (what humans call elevation).
  - ``azimuth_deg``: rotation about +z. Azimuth 0 puts the camera on the **-y** axis; increasing azimuth
    moves it towards **+x** (counter-clockwise seen from above). Centre =
    ``radius * (sin(az) sin(polar), -cos(az) sin(polar), cos(polar))``.
  - ``radius``: distance from the origin, world units.

* One-2-3-45's inference rig: the input image is taken as the view at azimuth
  :data:`INPUT_AZIMUTH_DEG` (30 deg), radius :data:`CAMERA_RADIUS` (1.2), pinhole focal
  :data:`FOCAL_PX` (280 px) at :data:`IMAGE_SIZE` (256 px), principal point at the image centre (128, 128).

Camera axes
-----------
* **OpenGL / Blender** camera-to-world (what ``pose.json`` stores): columns are (right, up, backward);
  the camera looks along its **-z** axis.
* **OpenCV** camera-to-world (what :class:`data.cameras.Cameras` stores and the networks use): columns are
  (right, down, forward); the camera looks along **+z**, image y grows downwards.
* ``c2w_opencv = c2w_opengl @ diag(1, -1, -1, 1)`` and back by the same matrix (it is its own inverse).

Pixels
------
A camera-space point (X, Y, Z) (OpenCV) maps to pixel ``(u, v) = (fx X / Z + cx, fy Y / Z + cy)``; pixel
(0, 0) is the *corner* of the top-left pixel's sample position as in the official code (no half-pixel shift).

Angles are degrees in every public signature whose name ends in ``_deg``; radians only where named ``_rad``.
"""
from __future__ import annotations

import numpy as np
import torch

#: Longest side of the object's bounding box in the world frame (Zero123 / One-2-3-45 render scripts).
OBJECT_BBOX_SIZE: float = 1.0
#: Camera distance from the origin in One-2-3-45's inference rig (world units).
CAMERA_RADIUS: float = 1.2
#: Focal length in pixels of the One-2-3-45 rig at :data:`IMAGE_SIZE` (= 560 px at 512 px, FOV ~49.1 deg).
FOCAL_PX: float = 280.0
#: Side of the square images the pipeline works on (pixels).
IMAGE_SIZE: int = 256
#: Absolute azimuth assigned to the input image (degrees).
INPUT_AZIMUTH_DEG: float = 30.0
#: Near / far planes of the rig (world units): radius - 0.7, radius + 0.6 (official pose.json).
RIG_NEAR_FAR: tuple[float, float] = (CAMERA_RADIUS - 0.7, CAMERA_RADIUS + 0.6)
#: World up axis.
WORLD_UP = (0.0, 0.0, 1.0)
#: Fraction of the 256 px input image that the object's longer side fills after preprocessing (the official
#: recentring: square side ``int(max(w, h) / 0.75)``). Zero123 keeps this framing in the views it generates.
INPUT_OBJECT_FILL: float = 0.75


def framed_object_radius(
    fill: float = INPUT_OBJECT_FILL, camera_radius: float = CAMERA_RADIUS, focal_px: float = FOCAL_PX,
    size_px: float = IMAGE_SIZE,
) -> float:
    """Radius (world units) of the origin-centred sphere whose silhouette spans ``fill`` of the image side from any
    camera of a look-at rig at ``camera_radius``.

    A sphere of radius R seen from distance d subtends a cone of half-angle asin(R / d); its image is a disc of
    radius ``focal_px * tan(asin(R / d))`` px. Setting that to ``fill * size_px / 2`` with ``t = fill * size_px /
    (2 focal_px)`` gives ``R = d t / sqrt(1 + t^2)``.
    """
    t = fill * size_px / (2.0 * focal_px)
    return float(camera_radius * t / np.sqrt(1.0 + t * t))


#: Object scale on the inference rig (the reconstruction training layout, ``python -m data.render``'s default):
#: the object's bounding sphere about its bounding-box centre has this radius (~0.389 world units), so from every
#: camera of the rig (radius 1.2, focal 280 px at 256 px) the object spans at most :data:`INPUT_OBJECT_FILL` of
#: the image -- the framing of a preprocessed input, which Zero123 keeps -- and never touches the border. (On the
#: meshes of ``../shared/data`` the longer side of the silhouette is 0.48-0.69 of the image at the median view,
#: 0.60-0.74 at the largest.) The longest-side-1 objects of :data:`OBJECT_BBOX_SIZE` would fill up to 1.6x the
#: image on this rig. Zero123's own layout keeps the official Objaverse recipe (longest side 1, radius 1.5-2.2),
#: whose occasional crops are the official data's too.
RIG_OBJECT_RADIUS: float = framed_object_radius()

#: ``diag(1, -1, -1, 1)``: right-multiplying a c2w by it swaps OpenGL <-> OpenCV camera axes.
GL_CV_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def polar_to_elevation_deg(polar_deg):
    """Polar angle from +z (deg) -> elevation above the horizon (deg). Works on floats, arrays, tensors."""
    return 90.0 - polar_deg


def elevation_to_polar_deg(elevation_deg):
    """Elevation above the horizon (deg) -> polar angle from +z (deg)."""
    return 90.0 - elevation_deg


def fov_to_focal(fov_deg: float, size_px: float) -> float:
    """Field of view (deg, full angle) across ``size_px`` pixels -> focal length in pixels."""
    return 0.5 * size_px / float(np.tan(np.deg2rad(fov_deg) / 2.0))


def focal_to_fov(focal_px: float, size_px: float) -> float:
    """Focal length in pixels -> full field of view in degrees across ``size_px`` pixels."""
    return float(np.rad2deg(2.0 * np.arctan(0.5 * size_px / focal_px)))


def _as_tensor(x, dtype=torch.float64) -> torch.Tensor:
    return x.to(dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def spherical_to_position(polar_deg, azimuth_deg, radius, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Camera centre in the world frame.

    Args:
        polar_deg, azimuth_deg, radius: broadcastable scalars / arrays / tensors (deg, deg, world units).
        dtype: precision of the computation (degrees are converted to radians in float64 first). float32
            reproduces the official float32 pose code bit for bit.

    Returns:
        (..., 3) tensor of ``dtype``: ``radius * (sin az sin polar, -cos az sin polar, cos polar)``.
    """
    polar = torch.deg2rad(_as_tensor(polar_deg)).to(dtype)
    az = torch.deg2rad(_as_tensor(azimuth_deg)).to(dtype)
    r = _as_tensor(radius).to(dtype)
    polar, az, r = torch.broadcast_tensors(polar, az, r)
    return torch.stack(
        [r * torch.sin(az) * torch.sin(polar), -r * torch.cos(az) * torch.sin(polar), r * torch.cos(polar)], -1
    )


def position_to_spherical(position) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`spherical_to_position`.

    Args:
        position: (..., 3) camera centres in the world frame.

    Returns:
        ``(polar_deg, azimuth_deg, radius)``, each (...,); azimuth in [0, 360).
    """
    p = _as_tensor(position)
    radius = p.norm(dim=-1)
    polar = torch.rad2deg(torch.acos((p[..., 2] / radius.clamp_min(1e-12)).clamp(-1.0, 1.0)))
    azimuth = torch.rad2deg(torch.atan2(p[..., 0], -p[..., 1])) % 360.0
    return polar, azimuth, radius


def look_at_c2w_opengl(position, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """OpenGL/Blender camera-to-world matrices of cameras at ``position`` looking at the origin, +z up.

    Construction of the official ``calc_pose``: backward = normalize(centre), right = normalize(up x backward),
    up = normalize(backward x right); columns (right, up, backward), translation = centre.

    Args:
        position: (..., 3) camera centres (world units). A camera exactly on the z axis is degenerate.
        dtype: precision of the computation and of the result.

    Returns:
        (..., 4, 4) c2w of ``dtype``.
    """
    centre = _as_tensor(position, dtype)
    backward = centre / centre.norm(dim=-1, keepdim=True)
    up_world = torch.tensor(WORLD_UP, dtype=centre.dtype).expand_as(backward)
    right = torch.linalg.cross(up_world, backward, dim=-1)
    right = right / right.norm(dim=-1, keepdim=True)
    up = torch.linalg.cross(backward, right, dim=-1)
    up = up / up.norm(dim=-1, keepdim=True)
    c2w = torch.zeros(centre.shape[:-1] + (4, 4), dtype=centre.dtype)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = right, up, backward, centre
    c2w[..., 3, 3] = 1.0
    return c2w


def spherical_to_c2w_opengl(polar_deg, azimuth_deg, radius, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(..., 4, 4) OpenGL c2w of look-at cameras given spherical parameters (deg, deg, world units).

    ``dtype`` is the precision of the computation (float32 reproduces the official float32 pose code).
    """
    return look_at_c2w_opengl(spherical_to_position(polar_deg, azimuth_deg, radius, dtype), dtype)


def opengl_to_opencv(c2w) -> torch.Tensor:
    """Convert (..., 4, 4) camera-to-world matrices between OpenGL and OpenCV axes (an involution)."""
    c2w = _as_tensor(c2w) if not isinstance(c2w, torch.Tensor) else c2w
    flip = torch.as_tensor(GL_CV_FLIP, dtype=c2w.dtype, device=c2w.device)
    return c2w @ flip


opencv_to_opengl = opengl_to_opencv


def intrinsics_matrix(focal_px: float = FOCAL_PX, size_px: int = IMAGE_SIZE) -> torch.Tensor:
    """(3, 3) float64 pinhole matrix, square pixels, principal point at the image centre ``size_px / 2``."""
    c = size_px / 2.0
    return torch.tensor([[focal_px, 0.0, c], [0.0, focal_px, c], [0.0, 0.0, 1.0]], dtype=torch.float64)


#: Frame of the official ``.obj`` / ``.glb`` exports (``convert_mesh_format`` of One-2-3-45): rotate +90 deg
#: about x, then 180 deg about z, then negate x and reverse the face winding. Net map ``(x, y, z) -> (x, z, y)``:
#: the z-up world becomes y-up for OBJ/glTF viewers. Its determinant is -1 (a reflection), so the exported object
#: is the mirror image of the world-frame ``.ply`` one; reversing the winding keeps the normals pointing outwards.
#: ``.ply`` files stay in the world frame. Apply as ``Mesh.transformed(M, flip_winding=EXPORT_FRAME_FLIPS_WINDING)``.
EXPORT_FRAME_FROM_WORLD = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
#: The export map above is a reflection: faces must be reversed with it.
EXPORT_FRAME_FLIPS_WINDING = True
#: Mesh formats that use the export frame (``.ply`` stays in the world frame, as upstream).
EXPORT_FRAME_FORMATS = (".obj", ".glb")
