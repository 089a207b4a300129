"""The typed outcome of elevation estimation: :class:`ElevationEstimate`, or an :class:`ElevationError`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data import conventions as conv


class ElevationError(RuntimeError):
    """The elevation could not be estimated, or the estimate failed a check (``elevation.reliability``).

    The official pipeline silently falls back to polar 90 deg (or returns a wrong angle); here the caller decides.

    Attributes:
        reason: a short typed reason, one of ``elevation.reliability.REASONS`` (``"error"`` when not given).
        diagnostics: what the checks saw (a JSON-ready dict) when a check failed, else None.
    """

    def __init__(self, message: str, reason: str = "error", diagnostics: dict | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.diagnostics = diagnostics


def curve_confidence(coarse_errors: np.ndarray, best_error: float) -> float:
    """Confidence in [0, 1] of a polar-angle error curve.

    Definition: ``1 - best / competitor``, where ``best`` is the smallest error found (coarse or fine) and
    ``competitor`` is the lowest *other* local minimum of the coarse curve (10 deg grid; an end point counts as
    a local minimum when it is not above its only neighbour). When the coarse curve has a single local minimum,
    ``competitor`` is the largest coarse error. So:

    * a flat curve, or two equally deep minima, give ~0;
    * a single sharp minimum far below the rest of the curve gives ~1;
    * the value is scale free (errors are pixels, the ratio is not).

    Args:
        coarse_errors: (C,) errors of the coarse candidates (pixels, >= 0).
        best_error: the error of the returned candidate (pixels).
    """
    e = np.asarray(coarse_errors, dtype=np.float64)
    if e.size == 0 or not np.isfinite(e).all():
        return 0.0
    best_index = int(np.argmin(e))
    left = np.concatenate([[np.inf], e[:-1]])
    right = np.concatenate([e[1:], [np.inf]])
    minima = np.flatnonzero((e <= left) & (e <= right))
    others = [i for i in minima if i != best_index]
    competitor = float(min(e[others])) if others else float(e.max())
    best = min(float(best_error), float(e[best_index]))
    if competitor <= 0.0:
        return 0.0
    return float(np.clip(1.0 - best / competitor, 0.0, 1.0))


@dataclass(frozen=True)
class ElevationEstimate:
    """Estimated viewpoint of the input image.

    Attributes:
        polar_deg: polar angle of the input view, degrees from +z (what the official code returns and calls
            "elevation"); an integer value in [20, 149] with the official search grid.
        elevation_deg: ``90 - polar_deg``, degrees above the horizon.
        confidence: in [0, 1]: with ``checks.enabled`` the combined confidence of
            :mod:`elevation.reliability` (calibrated on the benchmark), otherwise :func:`curve_confidence`.
        coarse_candidates_deg, coarse_errors: the 10-deg curve (candidate polar angles, error in pixels).
        fine_candidates_deg, fine_errors: the 1-deg curve around the coarse minimum.
        matcher: name of the matcher that produced the correspondences (``"loftr"``, ``"sift"``, ``"given"``).
        robust: whether the robust reduction was used instead of the official weighted mean.
        match_counts: number of matches per view pair ``"i_j"`` (after the foreground filter).
        timings_s: seconds spent per step (``"matching"``, ``"solver"``).
        curve_confidence: :func:`curve_confidence` of the returned curve.
        diagnostics: what the checks saw (``elevation.reliability.Diagnostics.to_dict``), None when off.
    """

    polar_deg: float
    elevation_deg: float
    confidence: float
    coarse_candidates_deg: tuple[int, ...]
    coarse_errors: tuple[float, ...]
    fine_candidates_deg: tuple[int, ...]
    fine_errors: tuple[float, ...]
    matcher: str = "given"
    robust: bool = False
    match_counts: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    curve_confidence: float | None = None
    diagnostics: dict | None = None

    def __post_init__(self) -> None:
        expected = float(conv.polar_to_elevation_deg(self.polar_deg))
        if abs(self.elevation_deg - expected) > 1e-9:
            raise ValueError(f"elevation_deg {self.elevation_deg} must be 90 - polar_deg = {expected}")

    @property
    def error_curve(self) -> list[tuple[int, float]]:
        """All evaluated ``(candidate polar deg, error px)`` pairs, sorted by angle (fine values win ties)."""
        merged = dict(zip(self.coarse_candidates_deg, self.coarse_errors))
        merged.update(zip(self.fine_candidates_deg, self.fine_errors))
        return sorted(merged.items())

    def to_dict(self) -> dict:
        """JSON-ready dictionary (plain floats and ints)."""
        return {
            "polar_deg": float(self.polar_deg),
            "elevation_deg": float(self.elevation_deg),
            "confidence": float(self.confidence),
            "matcher": self.matcher,
            "robust": bool(self.robust),
            "match_counts": dict(self.match_counts),
            "coarse_curve": {"polar_deg": list(self.coarse_candidates_deg), "error_px": list(self.coarse_errors)},
            "fine_curve": {"polar_deg": list(self.fine_candidates_deg), "error_px": list(self.fine_errors)},
            "error_curve": [[int(c), float(e)] for c, e in self.error_curve],
            "timings_s": dict(self.timings_s),
            "curve_confidence": self.curve_confidence,
            "diagnostics": self.diagnostics,
        }
