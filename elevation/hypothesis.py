"""Hypothesis cameras of the 4 nearby views for candidate input polar angles.

For a candidate polar angle ``c`` the official solver assumes that the 4 nearby views sit where One-2-3-45's
schedule puts the nearby views of first-stage view 0: (polar, azimuth) = (c - 10, 30), (c + 10, 30), (c, 20),
(c, 40) degrees on the rig sphere (radius 1.2, f = 280 px at 256 px). The cameras come from
:mod:`data.layout` / :class:`data.cameras.Cameras`; nothing here re-derives a camera formula.
"""
from __future__ import annotations

from typing import Sequence

import torch

from data import conventions as conv
from data import layout
from data.cameras import Cameras


def hypothesis_cameras(candidate_polar_deg: Sequence[float], dtype: torch.dtype = torch.float32) -> Cameras:
    """Cameras of the 4 nearby views for every candidate input polar angle.

    Args:
        candidate_polar_deg: (C,) candidate polar angles of the input view (deg from +z).
        dtype: dtype of the returned matrices (the official solver works in float32).

    Returns:
        :class:`Cameras` with ``4 C`` entries (OpenCV c2w, world frame), candidate-major: entry ``4 c + j`` is
        nearby view ``j`` of candidate ``c``.
    """
    views = []
    for polar in candidate_polar_deg:
        view0 = layout.first_stage_views(float(polar))[0]
        views.extend(layout.nearby_views(view0))
    return layout.cameras_for(views, dtype=dtype, compute_dtype=dtype)


def hypothesis_matrices(candidate_polar_deg: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Projection and world-to-camera matrices of the hypothesis cameras, as the official solver computes them.

    float32 throughout: ``w2c = inverse(c2w)`` (float32 matrix inverse), ``P = K @ w2c[:3, :4]`` with K
    (f 280 px, principal point (128, 128)).

    Returns:
        ``(projection (C, 4, 3, 4), world_to_camera (C, 4, 4, 4))`` float32, indexed [candidate, nearby view].
    """
    cams = hypothesis_cameras(candidate_polar_deg, torch.float32)
    k = conv.intrinsics_matrix().to(torch.float32)
    w2c = torch.linalg.inv(cams.c2w)
    return (k @ w2c[:, :3, :4]).reshape(-1, 4, 3, 4), w2c.reshape(-1, 4, 4, 4)
