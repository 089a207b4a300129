"""InPlaceABN-compatible batch normalisation (inplace_abn 1.1.0 semantics, spec section 15).

The official networks use ``inplace_abn.InPlaceABN`` for the 2D feature pyramid and the compress layer. It is
**not** BatchNorm + activation: the scale uses the absolute value of the weight,

    y = leaky_relu((x - mean) * (|gamma| + eps) / sqrt(var + eps) + beta, 0.01)

with the biased batch variance in training mode. The official code never calls ``.eval()``, so inference runs
with batch statistics; this module does the same whenever it is in training mode (the default after
construction, and what :class:`reconstruction.Reconstructor` uses).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InPlaceABNCompat(nn.Module):
    """Activated batch norm over dim 1 of (N, C, ...) inputs.

    State dict: ``weight``, ``bias``, ``running_mean``, ``running_var`` (C,) and ``num_batches_tracked`` (0-d
    int64), as inplace_abn 1.1.0 registers them. ``num_batches_tracked`` is optional when loading.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, negative_slope: float = 0.01):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.negative_slope = negative_slope
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Older inplace_abn versions did not save num_batches_tracked: keep ours when it is absent.
        key = prefix + "num_batches_tracked"
        if key not in state_dict:
            state_dict[key] = self.num_batches_tracked.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, ...) -> same shape.

        Batch statistics come from ``torch.var_mean`` (cascade summation: over ~2 M values per channel torch's
        fused training-mode ``batch_norm`` statistics drift by up to 0.09 in the fused features of the parity
        fixture); without autograd the normalisation is then one ``batch_norm`` call with those statistics and scale
        ``|gamma| + eps`` and the leaky ReLU runs in place (inference); with autograd, the same formula in plain ops.
        """
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            with torch.no_grad():
                count = x.numel() // x.shape[1]
                unbiased = var.detach() * (count / max(count - 1, 1))
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight.abs() + self.eps
        if torch.is_grad_enabled():  # batch_norm takes no gradient through given statistics: the formula instead
            shape = [1, -1] + [1] * (x.dim() - 2)
            y = (x - mean.view(shape)) * (scale / torch.sqrt(var + self.eps)).view(shape) + self.bias.view(shape)
            return F.leaky_relu(y, self.negative_slope)
        y = F.batch_norm(x, mean, var, scale, self.bias, False, 0.0, self.eps)
        return F.leaky_relu_(y, self.negative_slope)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, slope={self.negative_slope}"
