"""`ElevationEstimator`: 4 nearby views -> matches -> coarse-to-fine polar search -> `ElevationEstimate`."""
from __future__ import annotations

import copy
import time
import warnings

import numpy as np
import torch

from data import conventions as conv
from data.device import resolve_device
from elevation.config import ElevationConfig
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError
from elevation.features import build_opencv_matcher
from elevation.matcher import Matcher, filter_raw_matches, raw_nearby_matches
from elevation.matches import NUM_VIEWS, MatchSet
from elevation.reliability import diagnose, failure_reason
from elevation.result import ElevationError, ElevationEstimate, curve_confidence
from elevation.robust import robust_term, trimmed_term, truncated_term
from elevation.search import SearchResult, SearchSchedule, coarse_to_fine_search
from elevation.solver import official_term


def build_matcher(cfg: ElevationConfig) -> Matcher:
    """The configured matcher; LoFTR without loadable weights falls back to ``matcher.fallback_matcher`` with a
    warning (use :meth:`ElevationConfig.weight_free` for the matching solver settings, as the estimator does)."""
    m = cfg.matcher
    if m.name != "loftr":
        return build_opencv_matcher(m.name, m.sift_ratio, m.sift_max_features, m.sift_contrast_threshold)
    try:
        if m.loftr_weights is None:
            raise LoFTRWeightsError("no LoFTR weights configured (matcher.loftr_weights / --loftr-weights)")
        return LoFTRMatcher.from_checkpoint(m.loftr_weights, resolve_device(m.device))
    except LoFTRWeightsError as exc:
        if not m.fallback_to_sift:
            raise ElevationError(str(exc), reason="matcher_unavailable") from exc
        warn_sift_fallback(str(exc))
        return build_opencv_matcher(m.fallback_matcher, m.sift_ratio, m.sift_max_features, m.sift_contrast_threshold)


def warn_sift_fallback(reason: str) -> None:
    """The one warning issued when the weight-free matcher replaces LoFTR, naming why and what differs."""
    warnings.warn(
        f"{reason}. Falling back to weight-free matching (matcher.fallback_matcher: SIFT and/or ORB, with the robust "
        "solver unless matcher.fallback_robust is false), which differs from the official LoFTR: sparser matches "
        "(none on textureless regions), confidence from Lowe's ratio instead of a learned score, so the "
        "error curves and sometimes the estimate differ from the official pipeline.",
        RuntimeWarning,
        stacklevel=3,
    )


class ElevationEstimator:
    """Estimates the input view's polar angle from its 4 nearby views (official order 0_0..0_3).

    Args:
        cfg: the stage config (official behaviour by default).
        matcher: an explicit matcher (otherwise built from ``cfg.matcher`` on first use).
    """

    def __init__(self, cfg: ElevationConfig | None = None, matcher: Matcher | None = None) -> None:
        self.cfg = copy.deepcopy(cfg or ElevationConfig()).validate()
        self._matcher = matcher

    @property
    def matcher(self) -> Matcher:
        """The matcher, built on first use; when LoFTR falls back, ``cfg`` becomes ``cfg.weight_free()``."""
        if self._matcher is None:
            self._matcher = build_matcher(self.cfg)
            if self.cfg.matcher.name == "loftr" and not isinstance(self._matcher, LoFTRMatcher):
                self.cfg = self.cfg.weight_free()
        return self._matcher

    def match(self, images: torch.Tensor) -> MatchSet:
        """Correspondences of the 6 pairs; ``images`` (4, 3, 256, 256) float RGB in [0, 1]."""
        return self.match_both(images)[0]

    def match_both(self, images: torch.Tensor) -> tuple[MatchSet, MatchSet]:
        """The matches filtered with the configured foreground-mask lookup, and with the other one (same raw
        matches; the second set feeds the ``matcher_disagreement`` check)."""
        expected = (NUM_VIEWS, 3, conv.IMAGE_SIZE, conv.IMAGE_SIZE)
        if tuple(images.shape) != expected:
            raise ValueError(
                f"images must be the 4 nearby views as {expected} float RGB in [0, 1] (the solver's intrinsics "
                f"assume {conv.IMAGE_SIZE} px), got {tuple(images.shape)}"
            )
        matcher = self.matcher  # first: a LoFTR fallback switches self.cfg to the weight-free settings
        m = self.cfg.matcher
        raw, masks = raw_nearby_matches(images, matcher, m.resize_px, m.background_threshold)
        return (filter_raw_matches(raw, masks, m.resize_px, m.fix_mask_indexing),
                filter_raw_matches(raw, masks, m.resize_px, not m.fix_mask_indexing))

    def estimate(self, images: torch.Tensor) -> ElevationEstimate:
        """Match the views and search the polar angle. Raises :class:`ElevationError` on failure."""
        start = time.perf_counter()
        matches, alternate = self.match_both(images)
        matching_s = time.perf_counter() - start
        return self.estimate_from_matches(matches, matcher_name=self.matcher.name, matching_s=matching_s,
                                          alternate=alternate)

    def estimate_from_matches(
        self, matches: MatchSet, matcher_name: str = "given", matching_s: float = 0.0,
        alternate: MatchSet | None = None,
    ) -> ElevationEstimate:
        """Search the polar angle from given correspondences. Raises :class:`ElevationError` on failure.

        ``alternate``: the same raw matches filtered with the other foreground-mask lookup (checked for
        agreement when ``checks.enabled``; without it that check is skipped).
        """
        s, c = self.cfg.solver, self.cfg.checks
        counts = matches.counts()
        too_few = {k: n for k, n in counts.items() if n < s.min_matches_per_pair}
        if too_few:
            raise ElevationError(
                f"too few matches between nearby views {too_few} (need >= {s.min_matches_per_pair} per pair): the "
                "views share too little texture or the object is missing; the official pipeline would silently "
                "use polar 90 here", reason="too_few_matches"
            )
        start = time.perf_counter()
        result = self.search(matches)
        curve = np.concatenate([result.coarse_errors, result.fine_errors])
        if not np.isfinite(curve).all():
            raise ElevationError("the error curve is not finite (degenerate matches); no estimate",
                                 reason="degenerate_curve")
        if not (result.per_view_errors != 0).any():
            raise ElevationError(
                "no three-view correspondences: no match of a start pair lies within 1 px of a match of the other "
                "pairs, so every candidate has error 0", reason="no_associations"
            )
        best = float(result.fine_errors.min())
        polar = float(result.polar_deg)
        curve_conf = curve_confidence(result.coarse_errors, best)
        confidence, diagnostics = curve_conf, None
        if c.enabled:
            diag = self.diagnose(matches, alternate, result)
            diagnostics = diag.to_dict()
            failed = failure_reason(diag, c.edge_margin_deg, c.min_associations, c.solver_agreement_deg,
                                    c.matcher_agreement_deg, c.min_curve_confidence, c.min_confidence)
            if failed is not None:
                reason, message = failed
                raise ElevationError(f"{reason}: {message}; no trustworthy estimate", reason=reason,
                                     diagnostics=diagnostics)
            confidence = diag.confidence
        solver_s = time.perf_counter() - start
        return ElevationEstimate(
            polar_deg=polar,
            elevation_deg=float(conv.polar_to_elevation_deg(polar)),
            confidence=confidence,
            coarse_candidates_deg=tuple(int(c) for c in result.coarse_candidates_deg),
            coarse_errors=tuple(float(e) for e in result.coarse_errors),
            fine_candidates_deg=tuple(int(c) for c in result.fine_candidates_deg),
            fine_errors=tuple(float(e) for e in result.fine_errors),
            matcher=matcher_name,
            robust=s.robust,
            match_counts=counts,
            timings_s={"matching": matching_s, "solver": solver_s},
            curve_confidence=curve_conf,
            diagnostics=diagnostics,
        )

    def diagnose(self, matches: MatchSet, alternate: MatchSet | None = None,
                 result: SearchResult | None = None):
        """:class:`elevation.reliability.Diagnostics` of the configured estimate (runs the extra searches)."""
        s, c = self.cfg.solver, self.cfg.checks
        schedule = self.schedule()
        result = self.search(matches) if result is None else result
        if s.robust and s.robust_loss == "truncated":
            check_solver, check_term = "trimmed", trimmed_term(s.robust_keep_fraction)
        else:  # the official mean, or the robust trimmed loss, is checked against the truncated one
            check_solver, check_term = "truncated", truncated_term(s.robust_threshold_px)
        check = coarse_to_fine_search(matches, check_term, schedule)
        alt = None
        if alternate is not None and c.matcher_agreement_deg < 180:
            try:
                alt = self.search(alternate) if min(alternate.counts().values()) >= 1 else None
            except (RuntimeError, ValueError):
                alt = None
        lo = s.coarse_min_deg - s.fine_half_width_deg
        hi = int(schedule.coarse()[-1]) + s.fine_half_width_deg - s.fine_step_deg
        return diagnose(result, check, check_solver, alt, (lo, hi), c.assoc_reference, c.solver_agreement_deg,
                        c.matcher_agreement_deg, c.edge_margin_deg)

    def schedule(self) -> SearchSchedule:
        s = self.cfg.solver
        return SearchSchedule(
            s.coarse_min_deg, s.coarse_max_deg, s.coarse_step_deg, s.fine_half_width_deg, s.fine_step_deg
        )

    def search(self, matches: MatchSet) -> SearchResult:
        """The raw coarse-to-fine search (official or robust reduction), without failure checks."""
        s = self.cfg.solver
        term = robust_term(s.robust_loss, s.robust_keep_fraction, s.robust_threshold_px) if s.robust else official_term
        return coarse_to_fine_search(matches, term, self.schedule())
