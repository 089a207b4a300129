"""Typed configuration of the elevation stage (load with ``data.config.load_config(ElevationConfig, yaml)``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from data.layout import NEARBY_DELTAS_DEG

#: Matcher names: LoFTR, or weight-free OpenCV detectors, alone or joined by "+" (see elevation.features).
MATCHERS = ("loftr", "sift", "orb", "sift+orb", "akaze", "sift+akaze")
ROBUST_LOSSES = ("trimmed", "truncated")
#: The nearby views sit 10 deg above / below the candidate (data.layout.NEARBY_DELTAS_DEG).
NEARBY_POLAR_OFFSET_DEG = max(abs(dp) for dp, _ in NEARBY_DELTAS_DEG)


@dataclass
class MatcherConfig:
    """How the 6 view pairs are matched.

    Attributes:
        name: ``"loftr"`` (official: kornia LoFTR with the indoor dual-softmax "new" weights) or ``"sift"``
            (OpenCV SIFT, no weights).
        loftr_weights: path to ``indoor_ds_new.ckpt`` (a dict with ``"state_dict"`` in the official LoFTR key
            layout, or the bare state dict). ``None`` or a missing file: see ``fallback_to_sift``.
        fallback_to_sift: when LoFTR is asked for but its weights cannot be loaded, use the weight-free
            ``fallback_matcher`` with a warning (False: raise :class:`elevation.ElevationError`).
        fallback_matcher: the weight-free matcher replacing LoFTR (one of :data:`MATCHERS` but ``"loftr"``);
            ``"sift+orb"`` (the union of both detectors' matches) had the fewest wrong and failed estimates on
            ``scripts/bench_elevation.py`` (README, section on elevation).
        fallback_robust: with the weight-free fallback, also use the robust truncated solver and the fixed
            foreground-mask lookup (the deviations of ``configs/elevation/robust.yaml``): the official weighted
            mean is built for LoFTR's matches and is thrown by the outliers of SIFT / ORB matches.
        resize_px: both images are resized to this square size before matching (official 480).
        background_threshold: a pixel is background when all three 8-bit channels are > this (official 245).
        fix_mask_indexing: deviation from upstream. The official filter looks up the first image's foreground
            mask at ``(y0, x1)`` (row of the first keypoint, column of the second); True uses ``(y0, x0)``.
        sift_ratio: Lowe ratio threshold of the SIFT matcher; a match's confidence is ``1 - ratio``.
        sift_contrast_threshold: SIFT detector contrast threshold (OpenCV default 0.04); 0.02 finds about twice
            as many keypoints on the smooth shading of rendered / generated views (fewer failed estimates in
            ``scripts/bench_elevation.py``: 3 instead of 5 of 72).
        sift_max_features: at most this many SIFT keypoints per image (0 = unlimited).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    name: str = "loftr"
    loftr_weights: Optional[str] = None
    fallback_to_sift: bool = True
    fallback_matcher: str = "sift+orb"
    fallback_robust: bool = True
    resize_px: int = 480
    background_threshold: int = 245
    fix_mask_indexing: bool = False
    sift_ratio: float = 0.8
    sift_contrast_threshold: float = 0.02
    sift_max_features: int = 0
    device: str = "auto"


@dataclass
class SolverConfig:
    """The polar-angle search.

    Attributes:
        robust: False = official confidence-weighted mean reprojection error. True = robust reduction
            (``robust_loss``), a documented deviation that resists outlier matches.
        robust_loss: ``"truncated"`` (default): weighted mean of ``min(residual, robust_threshold_px)``;
            ``"trimmed"``: confidence-weighted mean of the smallest ``robust_keep_fraction`` of the residuals of
            each term. Both recover every outlier fixture; truncated did better on the real-render benchmark.
        robust_keep_fraction: fraction of residuals kept by the trimmed loss, in (0, 1].
        robust_threshold_px: cap of the truncated loss (pixels at 256 px).
        min_matches_per_pair: fewer matches in any pair is a failure (official: 1, i.e. only 0 fails).
        coarse_min_deg, coarse_max_deg, coarse_step_deg: coarse grid ``arange(min, max, step)`` (30, 150, 10).
        fine_half_width_deg, fine_step_deg: fine grid ``arange(c - w, c + w, step)`` around the coarse argmin.
    """

    robust: bool = False
    robust_loss: str = "truncated"
    robust_keep_fraction: float = 0.5
    robust_threshold_px: float = 5.0
    min_matches_per_pair: int = 1
    coarse_min_deg: int = 30
    coarse_max_deg: int = 150
    coarse_step_deg: int = 10
    fine_half_width_deg: int = 10
    fine_step_deg: int = 1


@dataclass
class ChecksConfig:
    """The failure signal (a deviation from upstream, which always returns a polar): see elevation.reliability.

    Attributes:
        enabled: run the checks and raise ``ElevationError(reason=...)`` when one fails (False: official).
        edge_margin_deg: an estimate closer than this to an end of the search range fails (``search_edge``).
        min_associations: fewer three-view associations in the sparsest term fail (``few_associations``).
        solver_agreement_deg: official vs robust truncated argmin further apart fail (``solver_disagreement``).
        matcher_agreement_deg: upstream vs fixed mask lookup further apart fail (``matcher_disagreement``;
            only when the estimator matched the images itself).
        min_curve_confidence: the lower curve confidence of both solvers below this fails
            (``ambiguous_minima`` / ``flat_curve``).
        assoc_reference: associations in the sparsest term at which the combined confidence stops growing.
        min_confidence: the combined confidence below this fails (``low_confidence``).

    The defaults were chosen on ``scripts/bench_elevation.py --seed 0 --samples-per-mesh 4`` (27 shared meshes x 4
    input poses, all 6 matcher x solver rows pooled: no estimate > 15 deg off in any row, the most answers for
    the weight-free default); the README reports them on other poses (``--seed 1``).
    """

    enabled: bool = True
    edge_margin_deg: float = 3.0
    min_associations: int = 5
    solver_agreement_deg: float = 3.0
    matcher_agreement_deg: float = 5.0
    min_curve_confidence: float = 0.15
    assoc_reference: int = 30
    min_confidence: float = 0.1


@dataclass
class ElevationConfig:
    """Elevation estimation = matching the 4 nearby views + the coarse-to-fine polar search."""

    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)

    def weight_free(self) -> "ElevationConfig":
        """A copy configured as the weight-free fallback: ``matcher.fallback_matcher`` (and, with
        ``matcher.fallback_robust``, the robust truncated solver and the fixed mask lookup)."""
        import copy

        out = copy.deepcopy(self)
        out.matcher.name = out.matcher.fallback_matcher
        if out.matcher.fallback_robust:
            out.solver.robust, out.solver.robust_loss = True, "truncated"
            out.matcher.fix_mask_indexing = True
        return out.validate()

    def validate(self) -> "ElevationConfig":
        """Raise ValueError naming the bad field; returns self."""
        m, s = self.matcher, self.solver
        if m.name not in MATCHERS:
            raise ValueError(f"matcher.name must be one of {MATCHERS}, got {m.name!r}")
        if m.resize_px < 32:
            raise ValueError(f"matcher.resize_px must be >= 32, got {m.resize_px}")
        if m.fallback_matcher not in MATCHERS or m.fallback_matcher == "loftr":
            raise ValueError(f"matcher.fallback_matcher must be a weight-free one of {MATCHERS[1:]}, "
                             f"got {m.fallback_matcher!r}")
        c = self.checks
        if c.min_associations < 0 or c.assoc_reference < 1 or c.edge_margin_deg < 0:
            raise ValueError("checks: min_associations and edge_margin_deg must be >= 0, assoc_reference >= 1")
        if not (0 <= c.min_confidence <= 1 and 0 <= c.min_curve_confidence <= 1):
            raise ValueError("checks: min_confidence and min_curve_confidence must be in [0, 1]")
        if c.solver_agreement_deg < 0 or c.matcher_agreement_deg < 0:
            raise ValueError("checks: agreement tolerances must be >= 0")
        if not 0 <= m.background_threshold <= 255:
            raise ValueError(f"matcher.background_threshold must be in [0, 255], got {m.background_threshold}")
        if not 0 < m.sift_ratio <= 1:
            raise ValueError(f"matcher.sift_ratio must be in (0, 1], got {m.sift_ratio}")
        if m.sift_contrast_threshold <= 0:
            raise ValueError(f"matcher.sift_contrast_threshold must be > 0, got {m.sift_contrast_threshold}")
        if s.robust_loss not in ROBUST_LOSSES:
            raise ValueError(f"solver.robust_loss must be one of {ROBUST_LOSSES}, got {s.robust_loss!r}")
        if not 0 < s.robust_keep_fraction <= 1:
            raise ValueError(f"solver.robust_keep_fraction must be in (0, 1], got {s.robust_keep_fraction}")
        if s.robust_threshold_px <= 0:
            raise ValueError(f"solver.robust_threshold_px must be > 0, got {s.robust_threshold_px}")
        if s.min_matches_per_pair < 1:
            raise ValueError(f"solver.min_matches_per_pair must be >= 1, got {s.min_matches_per_pair}")
        if s.coarse_step_deg <= 0 or s.fine_step_deg <= 0 or s.coarse_max_deg <= s.coarse_min_deg:
            raise ValueError("solver: the coarse/fine grids need positive steps and coarse_max_deg > coarse_min_deg")
        lowest = s.coarse_min_deg - s.fine_half_width_deg
        highest = s.coarse_max_deg + s.fine_half_width_deg
        if lowest - NEARBY_POLAR_OFFSET_DEG <= 0 or highest + NEARBY_POLAR_OFFSET_DEG >= 180:
            raise ValueError(
                f"solver: candidates span [{lowest}, {highest}] deg, their nearby views at +-"
                f"{NEARBY_POLAR_OFFSET_DEG:g} deg must stay strictly inside (0, 180) deg"
            )
        return self
