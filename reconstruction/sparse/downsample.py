"""Output sites of a strided sparse conv (torchsparse 1.4 ``spdownsample``), two exact implementations.

Rule (kernel k, stride t, input tensor stride s, sample = t * s): if t is 1 or equals k, the sites are
``floor(q / sample) * sample`` of the input sites q. Otherwise they are all ``q + s * o`` (o a kernel offset) whose
spatial coordinates are multiples of ``sample`` and not below the per-axis minimum of the input coordinates
(no upper bound). Results are unique and sorted by (batch, x, y, z).

``grid`` path: a max-pool of the input occupancy on a dense cell grid (fast when the box is well filled);
``keys`` path: enumerate candidates per offset and deduplicate linearised keys (any sparsity).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reconstruction.sparse.coordinate_index import unique_coords
from reconstruction.sparse.grid import LevelGrid, LevelSites
from reconstruction.sparse.kernel_map import kernel_offsets

# The grid path is used when the cell grid has at most this many cells per input site (and at most MAX_CELLS).
GRID_CELLS_PER_SITE = 64
MAX_GRID_CELLS = 1 << 27


def downsample_coords(
    coords: torch.Tensor,
    stride: int,
    kernel_size: int,
    tensor_stride: int,
    method: str = "auto",
    level: LevelSites | None = None,
) -> torch.Tensor:
    """Output sites of a conv with ``stride`` and ``kernel_size`` on sites ``coords`` at ``tensor_stride``.

    Args:
        coords: (N, 4) ``[x, y, z, batch]`` in fine-grid units.
        method: "auto", "grid" or "keys" (same result; "grid" needs sites aligned to ``tensor_stride``).
        level: optional cached ``LevelSites`` of ``coords``.

    Returns:
        (M, 4) sites (dtype of ``coords``) at tensor stride ``tensor_stride * stride``.
    """
    if method not in ("auto", "grid", "keys"):
        raise ValueError(f"method must be 'auto', 'grid' or 'keys', got {method!r}")
    sample = stride * tensor_stride
    if coords.shape[0] == 0:
        return coords.clone()
    if stride in (1, kernel_size):
        out = coords.clone()
        out[:, :3] = torch.div(coords[:, :3], sample, rounding_mode="floor") * sample
        return unique_coords(out)
    if kernel_size % 2 == 0:
        method = "keys"
    if method != "keys":
        level = level if level is not None else LevelSites.of(coords, tensor_stride)
        grid = LevelGrid.covering([level], unit=tensor_stride, align=sample, spare=kernel_size // 2)
        usable = level.aligned and grid.num_cells <= min(
            MAX_GRID_CELLS, GRID_CELLS_PER_SITE * coords.shape[0] + (1 << 20)
        )
        if usable:
            return _downsample_on_grid(level, grid, stride, kernel_size).to(coords.dtype)
        if method == "grid":
            raise ValueError("grid downsampling needs sites aligned to the tensor stride and a small bounding box")
    return _downsample_by_keys(coords, stride, kernel_size, tensor_stride)


def _downsample_on_grid(level: LevelSites, grid: LevelGrid, stride: int, kernel_size: int) -> torch.Tensor:
    occupancy = torch.zeros(grid.num_cells, dtype=torch.float32, device=level.coords.device)
    occupancy[grid.cell_index(level)] = 1.0
    pooled = F.max_pool3d(
        occupancy.view(grid.shape).unsqueeze(1), kernel_size, stride=stride, padding=kernel_size // 2
    ).squeeze(1)
    # Output cell j is centred on input cell stride * j; keep centres not below the input minimum per axis.
    low = level.low[:3]
    first = torch.div(low - grid.origin + grid.unit * stride - 1, grid.unit * stride, rounding_mode="floor")
    keep = pooled > 0
    keep[:, : int(first[0])] = False
    keep[:, :, : int(first[1])] = False
    keep[:, :, :, : int(first[2])] = False
    return grid.sites(keep, unit=grid.unit * stride)


def _downsample_by_keys(coords: torch.Tensor, stride: int, kernel_size: int, tensor_stride: int) -> torch.Tensor:
    sample = stride * tensor_stride
    offsets = kernel_offsets(kernel_size, tensor_stride, coords.device)
    spatial = coords[:, :3].long()
    low = spatial.min(dim=0).values
    pieces = []
    for offset in offsets:  # K iterations over offsets, vectorised over points
        shifted = spatial + offset
        keep = ((shifted % sample == 0) & (shifted >= low)).all(dim=1)
        pieces.append(torch.cat([shifted[keep], coords[keep, 3:].long()], dim=1))
    return unique_coords(torch.cat(pieces, dim=0)).to(coords.dtype)
