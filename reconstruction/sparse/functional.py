"""Sparse 3D convolution (torchsparse 1.4 ``conv3d``): site bookkeeping and the gather-GEMM back end.

``sparse_conv3d`` finds the output sites (kept, downsampled or the cached finer level), then computes the
features with the gather back end below or with the dense-grid back end (``dense_backend.py``), both exact and
identical for CPU and CUDA.

Gather back end: for every output row o: ``out[o] = sum_k feats[table[o, k]] @ W[k]``. The rows are processed in chunks: the
K neighbours of a chunk are gathered into a (rows, K * C_in) matrix and multiplied by the kernel flattened to
(K * C_in, C_out) in one GEMM, and the result is written straight into the chunk's output rows (each output row
is produced once, so the scatter is a plain write, no atomic adds). Missing neighbours point at a zero row.
The backward pass uses the same operation with the transposed table for the input gradient and accumulates
the kernel gradient chunk by chunk. Chunks are sized to a memory budget for the gathered matrix.
"""
from __future__ import annotations

import torch

from reconstruction.sparse.dense_backend import DENSE_MAX_GRID_BYTES, DENSE_MIN_OCCUPANCY, dense_conv, plan_dense
from reconstruction.sparse.downsample import downsample_coords
from reconstruction.sparse.kernel_map import KernelMap, build_kernel_map
from reconstruction.sparse.tensor import SparseTensor

# Bytes of gathered neighbour features per chunk (the largest temporary of a conv).
DEFAULT_GATHER_BUDGET_BYTES = 64 * 2**20


def _rows_per_chunk(width: int, element_size: int, budget: int) -> int:
    return max(1, budget // max(1, width * element_size))


def _with_zero_row(feats: torch.Tensor) -> torch.Tensor:
    return torch.cat([feats, feats.new_zeros(1, feats.shape[1])], dim=0)


def gather_matmul(source: torch.Tensor, table: torch.Tensor, weight_flat: torch.Tensor, budget: int) -> torch.Tensor:
    """``out[o] = concat_k(source_padded[table[o, k]]) @ weight_flat``.

    Args:
        source: (N, C) rows; row N (appended zeros) is what ``table`` entries equal to N point at.
        table: (M, K) integer rows into ``source`` (values in [0, N]).
        weight_flat: (K * C, C_out).

    Returns:
        (M, C_out).
    """
    num_out, kernel_volume = table.shape
    padded = _with_zero_row(source)
    out = source.new_empty(num_out, weight_flat.shape[1])
    step = _rows_per_chunk(kernel_volume * source.shape[1], source.element_size(), budget)
    for start in range(0, num_out, step):
        rows = table[start : start + step]
        gathered = padded.index_select(0, rows.reshape(-1)).view(rows.shape[0], -1)
        torch.mm(gathered, weight_flat, out=out[start : start + step])
    return out


def gather_weight_grad(
    feats: torch.Tensor, table: torch.Tensor, grad_out: torch.Tensor, kernel_volume: int, budget: int
) -> torch.Tensor:
    """``dW[k] = sum_o feats_padded[table[o, k]]^T grad_out[o]`` -> (K, C_in, C_out)."""
    padded = _with_zero_row(feats)
    grad = feats.new_zeros(kernel_volume * feats.shape[1], grad_out.shape[1])
    step = _rows_per_chunk(kernel_volume * feats.shape[1], feats.element_size(), budget)
    for start in range(0, table.shape[0], step):
        rows = table[start : start + step]
        gathered = padded.index_select(0, rows.reshape(-1)).view(rows.shape[0], -1)
        grad.addmm_(gathered.t(), grad_out[start : start + step])
    return grad.view(kernel_volume, feats.shape[1], grad_out.shape[1])


class _GatherConv(torch.autograd.Function):
    """Autograd wrapper: forward table (out -> in) and, for the input gradient, the reverse table."""

    @staticmethod
    def forward(ctx, feats, kernel, kernel_map: KernelMap, transposed: bool, budget: int):
        table = kernel_map.in_to_out() if transposed else kernel_map.out_to_in
        k, c_in, c_out = kernel.shape
        out = gather_matmul(feats.contiguous(), table, kernel.reshape(k * c_in, c_out), budget)
        ctx.save_for_backward(feats, kernel)
        ctx.kernel_map, ctx.transposed, ctx.budget = kernel_map, transposed, budget
        return out

    @staticmethod
    def backward(ctx, grad_out):
        feats, kernel = ctx.saved_tensors
        kmap, transposed, budget = ctx.kernel_map, ctx.transposed, ctx.budget
        forward_table = kmap.in_to_out() if transposed else kmap.out_to_in
        reverse_table = kmap.out_to_in if transposed else kmap.in_to_out()
        grad_out = grad_out.contiguous()
        k, c_in, c_out = kernel.shape
        grad_feats = grad_kernel = None
        if ctx.needs_input_grad[0]:
            weight_t = kernel.transpose(1, 2).reshape(k * c_out, c_in)
            grad_feats = gather_matmul(grad_out, reverse_table, weight_t, budget)
        if ctx.needs_input_grad[1]:
            grad_kernel = gather_weight_grad(feats, forward_table, grad_out, k, budget)
        return grad_feats, grad_kernel, None, None, None


BACKENDS = ("auto", "gather", "dense")


def sparse_conv3d(
    x: SparseTensor,
    kernel: torch.Tensor,
    kernel_size: int,
    stride: int = 1,
    transposed: bool = False,
    backend: str = "auto",
    budget: int = DEFAULT_GATHER_BUDGET_BYTES,
) -> SparseTensor:
    """torchsparse 1.4 ``conv3d`` (no bias, dilation 1).

    Args:
        x: input at tensor stride s.
        kernel: (K, C_in, C_out) with K = kernel_size^3, or (C_in, C_out) for kernel_size 1.
        stride: 1 (sites kept) or > 1 (strided: new sites at stride s * stride; transposed: back to the cached
            sites of stride s / stride, which must come from a strided conv run earlier on the same input).
        transposed: transposed (upsampling) conv, the mirror of the strided conv.
        backend: "gather" (gather-GEMM over the neighbour table; any sparsity), "dense" (zero-filled dense grid
            and torch's conv; well-filled levels, odd kernels) or "auto" (dense when the level fills at least
            ``DENSE_MIN_OCCUPANCY`` of its grid, else gather). Same sites and maths either way.
        budget: bytes of gathered neighbour features per chunk (gather back end).

    Returns:
        SparseTensor (M_out, C_out) sharing ``x``'s cache.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if kernel.dim() == 2:
        if kernel_size != 1 or stride != 1:
            raise ValueError("a 2-D kernel (C_in, C_out) is only valid for kernel_size 1 and stride 1")
        return x.replace_feats(x.feats.matmul(kernel))
    if kernel.shape[0] != kernel_size**3 or kernel.shape[1] != x.num_channels:
        raise ValueError(
            f"kernel shape {tuple(kernel.shape)} does not fit kernel_size {kernel_size} and "
            f"{x.num_channels} input channels (expected ({kernel_size ** 3}, {x.num_channels}, C_out))"
        )
    cache = x.cache
    if not transposed:
        out_stride = x.stride * stride
        if out_stride not in cache.coords_by_stride:
            cache.coords_by_stride[out_stride] = downsample_coords(
                x.coords, stride, kernel_size, x.stride, level=cache.level(x.stride)
            )
        fine_stride = x.stride
    else:
        if x.stride % stride != 0 or (x.stride // stride) not in cache.coords_by_stride:
            raise ValueError(
                f"transposed conv with stride {stride} at tensor stride {x.stride} needs the sites of tensor stride "
                f"{x.stride // stride if x.stride % stride == 0 else x.stride / stride}: run the matching strided "
                "conv on the same input first (torchsparse semantics)"
            )
        out_stride = fine_stride = x.stride // stride
    out_coords = cache.coords_by_stride[out_stride]
    level = cache.coords_by_stride.get(x.stride)
    if level is None or (level is not x.coords and level.shape[0] != x.num_points):
        raise ValueError(f"input sites do not match the cached sites of tensor stride {x.stride}")
    fine_coords, coarse_coords = (out_coords, x.coords) if transposed else (x.coords, out_coords)
    # One map per (fine stride, kernel, stride): the transposed conv reuses the strided conv's map.
    key = (fine_stride, kernel_size, stride)
    feats = None
    if backend in ("auto", "dense"):
        plan_key = ("dense", transposed) + key
        if plan_key not in cache.kernel_maps:
            cache.kernel_maps[plan_key] = plan_dense(
                cache.level(x.stride), cache.level(out_stride), kernel_size, stride, transposed
            )
        plan = cache.kernel_maps[plan_key]
        channels = max(kernel.shape[1], kernel.shape[2])
        fits = plan is not None and plan.largest_grid_cells * channels * x.feats.element_size() <= DENSE_MAX_GRID_BYTES
        if backend == "dense" and not fits:
            raise ValueError("the dense back end needs an odd kernel, aligned sites and a grid that fits in memory")
        if fits and (backend == "dense" or plan.occupancy >= DENSE_MIN_OCCUPANCY):
            feats = dense_conv(x.feats, kernel, plan, kernel_size, stride, transposed)
    if feats is None:
        if key not in cache.kernel_maps:
            cache.kernel_maps[key] = build_kernel_map(
                fine_coords, coarse_coords if stride > 1 else fine_coords, kernel_size, fine_stride
            )
        feats = _GatherConv.apply(x.feats, kernel, cache.kernel_maps[key], transposed, budget)
    return SparseTensor(out_coords, feats, out_stride, cache=cache)
