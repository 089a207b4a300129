"""Elevation (polar-angle) estimation from the 4 nearby views of first-stage view 0 (imports only `data`).

    from elevation import ElevationEstimator, ElevationConfig
    estimate = ElevationEstimator(ElevationConfig()).estimate(images)  # (4, 3, 256, 256) in [0, 1]
    estimate.polar_deg, estimate.elevation_deg, estimate.confidence

Failure (e.g. a view pair without matches) or an estimate that fails a check of :mod:`elevation.reliability` (edge
of the search range, few three-view associations, solvers or mask lookups disagreeing, a flat or ambiguous curve,
low confidence) raises :class:`ElevationError` with a typed ``reason``. ``configs/elevation/official.yaml`` (checks
off) is the official-parity mode.
"""
from elevation.config import ElevationConfig, MatcherConfig, SolverConfig
from elevation.estimator import ElevationEstimator, build_matcher
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError, build_loftr
from elevation.matches import MatchSet
from elevation.result import ElevationError, ElevationEstimate

__all__ = [
    "ElevationConfig",
    "ElevationError",
    "ElevationEstimate",
    "ElevationEstimator",
    "LoFTRMatcher",
    "LoFTRWeightsError",
    "MatchSet",
    "MatcherConfig",
    "SolverConfig",
    "build_loftr",
    "build_matcher",
]
