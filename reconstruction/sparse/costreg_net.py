"""``SparseCostRegNet``: the sparse 3D U-Net that turns the 32-channel cost volume into a 16-channel latent volume.

Spec section 8.3. State-dict keys match the official ``sdf_network_lod0.sparse_costreg_net.*`` entries
(``convK.net.0.kernel`` (27, C_in, C_out), ``convK.net.1.{weight, bias, running_mean, running_var,
num_batches_tracked}``). BatchNorm is plain ``BatchNorm1d`` over all voxels of a level: the official inference
runs it in training mode (batch statistics), so keep the module in ``train()`` to reproduce official outputs.
"""
from __future__ import annotations

from torch import nn

from reconstruction.sparse.functional import DEFAULT_GATHER_BUDGET_BYTES
from reconstruction.sparse.layers import SparseBatchNorm, SparseConv3d, SparseReLU
from reconstruction.sparse.tensor import SparseTensor


class SparseConvBlock(nn.Module):
    """conv (no bias) -> BatchNorm1d -> ReLU, as ``net.0`` / ``net.1`` / ``net.2``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        transposed: bool = False,
        kernel_size: int = 3,
        backend: str = "auto",
        gather_budget_bytes: int = DEFAULT_GATHER_BUDGET_BYTES,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            SparseConv3d(in_channels, out_channels, kernel_size, stride, transposed, backend, gather_budget_bytes),
            SparseBatchNorm(out_channels),
            SparseReLU(),
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.net(x)


class SparseCostRegNet(nn.Module):
    """Sparse U-Net: three stride-2 levels down, three transposed convs up, skip additions after each block.

    Args:
        d_in: input channels (32: 16 variance + 16 mean); d_out: output channels (16).
        backend: sparse conv back end, "auto", "gather" or "dense" (same result, different speed; see
            ``sparse_conv3d``). Change later with ``set_backend``.
        gather_budget_bytes: per-conv memory budget of a gathered chunk (speed / memory only).
    """

    def __init__(
        self,
        d_in: int = 32,
        d_out: int = 16,
        backend: str = "auto",
        gather_budget_bytes: int = DEFAULT_GATHER_BUDGET_BYTES,
    ) -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out

        def block(cin: int, cout: int, stride: int = 1, transposed: bool = False) -> SparseConvBlock:
            return SparseConvBlock(cin, cout, stride, transposed, backend=backend, gather_budget_bytes=gather_budget_bytes)

        self.conv0 = block(d_in, d_out)
        self.conv1 = block(d_out, 16, stride=2)
        self.conv2 = block(16, 16)
        self.conv3 = block(16, 32, stride=2)
        self.conv4 = block(32, 32)
        self.conv5 = block(32, 64, stride=2)
        self.conv6 = block(64, 64)
        self.conv7 = block(64, 32, stride=2, transposed=True)
        self.conv9 = block(32, 16, stride=2, transposed=True)
        self.conv11 = block(16, d_out, stride=2, transposed=True)

    def set_backend(self, backend: str) -> "SparseCostRegNet":
        """Switch every sparse conv to ``backend`` ("auto", "gather" or "dense")."""
        for module in self.modules():
            if isinstance(module, SparseConv3d):
                module.backend = backend
        return self

    def forward(self, x: SparseTensor, block_outputs: dict[str, SparseTensor] | None = None) -> SparseTensor:
        """Regularise a cost volume.

        Args:
            x: (N, d_in) features on the active voxels, tensor stride 1 (coords ``[x, y, z, batch]``).
            block_outputs: if a dict is given, it receives every block's output (after conv + BN + ReLU, before
                the residual additions) under the keys ``"conv0"`` ... ``"conv11"``.

        Returns:
            (N, d_out) features on the input voxels, in the input order, tensor stride 1.
        """
        if x.num_channels != self.d_in:
            raise ValueError(f"SparseCostRegNet expects {self.d_in} input channels, got {x.num_channels}")
        if x.stride != 1:
            raise ValueError(f"SparseCostRegNet expects a tensor at stride 1, got stride {x.stride}")
        record = block_outputs if block_outputs is not None else {}

        def run(name: str, inp: SparseTensor) -> SparseTensor:
            out = getattr(self, name)(inp)
            if block_outputs is not None:
                record[name] = out
            return out

        conv0 = run("conv0", x)
        conv2 = run("conv2", run("conv1", conv0))
        conv4 = run("conv4", run("conv3", conv2))
        y = run("conv6", run("conv5", conv4))
        y = conv4 + run("conv7", y)
        del conv4
        y = conv2 + run("conv9", y)
        del conv2
        return conv0 + run("conv11", y)
