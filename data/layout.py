"""One-2-3-45's view schedule as data: the 8 first-stage views and the 4 nearby views around each.

All angles in degrees, absolute values in the world frame of :mod:`data.conventions`. Deltas are relative to
the conditioning image of the Zero123 call that generates the view (``delta_polar_deg > 0`` moves the camera
**down**, since the polar angle is measured from +z).

Official order (``pose.json``): first-stage ids ``0, 1, 2, 3`` then ``4..7`` (input polar <= 75) or
``8..11`` (input polar > 75); then the nearby views ``k_j`` for k in that same order and j = 0..3.
"""
from __future__ import annotations

from dataclasses import dataclass

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
