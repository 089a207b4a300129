"""One-2-3-45's view schedule as data: the 8 first-stage views and the 4 nearby views around each.

All angles in degrees, absolute values in the world frame of :mod:`data.conventions`. Deltas are relative to
the conditioning image of the Zero123 call that generates the view (``delta_polar_deg > 0`` moves the camera
**down**, since the polar angle is measured from +z).

Official order (``pose.json``): first-stage ids ``0, 1, 2, 3`` then ``4..7`` (input polar <= 75) or
``8..11`` (input polar > 75); then the nearby views ``k_j`` for k in that same order and j = 0..3.

Also the Zero123++ six-view table (fixed absolute elevations, azimuths relative to the input) and its 3x2 grid
tiling, so that every consumer of Zero123++ views reads its cameras from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data import conventions as conv
from data.cameras import Cameras

#: Azimuth offsets (deg) of the 4 first-stage views at the input's polar angle.
RING1_DELTA_AZIMUTH_DEG = (0.0, 90.0, 180.0, 270.0)
#: Azimuth offsets (deg) of the second ring, relative to the input view.
RING2_DELTA_AZIMUTH_DEG = (30.0, 120.0, 210.0, 300.0)
#: Polar offset of the second ring: +30 (lower) when the input polar <= this threshold, else -30 (higher).
RING2_LOWER_MAX_POLAR_DEG = 75.0
RING2_DELTA_POLAR_DEG = 30.0
#: (delta polar, delta azimuth) of nearby view j = 0..3 relative to its first-stage view.
NEARBY_DELTAS_DEG = ((-10.0, 0.0), (10.0, 0.0), (0.0, -10.0), (0.0, 10.0))


@dataclass(frozen=True)
class ViewSpec:
    """One view of the schedule.

    Attributes:
        name: official file stem: ``"k"`` for first-stage view k, ``"k_j"`` for nearby view j of view k.
        polar_deg, azimuth_deg: absolute spherical angles (deg).
        delta_polar_deg, delta_azimuth_deg: relative to the conditioning image of its Zero123 call (deg).
        parent: name of the conditioning view (``"input"`` for first-stage views).
    """

    name: str
    polar_deg: float
    azimuth_deg: float
    delta_polar_deg: float
    delta_azimuth_deg: float
    parent: str


def second_ring_ids(input_polar_deg: float) -> tuple[int, int, int, int]:
    """Official ids of the second ring: 4..7 (30 deg lower) if polar <= 75 else 8..11 (30 deg higher)."""
    return (4, 5, 6, 7) if input_polar_deg <= RING2_LOWER_MAX_POLAR_DEG else (8, 9, 10, 11)


def first_stage_views(input_polar_deg: float) -> list[ViewSpec]:
    """The 8 first-stage views (conditioned on the input image) in official order."""
    p, az0 = float(input_polar_deg), conv.INPUT_AZIMUTH_DEG
    views = [ViewSpec(str(i), p, az0 + d, 0.0, d, "input") for i, d in enumerate(RING1_DELTA_AZIMUTH_DEG)]
    lower = input_polar_deg <= RING2_LOWER_MAX_POLAR_DEG
    dp = RING2_DELTA_POLAR_DEG if lower else -RING2_DELTA_POLAR_DEG
    for i, d in zip(second_ring_ids(input_polar_deg), RING2_DELTA_AZIMUTH_DEG):
        views.append(ViewSpec(str(i), p + dp, az0 + d, dp, d, "input"))
    return views


def nearby_views(parent: ViewSpec) -> list[ViewSpec]:
    """The 4 nearby views around a first-stage view, in official order j = 0..3."""
    return [
        ViewSpec(f"{parent.name}_{j}", parent.polar_deg + dp, parent.azimuth_deg + da, dp, da, parent.name)
        for j, (dp, da) in enumerate(NEARBY_DELTAS_DEG)
    ]


def all_nearby_views(input_polar_deg: float) -> list[ViewSpec]:
    """The 32 nearby views (the reconstruction's source views) in official order."""
    return [v for parent in first_stage_views(input_polar_deg) for v in nearby_views(parent)]


def schedule(input_polar_deg: float) -> list[ViewSpec]:
    """All 40 views in ``pose.json`` order: 8 first-stage, then 32 nearby."""
    return first_stage_views(input_polar_deg) + all_nearby_views(input_polar_deg)


def cameras_for(
    views: list[ViewSpec], dtype: torch.dtype = torch.float32, compute_dtype: torch.dtype = torch.float64
) -> Cameras:
    """Rig cameras (radius 1.2, f 280 px at 256 px) for a list of views (``compute_dtype``: see Cameras)."""
    return Cameras.from_spherical(
        [v.polar_deg for v in views], [v.azimuth_deg for v in views], conv.CAMERA_RADIUS, dtype=dtype,
        compute_dtype=compute_dtype,
    )


def pose_json(input_polar_deg: float) -> dict:
    """The official ``pose.json`` content for an input polar angle (Blender c2w, row-major lists)."""
    views = schedule(input_polar_deg)
    c2w = cameras_for(views, torch.float64).c2w_opengl
    k = conv.intrinsics_matrix()
    return {
        "intrinsics": k.tolist(),
        "near_far": list(conv.RIG_NEAR_FAR),
        "c2ws": {f"{v.name}.png": m.tolist() for v, m in zip(views, c2w)},
    }


@dataclass(frozen=True)
class RelativePose:
    """What Zero123 is conditioned on: target camera relative to the conditioning camera.

    Attributes:
        delta_polar_deg: (N,) target polar - conditioning polar (deg); > 0 moves the camera down.
        delta_azimuth_deg: (N,) target azimuth - conditioning azimuth (deg), same direction as azimuth.
        delta_radius: (N,) target radius - conditioning radius (world units); 0 in One-2-3-45.

    The encoding into Zero123's 4-vector lives in ``zero123/``, nowhere else.
    """

    delta_polar_deg: torch.Tensor
    delta_azimuth_deg: torch.Tensor
    delta_radius: torch.Tensor

    @classmethod
    def from_views(cls, views: list[ViewSpec]) -> "RelativePose":
        """Relative poses of scheduled views with respect to their conditioning images."""
        dp = torch.tensor([v.delta_polar_deg for v in views], dtype=torch.float64)
        da = torch.tensor([v.delta_azimuth_deg for v in views], dtype=torch.float64)
        return cls(dp, da, torch.zeros_like(dp))

    @classmethod
    def between(cls, source: Cameras, target: Cameras) -> "RelativePose":
        """Relative pose from each source camera to the matching target camera (world frame, look-at rigs)."""
        p0, a0, r0 = source.spherical()
        p1, a1, r1 = target.spherical()
        da = torch.remainder(a1 - a0 + 180.0, 360.0) - 180.0
        return cls(p1 - p0, da, r1 - r0)

    def __len__(self) -> int:
        return self.delta_polar_deg.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# Zero123++: six views at fixed poses in one 3x2 grid (spec zero123plus-spec.md sections 1, 2 and 10)
# ---------------------------------------------------------------------------------------------------------------

#: Azimuths (deg) of the six Zero123++ views relative to the input view's azimuth; view k is tile (k // 2, k % 2)
#: of the row-major 3x2 grid, so the left column is the high ring and the right column the low ring.
ZERO123PLUS_DELTA_AZIMUTH_DEG = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)
#: Absolute elevations (deg above the horizon) of the six views, per pose set.
ZERO123PLUS_ELEVATION_DEG = {
    "v1.1": (30.0, -20.0, 30.0, -20.0, 30.0, -20.0),
    "v1.2": (20.0, -10.0, 20.0, -10.0, 20.0, -10.0),
}
#: Full field of view (deg) of the generated views: v1.1 = Zero123's 2 atan(16/35) (= the One-2-3-45 rig's
#: 280 px focal at 256 px), v1.2 = 30 deg (README; InstantMesh ``FOV_to_intrinsics(30)``).
ZERO123PLUS_FOV_DEG = {"v1.1": float(np.rad2deg(2.0 * np.arctan(16.0 / 35.0))), "v1.2": 30.0}
#: Side of one view tile (px) and the grid shape (rows, columns): 960x640 output images.
ZERO123PLUS_TILE_PX = 320
ZERO123PLUS_GRID = (3, 2)


def zero123plus_radius(pose_set: str) -> float:
    """Camera distance (world units) giving the One-2-3-45 rig's framing at the pose set's FOV.

    ``r tan(fov / 2)`` fixes how much of the world fills the image; it is set equal to the rig's
    ``CAMERA_RADIUS * (IMAGE_SIZE / 2) / FOCAL_PX``, so an object framed like a preprocessed input stays so framed:
    1.2 for v1.1 (same FOV as the rig), about 2.047 for v1.2. (Zero123++ v1.2 normalises the object size itself;
    InstantMesh renders it at r = 4.0 in its own object scale.)
    """
    half = np.deg2rad(ZERO123PLUS_FOV_DEG[_pose_set(pose_set)]) / 2.0
    return float(conv.CAMERA_RADIUS * (conv.IMAGE_SIZE / 2.0) / conv.FOCAL_PX / np.tan(half))


def _pose_set(pose_set: str) -> str:
    if pose_set not in ZERO123PLUS_ELEVATION_DEG:
        raise ValueError(f"unknown Zero123++ pose set {pose_set!r}; known: {sorted(ZERO123PLUS_ELEVATION_DEG)}")
    return pose_set


def zero123plus_views(pose_set: str, input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG) -> list[ViewSpec]:
    """The six Zero123++ views as :class:`ViewSpec` (polar = 90 - elevation, azimuth = input's + offset, mod 360).

    ``delta_polar_deg`` is relative to the horizon (the input's own polar angle is unknown to Zero123++).
    """
    elev = ZERO123PLUS_ELEVATION_DEG[_pose_set(pose_set)]
    return [
        ViewSpec(str(k), conv.elevation_to_polar_deg(e), (input_azimuth_deg + da) % 360.0,
                 conv.elevation_to_polar_deg(e) - 90.0, da, "input")
        for k, (e, da) in enumerate(zip(elev, ZERO123PLUS_DELTA_AZIMUTH_DEG))
    ]


def zero123plus_cameras(
    pose_set: str, input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG, tile_px: int = ZERO123PLUS_TILE_PX,
    radius: float | None = None, dtype: torch.dtype = torch.float32,
) -> Cameras:
    """Cameras (OpenCV, world frame of :mod:`data.conventions`) of the six views of a pose set (``"v1.1"``/``"v1.2"``).

    Args:
        input_azimuth_deg: azimuth assigned to the input image (the One-2-3-45 habit: 30 deg).
        tile_px: side of one view (320 for the real model).
        radius: camera distance; default :func:`zero123plus_radius`.
    """
    views = zero123plus_views(pose_set, input_azimuth_deg)
    focal = conv.fov_to_focal(ZERO123PLUS_FOV_DEG[pose_set], tile_px)
    r = zero123plus_radius(pose_set) if radius is None else float(radius)
    return Cameras.from_spherical([v.polar_deg for v in views], [v.azimuth_deg for v in views], r, focal_px=focal,
                                  size_px=tile_px, dtype=dtype)


def tile_grid(views: torch.Tensor, grid: tuple[int, int] = ZERO123PLUS_GRID) -> torch.Tensor:
    """(..., rows*cols, C, h, w) views -> (..., C, rows*h, cols*w) row-major grid (view k at tile (k // cols, k % cols))."""
    rows, cols = grid
    *lead, n, c, h, w = views.shape
    if n != rows * cols:
        raise ValueError(f"tile_grid: need {rows * cols} views for a {rows}x{cols} grid, got {n}")
    x = views.reshape(*lead, rows, cols, c, h, w).movedim(-3, -5)  # (..., C, rows, cols, h, w)
    return x.transpose(-3, -2).reshape(*lead, c, rows * h, cols * w)


def split_grid(grid_images: torch.Tensor, grid: tuple[int, int] = ZERO123PLUS_GRID) -> torch.Tensor:
    """Inverse of :func:`tile_grid`: (..., C, rows*h, cols*w) -> (..., rows*cols, C, h, w)."""
    rows, cols = grid
    *lead, c, hh, ww = grid_images.shape
    if hh % rows or ww % cols:
        raise ValueError(f"split_grid: a {hh}x{ww} image does not split into {rows}x{cols} equal tiles")
    h, w = hh // rows, ww // cols
    x = grid_images.reshape(*lead, c, rows, h, cols, w).transpose(-3, -2)  # (..., C, rows, cols, h, w)
    return x.movedim(-5, -3).reshape(*lead, rows * cols, c, h, w)


# ---------------------------------------------------------------------------------------------------------------
# Generator layouts built on the Zero123++ table (pipeline generators ``zero123plus`` and ``zero123plus_nearby``)
# ---------------------------------------------------------------------------------------------------------------

#: Polar angle (deg) given to the reference camera of the Zero123++ generators: the input's own polar angle is
#: unknown to them (Zero123++ places its views at absolute elevations), so the reference frame of the
#: reconstruction is the camera at the input's azimuth on the horizon. It only orients the cost volume's frame.
ZERO123PLUS_REFERENCE_POLAR_DEG = 90.0


def zero123plus_reference_camera(
    pose_set: str, input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG, tile_px: int = ZERO123PLUS_TILE_PX,
    radius: float | None = None, dtype: torch.dtype = torch.float32,
) -> Cameras:
    """The 1-camera reference of the ``zero123plus`` generator: at the input's azimuth, polar
    :data:`ZERO123PLUS_REFERENCE_POLAR_DEG`, with the six views' radius and field of view."""
    focal = conv.fov_to_focal(ZERO123PLUS_FOV_DEG[_pose_set(pose_set)], tile_px)
    r = zero123plus_radius(pose_set) if radius is None else float(radius)
    return Cameras.from_spherical([ZERO123PLUS_REFERENCE_POLAR_DEG], [input_azimuth_deg], r, focal_px=focal,
                                  size_px=tile_px, dtype=dtype)


def zero123plus_rig_views(pose_set: str, input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG) -> list[ViewSpec]:
    """The six Zero123++ views as views of the One-2-3-45 rig (radius 1.2, f 280 px at 256 px): same angles.

    :func:`zero123plus_radius` gives the six views the rig's framing (``r tan(fov / 2)`` equal), so a view tile
    resized to 256 px is the rig's view at the same angles up to perspective (v1.2: 30 deg FOV against the rig's
    49 deg; v1.1: identical). Zero123 conditions on them at these angles.
    """
    return zero123plus_views(pose_set, input_azimuth_deg)


def zero123plus_nearby_views(pose_set: str, input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG) -> list[ViewSpec]:
    """The 24 nearby views of the ``zero123plus_nearby`` generator: the 4 nearby views (``NEARBY_DELTAS_DEG``,
    names ``k_j``) around each of the six Zero123++ views (rig cameras via :func:`cameras_for`), in order k, j."""
    return [v for parent in zero123plus_rig_views(pose_set, input_azimuth_deg) for v in nearby_views(parent)]


def zero123plus_nearby_reference(input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG) -> list[ViewSpec]:
    """The reference view of ``zero123plus_nearby`` (a rig view): the input's azimuth on the horizon."""
    p = ZERO123PLUS_REFERENCE_POLAR_DEG
    return [ViewSpec("reference", p, input_azimuth_deg, 0.0, 0.0, "input")]
