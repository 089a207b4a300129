"""Kernel offsets, strided output sites and neighbour maps with torchsparse 1.4.0 semantics.

Facts reproduced from torchsparse v1.4.0 (``nn/utils/kernel.py``, ``nn/functional/downsample.py``,
``nn/functional/conv.py``):

* Offsets per axis are ``arange(-k // 2 + 1, k // 2 + 1)`` (Python floor division) times the input tensor
  stride. For an odd kernel volume the offset list runs z outermost, then y, then x (x fastest), so for k = 3
  index ``9 (dz + 1) + 3 (dy + 1) + (dx + 1)``; for an even volume x is outermost and z fastest.
* A conv with stride 1 keeps the input sites. A strided conv (stride 2, kernel 3) outputs every site
  ``q + s * o`` (q an input site, o a kernel offset, s the input tensor stride) whose spatial coordinates are
  multiples of ``2 s`` and not below the per-axis minimum of the input coordinates; there is no upper bound.
  When the stride equals the kernel size the output sites are ``floor(q / (2 s)) * 2 s`` (see
  ``downsample.py``). Output sites are deduplicated and sorted by (batch, x, y, z).
* Neighbour map: output site p takes input site ``p + s * o_k`` for offset k; a transposed conv reuses the map
  of the matching strided conv in the other direction and outputs on the finer level's sites.

A ``KernelMap`` stores this as a table ``out_to_in`` of shape (M_out, K): the input row feeding output p
through offset k, or M_in where there is none (a zero row is appended to the features before gathering), and
the reverse table for transposed convs and input gradients. Tables are filled from linearised coordinate keys
through a direct-address lookup over the sites' box, or sorted keys + ``searchsorted`` for large sparse boxes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from reconstruction.sparse.coordinate_index import CoordinateIndex


def kernel_offsets(kernel_size: int, tensor_stride: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, 3) int64 spatial offsets [dx, dy, dz] in torchsparse 1.4 order, scaled by ``tensor_stride``."""
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    axis = torch.arange(-kernel_size // 2 + 1, kernel_size // 2 + 1, dtype=torch.long) * tensor_stride
    a, b, c = torch.meshgrid(axis, axis, axis, indexing="ij")
    if kernel_size**3 % 2 == 1:
        # a -> z (outermost), b -> y, c -> x (fastest)
        offsets = torch.stack([c, b, a], dim=-1)
    else:
        # a -> x (outermost), b -> y, c -> z (fastest)
        offsets = torch.stack([a, b, c], dim=-1)
    return offsets.reshape(-1, 3).to(device)


# A kernel map uses a direct-address table when its box has at most this many cells per site (plus a floor).
TABLE_CELLS_PER_SITE = 16
TABLE_CELLS_FLOOR = 1 << 22


def neighbour_table(queries: torch.Tensor, targets: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Row of ``targets`` at ``queries[i] + offsets[k]`` for every (i, k), or ``len(targets)`` where absent.

    Args:
        queries: (M, 4) sites; targets: (N, 4) unique sites; offsets: (K, 3) spatial offsets.

    Returns:
        (M, K) int32.
    """
    num_targets = int(targets.shape[0])
    table = torch.full((queries.shape[0], offsets.shape[0]), num_targets, dtype=torch.int32, device=queries.device)
    if queries.shape[0] == 0 or num_targets == 0:
        return table
    # Box holding every target and every shifted query, so a shifted key never leaves the table.
    reach = offsets.abs().max(dim=0).values
    q, t = queries.long(), targets.long()
    low = torch.minimum(q.min(dim=0).values, t.min(dim=0).values)
    high = torch.maximum(q.max(dim=0).values, t.max(dim=0).values)
    low[:3] -= reach
    high[:3] += reach
    cells = int(torch.prod(high - low + 1))
    if cells <= TABLE_CELLS_PER_SITE * (num_targets + queries.shape[0]) + TABLE_CELLS_FLOOR:
        box = torch.cat([low.unsqueeze(0), high.unsqueeze(0)])
        index = CoordinateIndex(box, lookup=False)  # linearisation over the padded box
        lookup = torch.full((cells,), num_targets, dtype=torch.int32, device=queries.device)
        lookup[index.linearise(t)] = torch.arange(num_targets, dtype=torch.int32, device=queries.device)
        base = index.linearise(q)
        deltas = index.key_delta(offsets)
        step = max(1, (1 << 22) // offsets.shape[0])
        for start in range(0, q.shape[0], step):  # row chunks bound the (rows, K) int64 key temporary
            table[start : start + step] = lookup[base[start : start + step, None] + deltas]
        return table
    # Large, sparse boxes: sorted keys + searchsorted.
    index = CoordinateIndex(targets, dense=False)
    base = index.linearise(q)
    batch_inside = (q[:, 3] >= index.low[3]) & (q[:, 3] <= index.high[3])
    for k, offset in enumerate(offsets):  # K iterations over offsets, vectorised over sites
        shifted = q[:, :3] + offset
        inside = ((shifted >= index.low[:3]) & (shifted <= index.high[:3])).all(dim=1) & batch_inside
        rows = index.lookup_keys(base + index.key_delta(offset), inside)
        table[:, k] = torch.where(rows >= 0, rows, num_targets).to(torch.int32)
    return table


@dataclass
class KernelMap:
    """Neighbour map between an input level and an output level, in both directions.

    out_to_in: (M_out, K) int32: input row of ``p + s * o_k`` for output site p, ``num_in`` where absent.
    in_to_out(): (M_in, K) int32: output row of ``q - s * o_k`` for input site q, ``num_out`` where absent
    (built on first use: the transposed conv and the input gradient need it).
    """

    out_to_in: torch.Tensor
    in_coords: torch.Tensor
    out_coords: torch.Tensor
    offsets: torch.Tensor
    _in_to_out: torch.Tensor | None = field(default=None, repr=False)

    @property
    def num_in(self) -> int:
        return int(self.in_coords.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.out_coords.shape[0])

    @property
    def kernel_volume(self) -> int:
        return int(self.offsets.shape[0])

    def in_to_out(self) -> torch.Tensor:
        if self._in_to_out is None:
            self._in_to_out = neighbour_table(self.in_coords, self.out_coords, -self.offsets)
        return self._in_to_out

    def pair_counts(self) -> torch.Tensor:
        """(K,) number of (input, output) pairs per offset (torchsparse's ``nbsizes``)."""
        return (self.out_to_in < self.num_in).sum(dim=0)


def build_kernel_map(
    in_coords: torch.Tensor, out_coords: torch.Tensor, kernel_size: int, in_stride: int
) -> KernelMap:
    """Neighbour map: output site p, offset k -> input row of ``p + in_stride * o_k``.

    Args:
        in_coords: (M_in, 4) input sites (the finer level); out_coords: (M_out, 4) output sites.
        kernel_size: odd or even kernel size; in_stride: tensor stride of the input level.
    """
    offsets = kernel_offsets(kernel_size, in_stride, out_coords.device)
    table = neighbour_table(out_coords, in_coords, offsets)
    return KernelMap(table, in_coords, out_coords, offsets)
