"""Hashed coordinate map: integer voxel coordinates -> row index, fully vectorised.

Coordinates are rows ``[x, y, z, batch]`` (int). Each row is linearised into one int64 key by a mixed-radix
code over the bounding box of the indexed set, with the batch most significant and z least significant, so sorting
keys sorts rows lexicographically by (batch, x, y, z). Lookups go through a direct-address table when the box is
small compared with the point count (the usual case for a 96^3 volume) and through ``sort`` + ``searchsorted``
otherwise; both give identical answers.
"""
from __future__ import annotations

import torch

# A direct-address table is used when the box holds at most this many cells per indexed point (plus a floor).
DENSE_CELLS_PER_POINT = 16
DENSE_CELLS_FLOOR = 1 << 22
MAX_KEY = 1 << 62


class CoordinateIndex:
    """Index of a set of unique coordinates (N, 4) ``[x, y, z, batch]``.

    Args:
        coords: (N, 4) integer tensor; rows must be unique (not checked here, see ``SparseTensor``).
        dense: force the direct-address table (True) or the sorted keys (False); None picks by size.
        lookup: build the lookup structure (False: only the linearisation, e.g. to sort or deduplicate).
    """

    def __init__(self, coords: torch.Tensor, dense: bool | None = None, lookup: bool = True) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"coords must have shape (N, 4) [x, y, z, batch], got {tuple(coords.shape)}")
        if coords.dtype.is_floating_point or coords.dtype == torch.bool:
            raise TypeError(f"coords must be an integer tensor, got {coords.dtype}")
        self.device = coords.device
        self.num_points = int(coords.shape[0])
        coords = coords.long()
        if self.num_points == 0:
            self.low = torch.zeros(4, dtype=torch.long, device=self.device)
            self.high = torch.full((4,), -1, dtype=torch.long, device=self.device)
        else:
            self.low = coords.min(dim=0).values
            self.high = coords.max(dim=0).values
        extent = (self.high - self.low + 1).clamp(min=1).tolist()
        cells = 1
        for e in extent:
            cells *= int(e)
        if cells >= MAX_KEY:
            raise ValueError(f"coordinate range {extent} is too large to linearise into int64 keys")
        self.extent = extent
        self.num_cells = cells
        # Key weights for columns [x, y, z, batch]: batch most significant, then x, y, z.
        ex, ey, ez, _ = extent
        self.weights = torch.tensor([ey * ez, ez, 1, ex * ey * ez], dtype=torch.long, device=self.device)
        if dense is None:
            dense = cells <= DENSE_CELLS_PER_POINT * self.num_points + DENSE_CELLS_FLOOR
        self.dense = dense
        if not lookup:
            return
        keys = self.linearise(coords)
        rows = torch.arange(self.num_points, dtype=torch.long, device=self.device)
        if dense:
            self.table = torch.full((cells,), -1, dtype=torch.long, device=self.device)
            self.table[keys] = rows
        else:
            self.sorted_keys, self.sorted_rows = torch.sort(keys)

    def linearise(self, coords: torch.Tensor) -> torch.Tensor:
        """(Q, 4) coords -> (Q,) int64 keys (meaningful only for coords inside the box)."""
        return ((coords.long() - self.low) * self.weights).sum(dim=1)

    def key_delta(self, offset_xyz: torch.Tensor) -> torch.Tensor:
        """Key change of a spatial shift: (..., 3) int offsets -> (...) int64 (keys are linear in coords)."""
        return (offset_xyz.long() * self.weights[:3]).sum(dim=-1)

    def inside(self, coords: torch.Tensor) -> torch.Tensor:
        """(Q, 4) -> (Q,) bool: inside the bounding box of the indexed set."""
        coords = coords.long()
        return ((coords >= self.low) & (coords <= self.high)).all(dim=1)

    def lookup_keys(self, keys: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Rows of the given keys, -1 where absent or where ``valid`` is False. Shapes (Q,) -> (Q,) int64."""
        if self.num_points == 0:
            return torch.full_like(keys, -1)
        if self.dense:
            rows = self.table[keys.clamp(0, self.num_cells - 1)]
        else:
            pos = torch.searchsorted(self.sorted_keys, keys).clamp(max=self.num_points - 1)
            rows = torch.where(self.sorted_keys[pos] == keys, self.sorted_rows[pos], -1)
        return torch.where(valid, rows, -1)

    def query(self, coords: torch.Tensor) -> torch.Tensor:
        """(Q, 4) coords -> (Q,) int64 row indices into the indexed set, -1 for coordinates not in it."""
        coords = coords.to(self.device)
        return self.lookup_keys(self.linearise(coords), self.inside(coords))


def unique_coords(coords: torch.Tensor) -> torch.Tensor:
    """Unique rows of (N, 4) ``[x, y, z, batch]`` coords, sorted by (batch, x, y, z) like torchsparse 1.4."""
    if coords.shape[0] == 0:
        return coords
    index = CoordinateIndex(coords, lookup=False)
    keys = torch.unique(index.linearise(coords))
    out = torch.empty((keys.shape[0], 4), dtype=torch.long, device=coords.device)
    ex, ey, ez, _ = index.extent
    out[:, 2] = keys % ez
    keys = keys // ez
    out[:, 1] = keys % ey
    keys = keys // ey
    out[:, 0] = keys % ex
    out[:, 3] = keys // ex
    return (out + index.low).to(coords.dtype)
