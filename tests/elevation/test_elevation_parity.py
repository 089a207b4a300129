"""Parity with the official elevation solver (golden outputs in ../shared/fixtures/one2345_parity/elevation)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from elevation import ElevationConfig, ElevationError, ElevationEstimator, MatchSet
from elevation.hypothesis import hypothesis_cameras
from elevation.search import coarse_to_fine_search

pytestmark = pytest.mark.usefixtures("single_thread")


FIXTURES = "fixtures/one2345_parity/elevation"
CASES = [
    "A_p60_clean", "B_p90_noisy", "C_p120", "D_p45_outliers25", "E_p75_noisefree",
    "F_p33_sparse", "G_p140", "H_p96_outliers50", "I_p66_outliers5", "J_p108_outliers10",
]
REL = 1e-6


def _load(shared, case):
    return dict(np.load(shared(FIXTURES) / f"elev_{case}.npz"))


@pytest.mark.parametrize("case", CASES)
def test_official_search_matches_fixture(shared, case):
    ref = _load(shared, case)
    result = coarse_to_fine_search(MatchSet.from_named_arrays(ref))

    assert result.polar_deg == int(ref["returned_polar"])
    np.testing.assert_array_equal(result.coarse_candidates_deg, ref["coarse_candidates"])
    np.testing.assert_array_equal(result.fine_candidates_deg, ref["fine_candidates"])
    np.testing.assert_allclose(result.coarse_errors, ref["coarse_errors"], rtol=REL, atol=0)
    np.testing.assert_allclose(result.fine_errors, ref["fine_errors"], rtol=REL, atol=0)
    # Individual terms: relative where they are not rounding noise (the noise-free case has ~1e-5 px terms).
    np.testing.assert_allclose(result.per_start_errors, ref["per_start_errors"], rtol=REL, atol=1e-6)
    np.testing.assert_allclose(result.per_view_errors, ref["per_view_errors"], rtol=REL, atol=1e-6)


@pytest.mark.parametrize("case", ["A_p60_clean", "G_p140", "F_p33_sparse"])
def test_hypothesis_cameras_match_fixture(shared, case):
    ref = _load(shared, case)
    candidates = np.concatenate([ref["coarse_candidates"], ref["fine_candidates"]])
    c2w = hypothesis_cameras(candidates).c2w.reshape(-1, 4, 4, 4).numpy()
    np.testing.assert_allclose(c2w, ref["hypothesis_c2w_opencv"], rtol=0, atol=2e-7)


def test_estimator_returns_official_polar_and_typed_result(shared):
    ref = _load(shared, "A_p60_clean")
    est = ElevationEstimator(ElevationConfig()).estimate_from_matches(MatchSet.from_named_arrays(ref))
    assert est.polar_deg == 60.0 and est.elevation_deg == 30.0
    assert not est.robust and est.matcher == "given"
    np.testing.assert_allclose(est.fine_errors, ref["fine_errors"], rtol=REL)
    assert est.match_counts == {k: v for k, v in json.loads(
        (shared(FIXTURES) / "summary.json").read_text())["A_p60_clean"]["n_matches"].items()}
    assert 0.5 < est.confidence <= 1.0  # single deep minimum


def test_zero_matches_is_an_explicit_failure(shared):
    ref = _load(shared, "Z_zero_matches")
    assert bool(ref["returned_is_none"])
    matches = MatchSet.from_named_arrays(ref)
    assert matches.empty_pairs() == [(1, 3)]
    with pytest.raises(ElevationError, match="1_3"):
        ElevationEstimator(ElevationConfig()).estimate_from_matches(matches)
