"""Sparse 3D convolution in plain PyTorch with torchsparse 1.4.0 semantics, and the sparse cost-regularisation U-Net.

Public API: ``SparseTensor`` (coords (M, 4) ``[x, y, z, batch]`` + feats (M, C) + tensor stride),
``SparseConv3d`` (submanifold / strided / transposed, kernel (K, C_in, C_out)), ``SparseBatchNorm``,
``SparseReLU``, ``SparseConvBlock`` and ``SparseCostRegNet``; ``sparse_conv3d`` is the functional form.
"""
from reconstruction.sparse.coordinate_index import CoordinateIndex, unique_coords
from reconstruction.sparse.costreg_net import SparseConvBlock, SparseCostRegNet
from reconstruction.sparse.functional import sparse_conv3d
from reconstruction.sparse.downsample import downsample_coords
from reconstruction.sparse.kernel_map import KernelMap, build_kernel_map, kernel_offsets
from reconstruction.sparse.layers import SparseBatchNorm, SparseConv3d, SparseReLU
from reconstruction.sparse.tensor import SparseCache, SparseTensor

__all__ = [
    "CoordinateIndex",
    "KernelMap",
    "SparseBatchNorm",
    "SparseCache",
    "SparseConv3d",
    "SparseConvBlock",
    "SparseCostRegNet",
    "SparseReLU",
    "SparseTensor",
    "build_kernel_map",
    "downsample_coords",
    "kernel_offsets",
    "sparse_conv3d",
    "unique_coords",
]
