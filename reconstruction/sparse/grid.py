"""Dense cell grids over sparse levels (for the dense-grid conv back end and fast site computations).

A level at tensor stride s has sites ``[x, y, z, b]`` that are normally multiples of s; ``LevelSites`` caches
their cell coordinates ``(x, y, z) / s`` once. A ``LevelGrid`` of cell size ``unit`` starts at ``origin``
(fine-grid units, a multiple of the units of every level placed on it); a level's site sits in cell
``(x, y, z) / unit - origin / unit`` of batch ``b - batch_low``. Cells are laid out as (B, X, Y, Z), C order,
so ``nonzero`` over a grid lists sites sorted by (batch, x, y, z).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LevelSites:
    """Sites of one level and their cell coordinates.

    coords: (M, 4) ``[x, y, z, batch]`` as given; stride: the level's tensor stride.
    cells: (M, 4) int64 ``[x // stride, y // stride, z // stride, batch]`` (exact when ``aligned``).
    aligned: every spatial coordinate is a multiple of ``stride``.
    low, high: (4,) int64 per-column bounds of ``coords`` (None when empty).
    """

    coords: torch.Tensor
    stride: int
    cells: torch.Tensor
    aligned: bool
    low: torch.Tensor | None
    high: torch.Tensor | None
    flat_cache: dict = field(default_factory=dict, repr=False)

    @staticmethod
    def of(coords: torch.Tensor, stride: int) -> "LevelSites":
        cells = coords.long()
        aligned = True
        if stride != 1:
            aligned = bool((cells[:, :3] % stride == 0).all())
            cells = cells.clone()
            cells[:, :3] = torch.div(cells[:, :3], stride, rounding_mode="floor")
        if coords.shape[0] == 0:
            return LevelSites(coords, stride, cells, aligned, None, None)
        low, high = coords.min(dim=0).values.long(), coords.max(dim=0).values.long()
        return LevelSites(coords, stride, cells, aligned, low, high)

    @property
    def num_points(self) -> int:
        return int(self.coords.shape[0])


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
    def covering(levels: list[LevelSites], unit: int, align: int, spare: int = 0) -> "LevelGrid":
        """Smallest grid of cell size ``unit``, origin a multiple of ``align``, containing all non-empty levels.

        ``spare`` extra cells are appended on the high side of every spatial axis.
        """
        present = [lv for lv in levels if lv.low is not None]
        if not present:
            raise ValueError("cannot build a grid over empty site sets")
        low = torch.stack([lv.low for lv in present]).min(dim=0).values
        high = torch.stack([lv.high for lv in present]).max(dim=0).values
        origin = torch.div(low[:3], align, rounding_mode="floor") * align
        size = torch.div(high[:3] - origin, unit, rounding_mode="floor") + 1 + spare
        b = int(high[3] - low[3]) + 1
        return LevelGrid(origin, unit, (b, *(int(s) for s in size.tolist())), int(low[3]))

    def cell_index(self, level: LevelSites, shape: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """(M,) flat int64 cell of each site of an aligned ``level`` on a grid of cell size ``level.stride``
        sharing this origin (``shape`` defaults to this grid's; pass the output grid's for strided convs)."""
        b, sx, sy, sz = shape or self.shape
        key = (tuple(self.origin.tolist()), self.batch_low, (b, sx, sy, sz))
        if key in level.flat_cache:
            return level.flat_cache[key]
        if not level.aligned or int(self.origin.remainder(level.stride).abs().sum()) != 0:
            raise ValueError("sites are not aligned to their tensor stride on this grid")
        weights = torch.tensor([sy * sz, sz, 1, sx * sy * sz], dtype=torch.long, device=level.cells.device)
        corner = torch.cat([torch.div(self.origin, level.stride, rounding_mode="floor"), self.origin.new_tensor([self.batch_low])])
        flat = (level.cells * weights).sum(dim=1) - int((corner.to(weights.device) * weights).sum())
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= b * sx * sy * sz):
            raise RuntimeError("internal error: a sparse site falls outside its dense grid")
        level.flat_cache[key] = flat
        return flat

    def sites(self, occupied: torch.Tensor, unit: int | None = None) -> torch.Tensor:
        """Occupied cells of a (B, X', Y', Z') bool grid sharing this origin -> (M, 4) int64 sites (sorted)."""
        unit = unit or self.unit
        idx = occupied.nonzero()
        out = torch.empty((idx.shape[0], 4), dtype=torch.long, device=occupied.device)
        out[:, :3] = idx[:, 1:] * unit + self.origin.to(idx.device)
        out[:, 3] = idx[:, 0] + self.batch_low
        return out
