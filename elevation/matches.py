"""`MatchSet`: the pairwise 2D correspondences between the 4 nearby views that the elevation solver consumes.

Views are indexed 0..3 in the official nearby-view order (``0_0 .. 0_3``: polar -10, polar +10, azimuth -10,
azimuth +10 around first-stage view 0). Every unordered pair ``(i, j)`` with ``i < j`` holds an ``(N, 5)``
float32 array of rows ``(x_i, y_i, x_j, y_j, confidence)`` in 256-pixel image coordinates (pixel (0, 0) is the
sample position of the top-left pixel, no half-pixel shift, see :mod:`data.conventions`). The reversed direction
``(j, i)`` is derived by swapping the two points, as the official solver does.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping

import numpy as np

#: Number of nearby views the solver works on.
NUM_VIEWS = 4
#: The 6 unordered pairs, in the official matching order.
PAIRS: tuple[tuple[int, int], ...] = tuple(combinations(range(NUM_VIEWS), 2))


@dataclass(frozen=True)
class MatchSet:
    """Correspondences of the 6 view pairs.

    Attributes:
        pairs: ``{(i, j): (N_ij, 5) float32}`` for every ``i < j`` of :data:`PAIRS`; columns
            ``x_i, y_i, x_j, y_j, confidence`` (pixels at 256 px, confidence in [0, 1]).
    """

    pairs: Mapping[tuple[int, int], np.ndarray]

    def __post_init__(self) -> None:
        missing = [p for p in PAIRS if p not in self.pairs]
        if missing:
            raise ValueError(f"MatchSet is missing view pairs {missing}; it needs all of {list(PAIRS)}")
        clean = {}
        for pair in PAIRS:
            arr = np.asarray(self.pairs[pair], dtype=np.float32)
            if arr.size == 0:
                arr = arr.reshape(0, 5)
            if arr.ndim != 2 or arr.shape[1] != 5:
                raise ValueError(f"matches of pair {pair} must be (N, 5) (x_i, y_i, x_j, y_j, conf), got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"matches of pair {pair} contain NaN or infinite values")
            clean[pair] = arr
        object.__setattr__(self, "pairs", clean)

    @classmethod
    def from_named_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "match_") -> "MatchSet":
        """Build from arrays named ``f"{prefix}{i}_{j}"`` (the layout of the parity fixtures)."""
        return cls({(i, j): np.asarray(arrays[f"{prefix}{i}_{j}"]) for i, j in PAIRS})

    def directed(self, source: int, target: int) -> np.ndarray:
        """(N, 5) float32 rows ``(x_source, y_source, x_target, y_target, conf)`` for an ordered pair."""
        if source == target:
            raise ValueError("a view is not matched with itself")
        if source < target:
            return self.pairs[(source, target)]
        m = self.pairs[(target, source)]
        return np.concatenate([m[:, 2:4], m[:, 0:2], m[:, 4:5]], axis=1)

    def counts(self) -> dict[str, int]:
        """Number of matches per pair, keyed ``"i_j"``."""
        return {f"{i}_{j}": int(self.pairs[(i, j)].shape[0]) for i, j in PAIRS}

    def empty_pairs(self) -> list[tuple[int, int]]:
        """Pairs without a single match (the official pipeline gives up on any such pair)."""
        return [p for p in PAIRS if self.pairs[p].shape[0] == 0]
