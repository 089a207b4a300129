"""Normalisation and alignment of a predicted shape to the ground truth before measuring distances.

* :func:`normalise_bbox`: centre the axis-aligned bounding box at the origin, longest side = ``size``.
* :func:`rotation_candidates`: a brute-force set of rotations (yaw about +z only, or an Euler grid over SO(3)).
* :func:`search_rotation`: the candidate minimising the symmetric Chamfer distance between subsampled clouds,
  measured after a rotation-invariant normalisation (centroid at the origin, unit RMS radius) so the search
  does not depend on how the bounding box changes under rotation.
* :func:`icp`: point-to-point ICP (closed-form SVD step), rotation and optionally translation.

All rotations act on points as ``p @ R.T`` (column-vector convention ``R p``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


def normalise_bbox(vertices: np.ndarray, size: float = 1.0) -> tuple[np.ndarray, float, np.ndarray]:
    """Centre the bounding box at the origin and scale its longest side to ``size``.

    Returns:
        (normalised (V, 3) float64, scale, centre) with ``normalised = (v - centre) * scale``.
    """
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    extent = float(np.max(hi - lo))
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("cannot normalise a mesh whose bounding box has zero size")
    centre = (lo + hi) / 2.0
    scale = size / extent
    return (v - centre) * scale, scale, centre


def rotation_about_z(angle_deg: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_deg`` about +z (counter-clockwise seen from above)."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_zyx(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    y, p, r = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    return rz @ ry @ rx


def rotation_candidates(mode: str, steps: int) -> np.ndarray:
    """(M, 3, 3) brute-force rotation set.

    Args:
        mode: ``"yaw"``: ``steps`` rotations about +z (the up axis is trusted); ``"so3"``: Euler grid with
            ``steps`` yaws x ``steps // 2 + 1`` pitches in [-90, 90] x ``steps`` rolls (duplicates kept).
        steps: angular subdivisions of the full turn.
    """
    if steps < 1:
        raise ValueError(f"rotation search needs steps >= 1, got {steps}")
    angles = np.arange(steps) * 360.0 / steps
    if mode == "yaw":
        return np.stack([rotation_about_z(a) for a in angles])
    if mode == "so3":
        pitches = np.linspace(-90.0, 90.0, steps // 2 + 1)
        return np.stack([euler_zyx(y, p, r) for y in angles for p in pitches for r in angles])
    raise ValueError(f"unknown rotation search mode {mode!r}; use 'yaw' or 'so3'")


def _invariant_normalise(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    rms = np.sqrt((centred**2).sum(1).mean())
    return centred / max(rms, 1e-12)


def _subsample(points: np.ndarray, count: int, seed: int) -> np.ndarray:
    if len(points) <= count:
        return points
    return points[np.random.default_rng(seed).choice(len(points), count, replace=False)]


def search_rotation(pred_points: np.ndarray, gt_points: np.ndarray, candidates: np.ndarray,
                    subsample: int = 2000, seed: int = 0) -> tuple[np.ndarray, float]:
    """Best rotation of the prediction among ``candidates`` (lowest symmetric Chamfer, invariant normalisation).

    Returns:
        (R (3, 3), its symmetric Chamfer distance in RMS-radius units).
    """
    p = _subsample(_invariant_normalise(np.asarray(pred_points, np.float64)), subsample, seed)
    g = _subsample(_invariant_normalise(np.asarray(gt_points, np.float64)), subsample, seed + 1)
    tree_p, tree_g = cKDTree(p), cKDTree(g)
    best, best_cd = candidates[0], np.inf
    for rot in candidates:
        d_pg, _ = tree_g.query(p @ rot.T, k=1)  # d(R p, G)
        d_gp, _ = tree_p.query(g @ rot, k=1)  # d(g, R P) = d(R^T g, P)
        cd = (d_pg.mean() + d_gp.mean()) / 2
        if cd < best_cd:
            best, best_cd = rot, cd
    return best, float(best_cd)


def kabsch(source: np.ndarray, target: np.ndarray, translation: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rigid map of matched points: ``target ~ source @ R.T + t`` (t = 0 if not ``translation``)."""
    if translation:
        cs, ct = source.mean(0), target.mean(0)
    else:
        cs = ct = np.zeros(3)
    h = (source - cs).T @ (target - ct)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, ct - cs @ rot.T


@dataclass(frozen=True)
class RigidTransform:
    """``x -> x @ rotation.T + translation``."""

    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.translation
        return m


def icp(source: np.ndarray, target: np.ndarray, iterations: int = 50, translation: bool = True,
        tolerance: float = 1e-9) -> RigidTransform:
    """Point-to-point ICP moving ``source`` onto ``target`` (nearest neighbours by KD-tree).

    Stops after ``iterations`` or when the mean matched distance improves by less than ``tolerance``.
    """
    src = np.asarray(source, np.float64)
    tree = cKDTree(np.asarray(target, np.float64))
    rot, trans = np.eye(3), np.zeros(3)
    previous = np.inf
    for _ in range(iterations):
        moved = src @ rot.T + trans
        dist, idx = tree.query(moved, k=1)
        step_r, step_t = kabsch(moved, tree.data[idx], translation)
        rot, trans = step_r @ rot, trans @ step_r.T + step_t
        err = dist.mean()
        if previous - err < tolerance:
            break
        previous = err
    return RigidTransform(rot, trans)
