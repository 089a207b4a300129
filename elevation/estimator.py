"""`ElevationEstimator`: 4 nearby views -> matches -> coarse-to-fine polar search -> `ElevationEstimate`."""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from data import conventions as conv
from data.device import resolve_device
from elevation.config import ElevationConfig
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError
from elevation.matcher import Matcher, match_nearby_views
from elevation.matches import NUM_VIEWS, MatchSet
from elevation.result import ElevationError, ElevationEstimate, curve_confidence
from elevation.robust import robust_term
from elevation.search import SearchResult, SearchSchedule, coarse_to_fine_search
from elevation.sift import SiftMatcher
from elevation.solver import official_term


def build_matcher(cfg: ElevationConfig) -> Matcher:
    """The configured matcher; LoFTR without loadable weights falls back to SIFT with a warning."""
    m = cfg.matcher
    if m.name == "sift":
        return SiftMatcher(m.sift_ratio, m.sift_max_features, m.sift_contrast_threshold)
    try:
        if m.loftr_weights is None:
            raise LoFTRWeightsError("no LoFTR weights configured (matcher.loftr_weights / --loftr-weights)")
        return LoFTRMatcher.from_checkpoint(m.loftr_weights, resolve_device(m.device))
    except LoFTRWeightsError as exc:
        if not m.fallback_to_sift:
            raise ElevationError(str(exc)) from exc
        warn_sift_fallback(str(exc))
        return SiftMatcher(m.sift_ratio, m.sift_max_features, m.sift_contrast_threshold)


def warn_sift_fallback(reason: str) -> None:
    """The one warning issued when SIFT replaces LoFTR, naming why and what differs."""
    warnings.warn(
        f"{reason}. Falling back to SIFT matching, which differs from the official LoFTR: sparser matches "
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
        self.cfg = (cfg or ElevationConfig()).validate()
        self._matcher = matcher

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            self._matcher = build_matcher(self.cfg)
        return self._matcher

    def match(self, images: torch.Tensor) -> MatchSet:
        """Correspondences of the 6 pairs; ``images`` (4, 3, 256, 256) float RGB in [0, 1]."""
        expected = (NUM_VIEWS, 3, conv.IMAGE_SIZE, conv.IMAGE_SIZE)
        if tuple(images.shape) != expected:
            raise ValueError(
                f"images must be the 4 nearby views as {expected} float RGB in [0, 1] (the solver's intrinsics "
                f"assume {conv.IMAGE_SIZE} px), got {tuple(images.shape)}"
            )
        m = self.cfg.matcher
        return match_nearby_views(images, self.matcher, m.resize_px, m.background_threshold, m.fix_mask_indexing)

    def estimate(self, images: torch.Tensor) -> ElevationEstimate:
        """Match the views and search the polar angle. Raises :class:`ElevationError` on failure."""
        start = time.perf_counter()
        matches = self.match(images)
        matching_s = time.perf_counter() - start
        return self.estimate_from_matches(matches, matcher_name=self.matcher.name, matching_s=matching_s)

    def estimate_from_matches(
        self, matches: MatchSet, matcher_name: str = "given", matching_s: float = 0.0
    ) -> ElevationEstimate:
        """Search the polar angle from given correspondences. Raises :class:`ElevationError` on failure."""
        s = self.cfg.solver
        counts = matches.counts()
        too_few = {k: n for k, n in counts.items() if n < s.min_matches_per_pair}
        if too_few:
            raise ElevationError(
                f"too few matches between nearby views {too_few} (need >= {s.min_matches_per_pair} per pair): the "
                "views share too little texture or the object is missing; the official pipeline would silently "
                "use polar 90 here"
            )
        start = time.perf_counter()
        result = self.search(matches)
        solver_s = time.perf_counter() - start
        curve = np.concatenate([result.coarse_errors, result.fine_errors])
        if not np.isfinite(curve).all():
            raise ElevationError("the error curve is not finite (degenerate matches); no estimate")
        if not (result.per_view_errors != 0).any():
            raise ElevationError(
                "no three-view correspondences: no match of a start pair lies within 1 px of a match of the other "
                "pairs, so every candidate has error 0"
            )
        best = float(result.fine_errors.min())
        polar = float(result.polar_deg)
        return ElevationEstimate(
            polar_deg=polar,
            elevation_deg=float(conv.polar_to_elevation_deg(polar)),
            confidence=curve_confidence(result.coarse_errors, best),
            coarse_candidates_deg=tuple(int(c) for c in result.coarse_candidates_deg),
            coarse_errors=tuple(float(e) for e in result.coarse_errors),
            fine_candidates_deg=tuple(int(c) for c in result.fine_candidates_deg),
            fine_errors=tuple(float(e) for e in result.fine_errors),
            matcher=matcher_name,
            robust=s.robust,
            match_counts=counts,
            timings_s={"matching": matching_s, "solver": solver_s},
        )

    def search(self, matches: MatchSet) -> SearchResult:
        """The raw coarse-to-fine search (official or robust reduction), without failure checks."""
        s = self.cfg.solver
        term = robust_term(s.robust_loss, s.robust_keep_fraction, s.robust_threshold_px) if s.robust else official_term
        schedule = SearchSchedule(
            s.coarse_min_deg, s.coarse_max_deg, s.coarse_step_deg, s.fine_half_width_deg, s.fine_step_deg
        )
        return coarse_to_fine_search(matches, term, schedule)
