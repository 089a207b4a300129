"""Nearest-neighbour distances, Chamfer distance and F-score between point clouds (KD-tree, never O(N^2)).

Conventions (stated in every result that uses them):

* Distances are **Euclidean, not squared**, unless ``squared=True``.
* Chamfer distance = **mean of the two directional means**: ``(mean_p d(p, G) + mean_g d(g, P)) / 2``.
* F-score at threshold ``t``: precision = fraction of predicted points with ``d(p, G) < t`` (strict), recall =
  fraction of ground-truth points with ``d(g, P) < t``; F = 2 P R / (P + R) (0 when both are 0). A fraction
  in [0, 1] (multiply by 100 for the percent tables of One-2-3-45 and CRM).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree


def nearest_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(Q,) Euclidean distance from each query point to its nearest reference point (KD-tree)."""
    query = np.asarray(query, np.float64)
    reference = np.asarray(reference, np.float64)
    if len(reference) == 0:
        raise ValueError("nearest_distances: the reference point cloud is empty")
    if len(query) == 0:
        return np.zeros(0)
    distances, _ = cKDTree(reference).query(query, k=1, workers=-1)
    return distances


@dataclass(frozen=True)
class PointCloudMetrics:
    """Distances between a predicted cloud P and a ground-truth cloud G.

    Attributes:
        chamfer: mean of the two directional means (units of the clouds; squared if ``squared``).
        pred_to_gt, gt_to_pred: the directional means.
        fscore, precision, recall: per threshold (keys are the thresholds as given), fractions in [0, 1].
        squared: whether distances were squared before averaging.
        num_pred, num_gt: cloud sizes.
    """

    chamfer: float
    pred_to_gt: float
    gt_to_pred: float
    squared: bool
    num_pred: int
    num_gt: int
    fscore: dict[float, float] = field(default_factory=dict)
    precision: dict[float, float] = field(default_factory=dict)
    recall: dict[float, float] = field(default_factory=dict)


def fscore_from_distances(d_pred: np.ndarray, d_gt: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(F, precision, recall) at ``threshold`` from the two nearest-distance arrays (strict ``<``)."""
    precision = float(np.mean(d_pred < threshold)) if len(d_pred) else 0.0
    recall = float(np.mean(d_gt < threshold)) if len(d_gt) else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f, precision, recall


def compare_point_clouds(
    pred: np.ndarray, gt: np.ndarray, thresholds=(), *, squared: bool = False
) -> PointCloudMetrics:
    """Chamfer distance and F-scores of ``pred`` (P, 3) against ``gt`` (G, 3); see the module conventions.

    F-score thresholds always apply to plain (not squared) distances.
    """
    if len(pred) == 0 or len(gt) == 0:
        raise ValueError(f"cannot compare empty point clouds ({len(pred)} predicted, {len(gt)} ground-truth points)")
    d_pred = nearest_distances(pred, gt)
    d_gt = nearest_distances(gt, pred)
    a, b = (d_pred**2, d_gt**2) if squared else (d_pred, d_gt)
    fs, ps, rs = {}, {}, {}
    for t in thresholds:
        fs[float(t)], ps[float(t)], rs[float(t)] = fscore_from_distances(d_pred, d_gt, float(t))
    return PointCloudMetrics(
        chamfer=float((a.mean() + b.mean()) / 2),
        pred_to_gt=float(a.mean()),
        gt_to_pred=float(b.mean()),
        squared=squared,
        num_pred=len(pred),
        num_gt=len(gt),
        fscore=fs,
        precision=ps,
        recall=rs,
    )
