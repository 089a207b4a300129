"""The official elevation (polar-angle) solver, vectorised over candidate angles.

For a candidate input polar angle ``c`` the 4 nearby views get the hypothesis cameras of
:mod:`elevation.hypothesis`. For each start view ``s`` in {0, 1, 2} (not 3, as upstream) with the views ordered
``(s, s+1, s+2, s+3) mod 4``:

1. all matches of pair ``(s, s+1)`` are triangulated with the two hypothesis cameras (linear DLT, see
   :func:`triangulate`);
2. for each checked view ``v`` in ``(s+2, s+3)``: every ``(s, s+1)`` match is associated with the match of pair
   ``(s, v)`` whose keypoint in image ``s`` is nearest; the association is kept when that distance is < 1 px;
3. the triangulated point is projected into ``v`` and compared with the associated point in ``v``; the term of
   ``v`` is the confidence-weighted mean of those reprojection distances (pixels) over kept associations, 0 when
   nothing is kept.

The error of ``c`` is the sum of the 6 terms. The association does not depend on ``c``, so it is computed once;
triangulation and reprojection run for all candidates at once.

Arithmetic follows the official code (float32 tensors, float32 OpenCV triangulation output, the same summation
order of the terms), so the curves agree with the official ones to float32 rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from data import conventions as conv
from elevation.hypothesis import hypothesis_matrices
from elevation.matches import NUM_VIEWS, MatchSet

#: Start views of the official error (view 3 is never a start).
START_VIEWS = (0, 1, 2)
#: Maximum keypoint distance (px, in the start image) for associating matches of two pairs.
ASSOCIATION_RADIUS_PX = 1.0

#: A per-view term: (residuals (C, K) float32 px, confidences (K,) float32) -> (C,) float32.
TermFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def official_term(residuals: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted mean reprojection distance (px): ``sum(conf * r) / sum(conf)`` per candidate."""
    return (residuals * confidence).sum(-1) / confidence.sum()


def checked_views(start: int) -> tuple[int, int, int]:
    """``(partner, checked_a, checked_b)`` for a start view: ``(s+1, s+2, s+3) mod 4``."""
    return tuple((start + k) % NUM_VIEWS for k in (1, 2, 3))  # type: ignore[return-value]


def associate(keypoints: torch.Tensor, other: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest keypoint of ``other`` for every keypoint of ``keypoints`` (both in the same image).

    Args:
        keypoints: (N, 2) float32 pixels; other: (M, 2) float32 pixels, M > 0.

    Returns:
        ``(index (N,) long, distance (N,) float32)``. Distances are computed explicitly (no matrix-product
        shortcut) so identical keypoints give exactly 0; the first minimum wins ties, as ``torch.argmin``.
    """
    index, distance = [], []
    for begin in range(0, keypoints.shape[0], chunk):
        d = torch.norm(keypoints[begin:begin + chunk, None, :] - other[None, :, :], dim=-1)
        i = d.argmin(1)
        index.append(i)
        distance.append(d.gather(1, i[:, None])[:, 0])
    if not index:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float32)
    return torch.cat(index), torch.cat(distance)


def triangulate(proj_a: torch.Tensor, proj_b: torch.Tensor, pts_a: torch.Tensor, pts_b: torch.Tensor) -> torch.Tensor:
    """Linear (DLT) triangulation of N correspondences for C camera pairs.

    Same arithmetic as ``cv2.triangulatePoints`` on float32 inputs: the 4x4 system
    ``[x P_3 - P_1; y P_3 - P_2]`` of both views is built in float64, its right singular vector of the smallest
    singular value is the homogeneous point, stored as float32, then dehomogenised in float32.

    Args:
        proj_a, proj_b: (C, 3, 4) float32 projection matrices (world -> pixels).
        pts_a, pts_b: (N, 2) float32 pixel coordinates in view a / b.

    Returns:
        (C, N, 3) float32 world points.
    """
    pa, pb = proj_a.double()[:, None], proj_b.double()[:, None]  # (C, 1, 3, 4)
    xa, ya = pts_a.double()[None, :, 0, None], pts_a.double()[None, :, 1, None]  # (1, N, 1)
    xb, yb = pts_b.double()[None, :, 0, None], pts_b.double()[None, :, 1, None]
    system = torch.stack(
        [xa * pa[..., 2, :] - pa[..., 0, :], ya * pa[..., 2, :] - pa[..., 1, :],
         xb * pb[..., 2, :] - pb[..., 0, :], yb * pb[..., 2, :] - pb[..., 1, :]], dim=-2
    )  # (C, N, 4, 4)
    _, _, vh = torch.linalg.svd(system)
    homogeneous = vh[..., 3, :].to(torch.float32)
    return homogeneous[..., :3] / homogeneous[..., 3:]


def reproject(points: torch.Tensor, world_to_camera: torch.Tensor) -> torch.Tensor:
    """Project (C, N, 3) float32 world points with (C, 4, 4) float32 w2c and K: (C, N, 2) pixels."""
    k = conv.intrinsics_matrix().to(torch.float32)
    hom = torch.cat([points, torch.ones_like(points[..., :1])], -1)
    cam = hom @ world_to_camera.transpose(-1, -2)
    cam = cam[..., :-1] / cam[..., -1:]
    pix = cam @ k.t()
    return pix[..., :-1] / pix[..., -1:]


@dataclass(frozen=True)
class Association:
    """Pose-independent part of one (start, checked view) term.

    Attributes:
        kept: (K,) long indices into the start pair's matches whose nearest neighbour is within 1 px.
        target_px: (K, 2) float32 associated points in the checked view.
        confidence: (K,) float32 confidences of the associated matches (of pair (start, checked view)).
    """

    kept: torch.Tensor
    target_px: torch.Tensor
    confidence: torch.Tensor


def build_associations(matches: MatchSet) -> dict[tuple[int, int], Association]:
    """Associations for every (start, checked view) of the official error (computed once per match set)."""
    out = {}
    for start in START_VIEWS:
        partner, *checked = checked_views(start)
        base = torch.from_numpy(matches.directed(start, partner))
        for view in checked:
            other = torch.from_numpy(matches.directed(start, view))
            if base.shape[0] == 0 or other.shape[0] == 0:
                out[(start, view)] = Association(torch.zeros(0, dtype=torch.long), torch.zeros(0, 2), torch.zeros(0))
                continue
            nearest, distance = associate(base[:, :2], other[:, :2])
            keep = distance < ASSOCIATION_RADIUS_PX
            chosen = other[nearest[keep]]
            out[(start, view)] = Association(torch.nonzero(keep)[:, 0], chosen[:, 2:4], chosen[:, 4])
    return out


def per_view_errors(
    matches: MatchSet,
    candidate_polar_deg: Sequence[float],
    term: TermFunction = official_term,
    associations: dict[tuple[int, int], Association] | None = None,
) -> torch.Tensor:
    """Every term of the error for every candidate.

    Args:
        matches: the 6 pairs of correspondences.
        candidate_polar_deg: (C,) candidate input polar angles (deg).
        term: how a term reduces the residuals of its kept associations (default: the official weighted mean).
        associations: precomputed :func:`build_associations` output (computed here when None).

    Returns:
        (C, 3, 2) float32: ``[c, s, k]`` is the term of start view ``s`` checked in view ``(s + 2 + k) mod 4``
        (0 when no association is kept).
    """
    associations = build_associations(matches) if associations is None else associations
    proj, w2c = hypothesis_matrices(candidate_polar_deg)  # (C, 4, 3, 4), (C, 4, 4, 4)
    n_cand = proj.shape[0]
    errors = torch.zeros(n_cand, len(START_VIEWS), 2, dtype=torch.float32)
    for si, start in enumerate(START_VIEWS):
        partner, *checked = checked_views(start)
        base = torch.from_numpy(matches.directed(start, partner))
        if base.shape[0] == 0:
            continue
        points = None
        for k, view in enumerate(checked):
            assoc = associations[(start, view)]
            if assoc.kept.numel() == 0:
                continue
            if points is None:
                points = triangulate(proj[:, start], proj[:, partner], base[:, :2], base[:, 2:4])
            projected = reproject(points[:, assoc.kept], w2c[:, view])
            residuals = torch.norm(assoc.target_px[None] - projected, dim=-1)
            errors[:, si, k] = term(residuals, assoc.confidence)
    return errors


def total_error(per_view: torch.Tensor) -> torch.Tensor:
    """(C, 3, 2) terms -> (C,) float32 errors, summed in the official order ((e_a + e_b) per start, then starts)."""
    per_start = per_view[..., 0] + per_view[..., 1]
    total = per_start[:, 0]
    for s in range(1, per_start.shape[1]):
        total = total + per_start[:, s]
    return total
