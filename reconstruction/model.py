"""The reconstruction model: the four networks of the official checkpoint under their checkpoint names.

``ReconstructionModel.state_dict()`` keys are exactly the rows of the official manifest
(``<top-level checkpoint key>.<module key>``, spec section 12).
"""
from __future__ import annotations

import torch
from torch import nn

from reconstruction.feature_net import FeatureNet
from reconstruction.rendering_network import BlendingNetwork
from reconstruction.sparse_sdf_network import SparseSdfNetwork

#: Top-level keys of the official checkpoint dict, in the order of the manifest.
CHECKPOINT_KEYS = ("sdf_network_lod0", "rendering_network_lod0", "variance_network_lod0", "pyramid_feature_network")


class VarianceNetwork(nn.Module):
    """NeuS's learned sharpness (``variance_network_lod0``): inv_s = exp(10 * variance). Key: ``variance``."""

    def __init__(self, init_value: float = 0.2):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(init_value))

    def forward(self, n_points: int) -> torch.Tensor:
        """(n_points, 1) inverse standard deviation of the logistic density."""
        return torch.exp(self.variance * 10.0) * torch.ones(n_points, 1, device=self.variance.device)


class ReconstructionModel(nn.Module):
    """Container of the four official networks (lod 0 only)."""

    def __init__(self):
        super().__init__()
        self.sdf_network_lod0 = SparseSdfNetwork()
        self.rendering_network_lod0 = BlendingNetwork(geometry_channels=16, feature_channels=56)
        self.variance_network_lod0 = VarianceNetwork()
        self.pyramid_feature_network = FeatureNet()

    def use_batch_statistics(self) -> "ReconstructionModel":
        """Put the normalisation layers in batch-statistics mode, as the official inference (never ``.eval()``)."""
        return self.train()
