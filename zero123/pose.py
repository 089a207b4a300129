"""Zero123's 4-number pose code, from :class:`data.layout.RelativePose` (the only place it is built).

``T = [delta_polar (rad), sin(delta_azimuth), cos(delta_azimuth), delta_radius]``; computed in float64 (as the
official demo does with Python's ``math``) and returned as float32. ``delta_polar > 0`` moves the camera down
(polar measured from +z, see :mod:`data.conventions`).
"""
from __future__ import annotations

import torch

from data.layout import RelativePose


def pose_vector(pose: RelativePose) -> torch.Tensor:
    """(N, 4) float32 pose code for N relative poses (degrees, degrees, world units in; radians out)."""
    dp = torch.as_tensor(pose.delta_polar_deg, dtype=torch.float64).reshape(-1)
    da = torch.deg2rad(torch.as_tensor(pose.delta_azimuth_deg, dtype=torch.float64).reshape(-1))
    dr = torch.as_tensor(pose.delta_radius, dtype=torch.float64).reshape(-1)
    if not (dp.shape == da.shape == dr.shape):
        raise ValueError(
            f"RelativePose fields must have the same length, got {dp.shape[0]}, {da.shape[0]}, {dr.shape[0]}"
        )
    code = torch.stack([torch.deg2rad(dp), torch.sin(da), torch.cos(da), dr], dim=-1)
    return code.to(torch.float32)


def relative_pose_from_degrees(delta_polar_deg, delta_azimuth_deg, delta_radius=0.0) -> RelativePose:
    """Convenience: broadcast scalars / lists into a :class:`RelativePose` (float64 tensors)."""
    dp, da, dr = torch.broadcast_tensors(
        torch.as_tensor(delta_polar_deg, dtype=torch.float64).reshape(-1),
        torch.as_tensor(delta_azimuth_deg, dtype=torch.float64).reshape(-1),
        torch.as_tensor(delta_radius, dtype=torch.float64).reshape(-1),
    )
    return RelativePose(dp.clone(), da.clone(), dr.clone())


def stable_zero123_pose_vector(pose: RelativePose, input_polar_deg) -> torch.Tensor:
    """(N, 4) pose code of Stable Zero123 (threestudio ``StableZero123Guidance``): as :func:`pose_vector`, but the
    4th entry is the absolute polar angle of the input view in radians instead of the radius change."""
    code = pose_vector(pose)
    code[:, 3] = torch.deg2rad(torch.as_tensor(input_polar_deg, dtype=torch.float64)).to(torch.float32)
    return code
