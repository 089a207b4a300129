"""Narrow-band SDF grid on analytic fields: the same mesh as the dense grid, thin features a naive band misses,
the check-and-grow step, and batch-independent evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reconstruction.meshing import evaluate_sdf_grid, marching_cubes
from reconstruction.narrow_band import _stride_schedule, evaluate_sdf_band, fixed_shape


def assert_same_mesh(dense, band):
    v1, f1 = marching_cubes(dense)
    v2, f2 = marching_cubes(band)
    assert len(f1) > 0, "the dense grid has no surface: the test field is wrong"
    assert v1.shape == v2.shape and f1.shape == f2.shape, f"dense {v1.shape}/{f1.shape} vs band {v2.shape}/{f2.shape}"
    np.testing.assert_allclose(v2, v1, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(f2, f1)


def sphere(centre, radius):
    c = torch.tensor(centre)
    return lambda p: (p - c).norm(dim=-1) - radius


@pytest.mark.parametrize("resolution,max_fraction", [(64, 0.8), (97, 0.5)])  # 0.71, 0.44 measured (0.15 at 256)
def test_sphere_band_gives_the_dense_mesh_with_few_queries(resolution, max_fraction):
    fn = sphere([0.1, -0.05, 0.02], 0.5)
    dense = evaluate_sdf_grid(fn, resolution)
    band, stats = evaluate_sdf_band(fn, resolution)
    assert_same_mesh(dense, band)
    ev = band.evaluated
    torch.testing.assert_close(band.sdf[ev], dense.sdf[ev], rtol=0, atol=0)
    assert torch.equal(band.sdf > 0, dense.sdf > 0)  # the fill has the right sign everywhere
    assert stats.growth_rounds == 0 and not stats.dense_fallback
    assert stats.queries == int(ev.sum()) and stats.query_fraction < max_fraction, stats


def test_query_fraction_shrinks_with_resolution():
    fn = sphere([0.0, 0.0, 0.0], 0.6)
    fractions = [evaluate_sdf_band(fn, r)[1].query_fraction for r in (64, 128)]
    assert fractions[1] < 0.6 * fractions[0], fractions  # surface ~ R^2 against volume R^3


def thin_plate(p):
    """A slab 0.05 thick (about 1.6 cells of the 64^3 grid) between two planes of the coarse (8-cell) grid."""
    return (p[:, 2] - 0.38).abs() - 0.025


def tiny_sphere(p):
    """A sphere of radius 1.5 cells of the 64^3 grid, centred inside a coarse block."""
    return (p - torch.tensor([0.31, -0.42, 0.13])).norm(dim=-1) - 1.5 * 2 / 63


@pytest.mark.parametrize("fn", [thin_plate, tiny_sphere], ids=["thin-plate", "tiny-sphere"])
def test_features_thinner_than_a_coarse_block(fn):
    resolution = 64
    dense = evaluate_sdf_grid(fn, resolution)
    band, _ = evaluate_sdf_band(fn, resolution)
    assert_same_mesh(dense, band)
    # a naive band (refine only where the coarse corners change sign) misses the feature entirely
    naive, _ = evaluate_sdf_band(fn, resolution, margin=1e-9, max_rounds=0)
    assert len(marching_cubes(naive)[1]) == 0


def spike(p):
    """A floor (z = -0.5) with a thin rod (radius 1.5 cells of the 64^3 grid) standing up through the middle of a
    column of coarse blocks, whose corners all lie ~0.13 from the rod."""
    h = 2 / 63
    axis = -1 + 8 * h * 4.5
    rod = torch.maximum((p[:, :2] - axis).norm(dim=-1) - 1.5 * h, p[:, 2] - 0.6)
    return torch.minimum(p[:, 2] + 0.5, rod)


def test_check_and_grow_follows_the_surface_out_of_the_band():
    dense = evaluate_sdf_grid(spike, 64)
    # margin 0.1 declares the rod's blocks surface-free; the check finds the rod where it leaves the floor's band
    band, stats = evaluate_sdf_band(spike, 64, margin=0.1)
    assert stats.growth_rounds >= 1 and not stats.dense_fallback, stats
    assert_same_mesh(dense, band)
    capped, capped_stats = evaluate_sdf_band(spike, 64, margin=0.1, max_rounds=0)
    assert capped_stats.dense_fallback and capped_stats.queries == 64 ** 3
    assert_same_mesh(dense, capped)


def test_no_surface_and_tiny_grids():
    band, stats = evaluate_sdf_band(lambda p: torch.ones(p.shape[0]), 33)
    assert len(marching_cubes(band)[1]) == 0 and (band.sdf > 0).all()
    for resolution in (2, 3, 5, 9):
        fn = sphere([0.1, 0.0, 0.0], 0.7)
        band, _ = evaluate_sdf_band(fn, resolution)
        dense = evaluate_sdf_grid(fn, resolution)
        assert torch.equal(band.sdf > 0, dense.sdf > 0)


def test_stride_schedule_and_bad_arguments():
    assert _stride_schedule(256, 8) == [8, 4, 2]
    assert _stride_schedule(12, 8) == [4, 2]
    with pytest.raises(ValueError, match="power of 2"):
        evaluate_sdf_band(tiny_sphere, 16, coarse_stride=6)
    with pytest.raises(ValueError, match="margin"):
        evaluate_sdf_band(tiny_sphere, 16, margin=0)


def test_fixed_shape_makes_values_independent_of_the_batch():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 256), torch.nn.Softplus(), torch.nn.Linear(256, 1))
    calls = []

    def fn(p):
        calls.append(p.shape[0])
        with torch.no_grad():
            return mlp(p)

    wrapped = fixed_shape(fn, 64)
    points = torch.rand(300, 3)
    all_at_once = wrapped(points)
    subset = wrapped(points[torch.tensor([7, 250, 3])])
    assert set(calls) == {64}
    assert torch.equal(subset, all_at_once[torch.tensor([7, 250, 3])])
    assert wrapped(points[:0]).shape == (0,)


def test_config_names_the_grid_choices():
    from data.config import ConfigError
    from reconstruction.config import ReconstructionConfig

    with pytest.raises(ConfigError, match="sdf_grid must be one of \\['dense', 'narrow_band'\\]"):
        ReconstructionConfig(sdf_grid="sparse").validate()
    with pytest.raises(ConfigError, match="band_coarse_stride"):
        ReconstructionConfig(band_coarse_stride=6).validate()
    with pytest.raises(ConfigError, match="band_margin"):
        ReconstructionConfig(band_margin=0).validate()
