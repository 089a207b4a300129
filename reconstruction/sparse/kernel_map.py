"""Kernel offsets, strided output sites and neighbour maps with torchsparse 1.4.0 semantics.

Facts reproduced from torchsparse v1.4.0 (``nn/utils/kernel.py``, ``nn/functional/downsample.py``,
``nn/functional/conv.py``):

* Offsets per axis are ``arange(-k // 2 + 1, k // 2 + 1)`` (Python floor division) times the input tensor
  stride. For an odd kernel volume the offset list runs z outermost, then y, then x (x fastest), so for k = 3
  index ``9 (dz + 1) + 3 (dy + 1) + (dx + 1)``; for an even volume x is outermost and z fastest.
* A conv with stride 1 keeps the input sites. A strided conv (stride 2, kernel 3) outputs every site
  ``q + s * o`` (q an input site, o a kernel offset, s the input tensor stride) whose spatial coordinates are
  multiples of ``2 s`` and not below the per-axis minimum of the input coordinates; there is no upper bound.
  When the stride equals the kernel size the output sites are ``floor(q / (2 s)) * 2 s``. Output sites are
  deduplicated and sorted by (batch, x, y, z).
* Neighbour map: output site p takes input site ``p + s * o_k`` for offset k; a transposed conv reuses the map
  of the matching strided conv in the other direction and outputs on the finer level's sites.

A ``KernelMap`` stores this as a dense table ``out_to_in`` of shape (M_out, K): the input row feeding output p
through offset k, or M_in where there is none (a zero row is appended to the features before gathering).
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


@dataclass
class KernelMap:
    """Neighbour map between an input level and an output level.

    out_to_in: (M_out, K) int32 input row per (output site, offset), ``num_in`` where absent.
    num_in, num_out: M_in and M_out.
    """

    out_to_in: torch.Tensor
    num_in: int
    num_out: int
    _in_to_out: torch.Tensor | None = field(default=None, repr=False)

    @property
    def kernel_volume(self) -> int:
        return int(self.out_to_in.shape[1])

    def in_to_out(self) -> torch.Tensor:
        """(M_in, K) int32 output row per (input site, offset), ``num_out`` where absent (built once)."""
        if self._in_to_out is None:
            k = self.kernel_volume
            table = torch.full(((self.num_in + 1) * k,), self.num_out, dtype=torch.long, device=self.out_to_in.device)
            src = self.out_to_in.long()
            present = src < self.num_in
            out_rows, offsets = present.nonzero(as_tuple=True)
            table[src[out_rows, offsets] * k + offsets] = out_rows
            self._in_to_out = table.view(self.num_in + 1, k)[: self.num_in].to(torch.int32)
        return self._in_to_out

    def pair_counts(self) -> torch.Tensor:
        """(K,) number of (input, output) pairs per offset (torchsparse's ``nbsizes``)."""
        return (self.out_to_in < self.num_in).sum(dim=0)


def build_kernel_map(
    in_index: CoordinateIndex, out_coords: torch.Tensor, kernel_size: int, in_stride: int
) -> KernelMap:
    """Neighbour table: output site p, offset k -> input row of ``p + in_stride * o_k`` (or M_in if absent).

    Args:
        in_index: index of the M_in input sites.
        out_coords: (M_out, 4) output sites.
        kernel_size: odd or even kernel size; in_stride: tensor stride of the input level.
    """
    offsets = kernel_offsets(kernel_size, in_stride, out_coords.device)
    num_in = in_index.num_points
    out_coords = out_coords.long()
    base_keys = in_index.linearise(out_coords)
    batch_inside = (out_coords[:, 3] >= in_index.low[3]) & (out_coords[:, 3] <= in_index.high[3])
    table = torch.empty((out_coords.shape[0], offsets.shape[0]), dtype=torch.int32, device=out_coords.device)
    for k, offset in enumerate(offsets):  # K iterations over offsets, vectorised over sites
        shifted = out_coords[:, :3] + offset
        inside = ((shifted >= in_index.low[:3]) & (shifted <= in_index.high[:3])).all(dim=1) & batch_inside
        rows = in_index.lookup_keys(base_keys + in_index.key_delta(offset), inside)
        table[:, k] = torch.where(rows >= 0, rows, num_in).to(torch.int32)
    return KernelMap(table, num_in=num_in, num_out=int(out_coords.shape[0]))
