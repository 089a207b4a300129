"""Dense cell grids over sparse coordinates (for the dense-grid conv back end and fast site computations).

A ``LevelGrid`` covers a set of sites with cells of ``unit`` fine-grid units starting at ``origin``: site
``[x, y, z, b]`` sits in cell ``((x, y, z) - origin) / unit`` of batch ``b - batch_low``. Cells are laid out
as (B, X, Y, Z), C order, so ``nonzero`` over a grid lists sites sorted by (batch, x, y, z).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LevelGrid:
    """origin: (3,) int64 fine-grid coordinates of cell 0; unit: cell size; shape: (B, X, Y, Z); batch_low."""

    origin: torch.Tensor
    unit: int
    shape: tuple[int, int, int, int]
    batch_low: int

    @property
    def num_cells(self) -> int:
        b, x, y, z = self.shape
        return b * x * y * z

    @staticmethod
    def covering(coords: list[torch.Tensor], unit: int, align: int, spare: int = 0) -> "LevelGrid":
        """Smallest grid with cells of ``unit`` whose origin is a multiple of ``align`` containing all ``coords``.

        Args:
            coords: (M_i, 4) site sets (non-empty ones define the box).
            unit: cell size in fine units; align: origin granularity (a multiple of ``unit``).
            spare: extra cells appended on the high side of every spatial axis.
        """
        sets = [c.long() for c in coords if c.shape[0] > 0]
        if not sets:
            raise ValueError("cannot build a grid over empty site sets")
        low = torch.stack([c.min(dim=0).values for c in sets]).min(dim=0).values
        high = torch.stack([c.max(dim=0).values for c in sets]).max(dim=0).values
        origin = torch.div(low[:3], align, rounding_mode="floor") * align
        size = torch.div(high[:3] - origin, unit, rounding_mode="floor") + 1 + spare
        b = int(high[3] - low[3]) + 1
        return LevelGrid(origin, unit, (b, *(int(s) for s in size.tolist())), int(low[3]))

    def is_aligned(self, coords: torch.Tensor, unit: int | None = None) -> bool:
        """True if every site sits exactly on a cell corner of size ``unit`` (default: this grid's unit)."""
        unit = unit or self.unit
        return bool(((coords[:, :3].long() - self.origin) % unit == 0).all())

    def cell_index(self, coords: torch.Tensor, unit: int | None = None, shape: tuple[int, ...] | None = None):
        """(M, 4) aligned sites -> (M,) flat int64 cell index in a (B, X, Y, Z) layout.

        ``unit`` / ``shape`` override the cell size and grid shape (e.g. the output grid of a strided conv,
        which shares the origin). Raises if a site falls outside the grid.
        """
        unit = unit or self.unit
        b, sx, sy, sz = shape or self.shape
        cell = torch.div(coords[:, :3].long() - self.origin, unit, rounding_mode="floor")
        batch = coords[:, 3].long() - self.batch_low
        bounds = torch.tensor([sx, sy, sz], device=cell.device)
        if cell.shape[0] and not (((cell >= 0) & (cell < bounds)).all() and (batch >= 0).all() and (batch < b).all()):
            raise RuntimeError("internal error: a sparse site falls outside its dense grid")
        return ((batch * sx + cell[:, 0]) * sy + cell[:, 1]) * sz + cell[:, 2]

    def sites(self, occupied: torch.Tensor, unit: int | None = None) -> torch.Tensor:
        """Occupied cells of a (B, X', Y', Z') bool grid sharing this origin -> (M, 4) int64 sites (sorted)."""
        unit = unit or self.unit
        idx = occupied.nonzero()
        out = torch.empty((idx.shape[0], 4), dtype=torch.long, device=occupied.device)
        out[:, :3] = idx[:, 1:] * unit + self.origin
        out[:, 3] = idx[:, 0] + self.batch_low
        return out
