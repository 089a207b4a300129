"""``SparseTensor``: voxel features on a sparse set of integer coordinates (torchsparse 1.4 layout).

Coordinates are rows ``[x, y, z, batch]`` in fine-grid units (batch index last, as torchsparse 1.4); a tensor at
tensor stride ``s`` has coordinates that are multiples of ``s`` after downsampling. Tensors derived from one
input share a ``SparseCache`` (site sets per stride, cell coordinates, kernel maps, dense plans) by reference, so the
neighbour maps of a level are built once and reused by every conv of that level and by the transposed convs
that come back to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from reconstruction.sparse.coordinate_index import CoordinateIndex
from reconstruction.sparse.grid import LevelSites


@dataclass
class SparseCache:
    """Per-input caches shared by all tensors derived from it.

    coords_by_stride: tensor stride -> (M, 4) coordinates of that level.
    levels: tensor stride -> ``LevelSites`` (cell coordinates and bounds) of that level.
    kernel_maps: (finer stride, kernel size, stride) -> ``KernelMap`` (gather back end), and
        ("dense", transposed, finer stride, kernel size, stride) -> ``DensePlan`` (dense back end).
    """

    coords_by_stride: dict[int, torch.Tensor] = field(default_factory=dict)
    kernel_maps: dict[tuple, Any] = field(default_factory=dict)
    levels: dict[int, LevelSites] = field(default_factory=dict, repr=False)

    def level(self, stride: int) -> LevelSites:
        """Cell coordinates and bounds of level ``stride`` (computed once)."""
        if stride not in self.levels:
            self.levels[stride] = LevelSites.of(self.coords_by_stride[stride], stride)
        return self.levels[stride]


class SparseTensor:
    """Features on sparse voxels.

    Args:
        coords: (M, 4) integer tensor ``[x, y, z, batch]`` in fine-grid units, rows unique.
        feats: (M, C) float tensor, row i belongs to ``coords[i]``.
        stride: tensor stride (int >= 1): spacing of this level's grid in fine-grid units.
        cache: shared ``SparseCache``; a new one is created (holding ``coords`` at ``stride``) when None.
        check_unique: verify that the coordinate rows are unique (one sort; skip for internal tensors).
    """

    def __init__(
        self,
        coords: torch.Tensor,
        feats: torch.Tensor,
        stride: int = 1,
        cache: SparseCache | None = None,
        check_unique: bool = True,
    ) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(
                f"SparseTensor coords must have shape (M, 4) with columns [x, y, z, batch], got {tuple(coords.shape)}"
            )
        if coords.dtype.is_floating_point or coords.dtype == torch.bool:
            raise TypeError(f"SparseTensor coords must be integers (e.g. torch.int32), got {coords.dtype}")
        if feats.dim() != 2 or feats.shape[0] != coords.shape[0]:
            raise ValueError(
                f"SparseTensor feats must have shape (M, C) with M = {coords.shape[0]} coordinate rows, "
                f"got {tuple(feats.shape)}"
            )
        if feats.device != coords.device:
            raise ValueError(f"coords on {coords.device} but feats on {feats.device}: move both to one device")
        if int(stride) < 1:
            raise ValueError(f"tensor stride must be >= 1, got {stride}")
        self.coords = coords
        self.feats = feats
        self.stride = int(stride)
        if cache is None:
            if check_unique and coords.shape[0] > 0:
                index = CoordinateIndex(coords, lookup=False)
                keys = index.linearise(coords)
                if torch.unique(keys).shape[0] != keys.shape[0]:
                    raise ValueError("SparseTensor coords contain duplicate rows: merge duplicate voxels first")
            cache = SparseCache()
            cache.coords_by_stride[self.stride] = coords
        self.cache = cache

    @property
    def num_points(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.feats.shape[1])

    def replace_feats(self, feats: torch.Tensor) -> "SparseTensor":
        """Same sites and cache, new (M, C') features."""
        return SparseTensor(self.coords, feats, self.stride, cache=self.cache)

    def __add__(self, other: "SparseTensor") -> "SparseTensor":
        """Elementwise sum of two tensors on the same sites (same coordinate rows in the same order)."""
        if not isinstance(other, SparseTensor):
            return NotImplemented
        if other.coords is not self.coords and not (
            other.coords.shape == self.coords.shape and torch.equal(other.coords, self.coords)
        ):
            raise ValueError(
                f"cannot add sparse tensors on different sites ({self.num_points} at stride {self.stride} vs "
                f"{other.num_points} at stride {other.stride})"
            )
        return self.replace_feats(self.feats + other.feats)

    def to(self, device: torch.device | str) -> "SparseTensor":
        """Copy to ``device`` (a fresh cache: maps are rebuilt there on demand)."""
        return SparseTensor(self.coords.to(device), self.feats.to(device), self.stride, check_unique=False)

    def dense(self, grid_size: tuple[int, int, int], batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Scatter to a dense grid indexed by coords / stride.

        Args:
            grid_size: (X, Y, Z) cells; sites outside are dropped.
            batch_size: B.

        Returns:
            volume (B, C, X, Y, Z) with zeros at empty cells, and mask (B, 1, X, Y, Z) (1.0 at sites).
        """
        gx, gy, gz = (int(g) for g in grid_size)
        cell = torch.div(self.coords[:, :3].long(), self.stride, rounding_mode="floor")
        batch = self.coords[:, 3].long()
        keep = (cell >= 0).all(1) & (cell < torch.tensor([gx, gy, gz], device=cell.device)).all(1)
        keep &= (batch >= 0) & (batch < batch_size)
        flat = ((batch * gx + cell[:, 0]) * gy + cell[:, 1]) * gz + cell[:, 2]
        flat = flat[keep]
        volume = self.feats.new_zeros(batch_size * gx * gy * gz, self.num_channels)
        volume[flat] = self.feats[keep]
        mask = self.feats.new_zeros(batch_size * gx * gy * gz)
        mask[flat] = 1.0
        volume = volume.view(batch_size, gx, gy, gz, -1).permute(0, 4, 1, 2, 3)
        return volume, mask.view(batch_size, 1, gx, gy, gz)

    def __repr__(self) -> str:
        return f"SparseTensor(num_points={self.num_points}, channels={self.num_channels}, stride={self.stride})"
