"""The failure signal (elevation.reliability): typed ElevationError reasons instead of confidently wrong angles."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from elevation import ElevationConfig, ElevationError, ElevationEstimator, MatchSet
from elevation.hypothesis import hypothesis_matrices
from elevation.matches import PAIRS
from elevation.reliability import REASONS, Diagnostics, failure_reason

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[2]


def projected_matches(true_polar: float, n: int = 200, seed: int = 0, noise_px: float = 0.0) -> MatchSet:
    """Exact correspondences of random 3D points seen by the 4 nearby views of an input at ``true_polar``."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.3, 0.3, (n, 3))
    proj, _ = hypothesis_matrices([true_polar])
    hom = np.concatenate([points, np.ones((n, 1))], 1)
    pix = []
    for v in range(4):
        p = hom @ proj[0, v].double().numpy().T
        pix.append((p[:, :2] / p[:, 2:]).astype(np.float32) + rng.normal(0, noise_px, (n, 2)).astype(np.float32))
    return MatchSet({(i, j): np.concatenate([pix[i], pix[j], np.ones((n, 1), np.float32)], 1) for i, j in PAIRS})


def test_clean_estimate_passes_every_check_and_reports_the_combined_confidence():
    est = ElevationEstimator().estimate_from_matches(projected_matches(70.0))
    assert est.polar_deg == 70.0
    assert est.diagnostics is not None and est.diagnostics["min_associations"] == 200
    assert est.confidence == est.diagnostics["confidence"] > 0.5
    assert est.to_dict()["diagnostics"]["check_polar_deg"] == 70.0


def test_estimate_on_the_search_range_edge_is_flagged():
    matches = projected_matches(14.0)  # true polar below the official search range [20, 149]
    cfg = ElevationConfig()
    cfg.checks.enabled = False  # the official solver silently returns the end of the range
    assert ElevationEstimator(cfg).estimate_from_matches(matches).polar_deg <= 21
    with pytest.raises(ElevationError, match="search range") as info:
        ElevationEstimator().estimate_from_matches(matches)
    assert info.value.reason == "search_edge" and info.value.diagnostics["edge_distance_deg"] < 3
    high = projected_matches(158.0)
    with pytest.raises(ElevationError) as info:
        ElevationEstimator().estimate_from_matches(high)
    assert info.value.reason == "search_edge"


def test_few_associations_are_flagged():
    with pytest.raises(ElevationError) as info:
        ElevationEstimator().estimate_from_matches(projected_matches(80.0, n=3))
    assert info.value.reason == "few_associations"


def _diag(**kw) -> Diagnostics:
    base = dict(polar_deg=80.0, check_solver="truncated", check_polar_deg=80.0, alternate_polar_deg=80.0,
                curve_confidence=0.9, check_curve_confidence=0.9, coarse_minima=1, min_associations=50,
                total_associations=300, edge_distance_deg=60.0, confidence=0.9)
    base.update(kw)
    return Diagnostics(**base)


@pytest.mark.parametrize("change, reason", [
    ({}, None),
    ({"edge_distance_deg": 0.0, "polar_deg": 20.0}, "search_edge"),
    ({"min_associations": 3}, "few_associations"),
    ({"check_polar_deg": 120.0}, "solver_disagreement"),
    ({"alternate_polar_deg": 60.0}, "matcher_disagreement"),
    ({"check_curve_confidence": 0.05, "coarse_minima": 3}, "ambiguous_minima"),
    ({"curve_confidence": 0.05, "coarse_minima": 1}, "flat_curve"),
    ({"confidence": 0.01}, "low_confidence"),
])
def test_each_check_has_its_typed_reason(change, reason):
    c = ElevationConfig().checks
    out = failure_reason(_diag(**change), c.edge_margin_deg, c.min_associations, c.solver_agreement_deg,
                         c.matcher_agreement_deg, c.min_curve_confidence, c.min_confidence)
    assert (out[0] if out else None) == reason
    assert reason is None or reason in REASONS


def test_checks_off_is_the_official_behaviour(shared):
    """The official-parity configuration returns what the official solver returns, wrong or not."""
    ref = dict(np.load(shared("fixtures/one2345_parity/elevation") / "elev_D_p45_outliers25.npz"))
    matches = MatchSet.from_named_arrays(ref)
    from data.config import load_config

    official = load_config(ElevationConfig, ROOT / "configs" / "elevation" / "official.yaml")
    assert not official.checks.enabled
    est = ElevationEstimator(official).estimate_from_matches(matches)
    assert est.polar_deg == int(ref["returned_polar"]) == 117  # official answer, 72 deg off
    with pytest.raises(ElevationError) as info:  # the default refuses it
        ElevationEstimator().estimate_from_matches(matches)
    assert info.value.reason == "solver_disagreement"


def test_plain_elevation_error_has_a_default_reason():
    exc = ElevationError("no matches")
    assert exc.reason == "error" and exc.diagnostics is None and str(exc) == "no matches"


def test_pipeline_fallback_carries_the_reason():
    from pipeline import One2345Pipeline

    def fail(images):
        raise ElevationError("search_edge: estimate 20 deg", reason="search_edge")

    fake = SimpleNamespace(cfg=SimpleNamespace(elevation_policy=SimpleNamespace(on_failure="fallback",
                                                                                 fallback_polar_deg=90.0)),
                           estimator=SimpleNamespace(estimate=fail))
    notes: list[str] = []
    with pytest.warns(UserWarning, match="search_edge"):
        polar, source, estimate, failure, reason = One2345Pipeline._polar(fake, torch.zeros(4, 3, 8, 8), None, notes)
    assert (polar, source, estimate, reason) == (90.0, "fallback", None, "search_edge")
    assert "search_edge" in failure and notes


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_elevation", ROOT / "scripts" / "bench_elevation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_texture_poor_symmetric_teapot_fails_explicitly_instead_of_a_wrong_polar(shared):
    """The geometry-only Utah teapot (grey, nearly rotationally symmetric body) at true polar 109: SIFT finds 1-4
    matches per pair and the official solver answers 148 deg (39 deg off, curve confidence 0.56). The checks turn
    that into an explicit failure, with SIFT and with the weight-free default (SIFT + ORB, robust solver)."""
    pytest.importorskip("pyrender")
    from data.assets import load_asset
    from data.render import MeshRenderer

    bench = _bench_module()
    mesh = load_asset(shared("data/meshes") / "geometry_only/teapot/teapot.obj", up_axis="+y")
    with MeshRenderer(mesh, bench.render_config()) as renderer:
        images, _ = bench.oracle_nearby_views(renderer, 109.0, 201.7713427222269)
    sift = ElevationConfig()
    sift.matcher.name, sift.checks.enabled = "sift", False
    wrong = ElevationEstimator(sift).estimate(images)
    assert abs(wrong.polar_deg - 109.0) > 15  # what the official solver returns, silently
    sift.checks.enabled = True
    with pytest.raises(ElevationError) as info:
        ElevationEstimator(sift).estimate(images)
    assert info.value.reason in REASONS and info.value.reason != "error"
    with pytest.raises(ElevationError) as info:
        ElevationEstimator(ElevationConfig().weight_free()).estimate(images)
    assert info.value.reason in REASONS and info.value.reason != "error"
