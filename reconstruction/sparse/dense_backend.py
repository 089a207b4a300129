"""Dense-grid back end of the sparse conv: exact for the torchsparse 1.4 maths, fast when a level is well filled.

A sparse conv ``out[p] = sum_k in[p + s * o_k] @ W[k]`` over existing neighbours equals a dense
cross-correlation of the zero-filled level grid, read at the output sites; a strided conv is the same with
stride t (centres on every t-th cell, the output sites are still those of ``downsample_coords``), and a transposed
conv ``out_fine[q] = sum_k in_coarse[q - s_f * o_k] @ W[k]`` is ``conv_transpose3d`` of the zero-filled coarse
grid read at the fine sites. Only the choice of sites is sparse; they come from the same rules as the gather
back end, so both back ends give the same sites and (to float rounding) the same features. torch's conv kernels
(oneDNN on CPU, cuDNN on CUDA) then do the arithmetic without an explicit neighbour table.

Note for CUDA: cuDNN may use TF32 unless ``torch.backends.cudnn.allow_tf32 = False``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reconstruction.sparse.grid import LevelGrid, LevelSites

# A level runs on the dense grid when its sites fill at least this fraction of the grid's cells ...
DENSE_MIN_OCCUPANCY = 0.1
# ... and the zero-filled grid (cells x channels) stays below this many bytes.
DENSE_MAX_GRID_BYTES = 2 * 2**30


@dataclass
class DensePlan:
    """Cell indices of the input and output sites on the dense grids of one conv.

    in_shape: (B, X, Y, Z) of the input grid; in_cells: (M_in,) flat cell of each input site.
    out_cells: (M_out,) flat cell of each output site in the conv's (B, X', Y', Z') output grid.
    occupancy: sites / cells of the densest grid involved (drives the automatic back-end choice).
    """

    in_shape: tuple[int, int, int, int]
    in_cells: torch.Tensor
    out_cells: torch.Tensor
    occupancy: float
    largest_grid_cells: int


def plan_dense(
    in_level: LevelSites, out_level: LevelSites, kernel_size: int, stride: int, transposed: bool
) -> DensePlan | None:
    """Grid layout for a dense-grid conv, or None when it does not apply (even kernel, misaligned or empty)."""
    if kernel_size % 2 == 0 or in_level.num_points == 0 or out_level.num_points == 0:
        return None
    fine, coarse = (out_level, in_level) if transposed else (in_level, out_level)
    if not (fine.aligned and coarse.aligned) or coarse.stride != fine.stride * stride:
        return None
    grid = LevelGrid.covering([fine, coarse], unit=fine.stride, align=coarse.stride)
    b, sx, sy, sz = grid.shape
    if not transposed:
        # conv3d(stride t, padding k // 2): output cell j is centred on input cell t * j.
        in_shape = grid.shape
        out_shape = (b, *(int((n - 1) // stride + 1) for n in (sx, sy, sz)))
        in_cells, out_cells = grid.cell_index(fine), grid.cell_index(coarse, out_shape)
    else:
        # conv_transpose3d(stride t, padding k // 2) maps n_c coarse cells to (n_c - 1) t + 1 fine cells.
        in_shape = (b, *(int(-(-(n - 1) // stride) + 1) for n in (sx, sy, sz)))
        out_shape = (b, *(int((n - 1) * stride + 1) for n in in_shape[1:]))
        in_cells, out_cells = grid.cell_index(coarse, in_shape), grid.cell_index(fine, out_shape)
    return DensePlan(in_shape, in_cells, out_cells, fine.num_points / grid.num_cells, grid.num_cells)


def dense_kernel(kernel: torch.Tensor, kernel_size: int, transposed: bool) -> torch.Tensor:
    """(K, C_in, C_out) torchsparse kernel -> conv3d weight (C_out, C_in, kx, ky, kz) or conv_transpose3d
    weight (C_in, C_out, kx, ky, kz). Offset k = (dz, dy, dx) in C order with x fastest."""
    k5 = kernel.view(kernel_size, kernel_size, kernel_size, kernel.shape[1], kernel.shape[2])
    return k5.permute(3, 4, 2, 1, 0) if transposed else k5.permute(4, 3, 2, 1, 0)


def dense_conv(
    feats: torch.Tensor, kernel: torch.Tensor, plan: DensePlan, kernel_size: int, stride: int, transposed: bool
) -> torch.Tensor:
    """(M_in, C_in) features -> (M_out, C_out) through a dense conv on the planned grids (autograd-friendly)."""
    b, sx, sy, sz = plan.in_shape
    c_in = feats.shape[1]
    volume = feats.new_zeros(b * sx * sy * sz, c_in).index_copy(0, plan.in_cells, feats)
    volume = volume.view(b, sx, sy, sz, c_in).permute(0, 4, 1, 2, 3)  # channels-last 3-D layout
    weight = dense_kernel(kernel, kernel_size, transposed)
    if transposed:
        out = F.conv_transpose3d(volume, weight, stride=stride, padding=kernel_size // 2)
    else:
        out = F.conv3d(volume, weight, stride=stride, padding=kernel_size // 2)
    out = out.permute(0, 2, 3, 4, 1).reshape(-1, out.shape[1])
    return out.index_select(0, plan.out_cells)
