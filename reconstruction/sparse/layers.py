"""Sparse layers as ``nn.Module``s with torchsparse 1.4 parameter layouts (``spnn.Conv3d``, ``BatchNorm``, ``ReLU``)."""
from __future__ import annotations

import math

import torch
from torch import nn

from reconstruction.sparse.functional import DEFAULT_GATHER_BUDGET_BYTES, sparse_conv3d
from reconstruction.sparse.tensor import SparseTensor


class SparseConv3d(nn.Module):
    """Sparse 3D convolution, no bias.

    Parameter ``kernel``: (kernel_size^3, C_in, C_out) in torchsparse 1.4's offset order (z outermost, x fastest
    for odd kernels), or (C_in, C_out) when kernel_size is 1. ``out = in @ kernel[k]`` per offset.

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: cube side; stride: 1 (sites kept) or the downsampling / upsampling factor.
        transposed: upsampling conv; runs on the neighbour map of the strided conv it mirrors.
        backend: "auto", "gather" or "dense" (see ``sparse_conv3d``; same result, different speed).
        gather_budget_bytes: memory budget of one gathered chunk (speed / memory trade-off only).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        transposed: bool = False,
        backend: str = "auto",
        gather_budget_bytes: int = DEFAULT_GATHER_BUDGET_BYTES,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.transposed = transposed
        self.gather_budget_bytes = gather_budget_bytes
        self.kernel_volume = kernel_size**3
        shape = (self.kernel_volume, in_channels, out_channels) if self.kernel_volume > 1 else (in_channels, out_channels)
        self.kernel = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(fan), fan = kernel volume x (C_out if transposed else C_in), as torchsparse 1.4."""
        fan = (self.out_channels if self.transposed else self.in_channels) * self.kernel_volume
        bound = 1.0 / math.sqrt(fan)
        with torch.no_grad():
            self.kernel.uniform_(-bound, bound)

    def forward(self, x: SparseTensor) -> SparseTensor:
        """(M_in, C_in) at tensor stride s -> (M_out, C_out) at s * stride (or s / stride if transposed)."""
        return sparse_conv3d(
            x, self.kernel, self.kernel_size, self.stride, self.transposed, self.backend, self.gather_budget_bytes
        )

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        return text + (", transposed=True" if self.transposed else "")


class SparseBatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over the (M, C) voxel features (same parameters, buffers and train/eval behaviour)."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feats(super().forward(x.feats))


class SparseReLU(nn.ReLU):
    """ReLU on the voxel features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feats(super().forward(x.feats))
