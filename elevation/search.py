"""Coarse-to-fine search of the input polar angle (official schedule).

Coarse: candidates ``arange(30, 150, 10)`` (12 values); fine: ``arange(c1 - 10, c1 + 10, 1)`` (20 values) around
the coarse argmin ``c1``; the fine argmin is the result, so it lies in [20, 149] deg. The argmin is taken over the
float32 error tensor (first minimum wins), as upstream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from elevation.matches import MatchSet
from elevation.solver import TermFunction, build_associations, official_term, per_view_errors, total_error


@dataclass(frozen=True)
class SearchSchedule:
    """Candidate grids (deg). Defaults are the official ones."""

    coarse_min_deg: int = 30
    coarse_max_deg: int = 150
    coarse_step_deg: int = 10
    fine_half_width_deg: int = 10
    fine_step_deg: int = 1

    def coarse(self) -> np.ndarray:
        return np.arange(self.coarse_min_deg, self.coarse_max_deg, self.coarse_step_deg)

    def fine(self, centre_deg: int) -> np.ndarray:
        w = self.fine_half_width_deg
        return np.arange(centre_deg - w, centre_deg + w, self.fine_step_deg)


@dataclass(frozen=True)
class SearchResult:
    """Both stages of the search.

    Attributes:
        coarse_candidates_deg: (12,) int candidate polar angles; coarse_errors: (12,) float32 errors (px).
        fine_candidates_deg: (20,) int; fine_errors: (20,) float32 (px).
        per_view_errors: (32, 3, 2) float32 terms, coarse rows then fine rows (see ``solver.per_view_errors``).
        polar_deg: the fine argmin (deg from +z).
        association_counts: kept three-view associations of the 6 terms (start-major, as ``per_view_errors``);
            they do not depend on the candidate angle.
    """

    coarse_candidates_deg: np.ndarray
    coarse_errors: np.ndarray
    fine_candidates_deg: np.ndarray
    fine_errors: np.ndarray
    per_view_errors: np.ndarray
    polar_deg: int
    association_counts: tuple[int, ...] = ()

    @property
    def per_start_errors(self) -> np.ndarray:
        """(32, 3) float32: the two terms of each start view added."""
        return self.per_view_errors[..., 0] + self.per_view_errors[..., 1]


def coarse_to_fine_search(
    matches: MatchSet, term: TermFunction = official_term, schedule: SearchSchedule = SearchSchedule()
) -> SearchResult:
    """Run the coarse and the fine stage with one per-point reduction ``term`` (official by default)."""
    associations = build_associations(matches)
    coarse = schedule.coarse()
    coarse_terms = per_view_errors(matches, coarse, term, associations)
    coarse_errors = total_error(coarse_terms)
    centre = int(coarse[int(torch.argmin(coarse_errors))])
    fine = schedule.fine(centre)
    fine_terms = per_view_errors(matches, fine, term, associations)
    fine_errors = total_error(fine_terms)
    polar = int(fine[int(torch.argmin(fine_errors))])
    return SearchResult(
        coarse_candidates_deg=coarse,
        coarse_errors=coarse_errors.numpy(),
        fine_candidates_deg=fine,
        fine_errors=fine_errors.numpy(),
        per_view_errors=torch.cat([coarse_terms, fine_terms]).numpy(),
        polar_deg=polar,
        association_counts=tuple(int(a.kept.numel()) for a in associations.values()),
    )
