"""The failure signal of the elevation estimate: evidence that a returned polar angle can be trusted.

The official solver always returns the argmin of its error curve, even when the curve says nothing (a flat curve,
two equally deep minima, a minimum on the end of the search range, a handful of three-view associations). With
``checks.enabled`` (the default; ``configs/elevation/official.yaml`` turns it off for the official behaviour) the
estimator computes :class:`Diagnostics` and raises :class:`elevation.ElevationError` with a typed ``reason``:

* ``search_edge``: the estimate lies within ``edge_margin_deg`` of an end of the search range ([20, 149] deg with
  the official grids): the true minimum may lie outside the range;
* ``few_associations``: fewer than ``min_associations`` three-view associations in the sparsest of the 6 terms
  (the terms of the error are then averages over a few points);
* ``solver_disagreement``: a second reduction of the same residuals puts the minimum more than
  ``solver_agreement_deg`` away: the robust truncated one when the configured solver is the official mean, the
  other robust loss (trimmed <-> truncated) when the configured solver is robust (the official mean is thrown by
  outlier matches that the robust losses are built to ignore, so it is no witness against them);
* ``matcher_disagreement``: the matches filtered with the other foreground-mask lookup (upstream ``(y0, x1)`` vs
  fixed ``(y0, x0)``, the same raw matches) give an estimate more than ``matcher_agreement_deg`` away;
* ``ambiguous_minima`` / ``flat_curve``: the curve confidence (:func:`elevation.result.curve_confidence`) of the
  configured or the second curve is below ``min_curve_confidence`` while the coarse curve has several local
  minima (ambiguous) or a single one (flat);
* ``low_confidence``: the combined :attr:`Diagnostics.confidence` is below ``min_confidence``.

The combined confidence (documented in the README, calibrated on ``scripts/bench_elevation.py``) is
``min(curve confidence of both curves) * min(1, associations in the sparsest term / assoc_reference)``,
and 0 when a disagreement or edge check fails.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from elevation.result import curve_confidence
from elevation.search import SearchResult

#: Every reason an :class:`elevation.ElevationError` may carry.
REASONS = (
    "too_few_matches", "no_associations", "degenerate_curve", "search_edge", "few_associations",
    "solver_disagreement", "matcher_disagreement", "ambiguous_minima", "flat_curve", "low_confidence",
    "matcher_unavailable", "error",
)


def local_minima(errors: np.ndarray) -> np.ndarray:
    """Indices of the local minima of a curve (an end point counts when not above its only neighbour)."""
    e = np.asarray(errors, dtype=np.float64)
    left = np.concatenate([[np.inf], e[:-1]])
    right = np.concatenate([e[1:], [np.inf]])
    return np.flatnonzero((e <= left) & (e <= right))


def result_curve_confidence(result: SearchResult) -> float:
    return curve_confidence(result.coarse_errors, float(np.min(result.fine_errors)))


@dataclass(frozen=True)
class Diagnostics:
    """What the checks look at (JSON-ready via :meth:`to_dict`).

    Attributes:
        polar_deg: the returned estimate (the configured solver on the configured matches).
        check_solver: the second reduction (``"truncated"``, ``"trimmed"``) and check_polar_deg its argmin.
        alternate_polar_deg: estimate of the configured solver on the other mask lookup (None when not run).
        curve_confidence, check_curve_confidence: :func:`curve_confidence` of both curves.
        coarse_minima: number of local minima of the configured coarse curve.
        min_associations, total_associations: kept three-view associations (sparsest term, all 6 terms).
        edge_distance_deg: distance of the estimate to the nearer end of the search range.
        confidence: the combined confidence (module docstring).
    """

    polar_deg: float
    check_solver: str
    check_polar_deg: float
    alternate_polar_deg: Optional[float]
    curve_confidence: float
    check_curve_confidence: float
    coarse_minima: int
    min_associations: int
    total_associations: int
    edge_distance_deg: float
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


def diagnose(primary: SearchResult, check: SearchResult, check_solver: str, alternate: SearchResult | None,
             search_range: tuple[int, int], assoc_reference: int, solver_agreement_deg: float,
             matcher_agreement_deg: float, edge_margin_deg: float) -> Diagnostics:
    """Diagnostics of one estimate from the searches already run (no matching, no search here)."""
    polar = float(primary.polar_deg)
    c_primary, c_check = result_curve_confidence(primary), result_curve_confidence(check)
    counts = primary.association_counts or (0,)
    lo, hi = search_range
    edge = min(polar - lo, hi - polar)
    alt = None if alternate is None else float(alternate.polar_deg)
    confidence = min(c_primary, c_check) * min(1.0, min(counts) / max(assoc_reference, 1))
    if (abs(check.polar_deg - polar) > solver_agreement_deg
            or (alt is not None and abs(alt - polar) > matcher_agreement_deg) or edge < edge_margin_deg):
        confidence = 0.0
    return Diagnostics(
        polar_deg=polar, check_solver=check_solver, check_polar_deg=float(check.polar_deg),
        alternate_polar_deg=alt, curve_confidence=c_primary, check_curve_confidence=c_check,
        coarse_minima=int(local_minima(primary.coarse_errors).size), min_associations=int(min(counts)),
        total_associations=int(sum(counts)), edge_distance_deg=float(edge), confidence=float(confidence),
    )


def failure_reason(d: Diagnostics, edge_margin_deg: float, min_associations: int, solver_agreement_deg: float,
                   matcher_agreement_deg: float, min_curve_confidence: float,
                   min_confidence: float) -> tuple[str, str] | None:
    """``(reason, message)`` of the first failed check, in the order of the module docstring; None when all pass."""
    if d.edge_distance_deg < edge_margin_deg:
        return "search_edge", (f"the estimate {d.polar_deg:g} deg lies {d.edge_distance_deg:g} deg from the end of "
                               "the search range: the true minimum may be outside it")
    if d.min_associations < min_associations:
        return "few_associations", (f"only {d.min_associations} three-view associations in the sparsest term "
                                    f"(need >= {min_associations}): too little shared texture")
    if abs(d.check_polar_deg - d.polar_deg) > solver_agreement_deg:
        return "solver_disagreement", (f"the solver says {d.polar_deg:g} deg, the {d.check_solver} reduction "
                                       f"{d.check_polar_deg:g} deg (tolerance {solver_agreement_deg:g})")
    if d.alternate_polar_deg is not None and abs(d.alternate_polar_deg - d.polar_deg) > matcher_agreement_deg:
        return "matcher_disagreement", (f"the other foreground-mask lookup gives {d.alternate_polar_deg:g} deg "
                                        f"instead of {d.polar_deg:g} (tolerance {matcher_agreement_deg:g})")
    curve = min(d.curve_confidence, d.check_curve_confidence)
    if curve < min_curve_confidence:
        reason = "ambiguous_minima" if d.coarse_minima > 1 else "flat_curve"
        return reason, (f"the error curve does not single out one angle (curve confidence {curve:.2f} < "
                        f"{min_curve_confidence:g}, {d.coarse_minima} local minima)")
    if d.confidence < min_confidence:
        return "low_confidence", f"confidence {d.confidence:.2f} < {min_confidence:g}"
    return None
