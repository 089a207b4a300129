"""The latent-conditioned SDF decoder (``sdf_network_lod0.sdf_layer``; spec section 8.4).

``LatentSDFMLP``: positional encoding of the point (39 dims) -> 3 weight-normalised linear layers with softplus
(beta 100) between them; the 16-d latent is concatenated to the inputs of layers 1 and 2. The output has 128
channels: 0 = SDF (positive outside), 1..127 = feature vector. (The official constructor passes ``d_out=129``
but never uses it: every layer is ``hidden`` wide.)
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class PositionalEncoding(nn.Module):
    """[p, sin(2^0 p), cos(2^0 p), ..., sin(2^(n-1) p), cos(2^(n-1) p)]: (P, 3) -> (P, 3 + 6n)."""

    def __init__(self, n_frequencies: int = 6):
        super().__init__()
        self.n_frequencies = n_frequencies

    @property
    def out_channels(self) -> int:
        return 3 + 6 * self.n_frequencies

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        freqs = 2.0 ** torch.arange(self.n_frequencies, dtype=points.dtype, device=points.device)
        scaled = points[:, None, :] * freqs[:, None]  # (P, n, 3)
        waves = torch.stack([torch.sin(scaled), torch.cos(scaled)], 2)  # (P, n, 2, 3): sin then cos per octave
        return torch.cat([points, waves.reshape(points.shape[0], -1)], -1)


class WeightNormLinear(nn.Module):
    """Linear layer with weight normalisation per output row: ``W = g * v / ||v||``.

    State dict: ``weight_g`` (out, 1), ``weight_v`` (out, in), ``bias`` (out,) - the layout of
    ``torch.nn.utils.weight_norm`` that the official checkpoint uses.
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        lin = nn.Linear(d_in, d_out)
        self.bias = nn.Parameter(lin.bias.detach().clone())
        self.weight_v = nn.Parameter(lin.weight.detach().clone())
        self.weight_g = nn.Parameter(lin.weight.detach().norm(dim=1, keepdim=True))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class LatentSDFMLP(nn.Module):
    """SDF decoder ``lin0`` (39 -> 128), ``lin1``, ``lin2`` ([h || latent] 144 -> 128)."""

    def __init__(self, hidden: int = 128, latent: int = 16, n_frequencies: int = 6, geometric_init: bool = True,
                 init_bias: float = 0.5):
        super().__init__()
        self.latent_channels = latent
        self.encoding = PositionalEncoding(n_frequencies)
        d_enc = self.encoding.out_channels
        self.lin0 = WeightNormLinear(d_enc, hidden)
        self.lin1 = WeightNormLinear(hidden + latent, hidden)
        self.lin2 = WeightNormLinear(hidden + latent, hidden)
        if geometric_init:
            self._geometric_init(hidden, latent, init_bias)

    @torch.no_grad()
    def _geometric_init(self, hidden: int, latent: int, init_bias: float) -> None:
        """IDR/NeuS-style sphere initialisation (only matters when training from scratch)."""
        w0 = torch.zeros_like(self.lin0.weight_v)
        w0[:, :3].normal_(0.0, math.sqrt(2) / math.sqrt(hidden))
        w1 = torch.empty_like(self.lin1.weight_v).normal_(0.0, math.sqrt(2) / math.sqrt(hidden))
        w1[:, -latent:] = 0
        w2 = torch.empty_like(self.lin2.weight_v).normal_(np.sqrt(np.pi) / np.sqrt(w1.shape[1]), 1e-4)
        w2[:, -latent:] = 0
        for lin, w, b in ((self.lin0, w0, 0.0), (self.lin1, w1, 0.0), (self.lin2, w2, -init_bias)):
            lin.weight_v.copy_(w)
            lin.weight_g.copy_(w.norm(dim=1, keepdim=True))
            lin.bias.fill_(b)
        self.lin2.bias[-latent:] = 0  # as the official init: the last `latent` outputs start unbiased

    def hidden(self, points: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """points (P, 3), latent (P, 16) -> the input of ``lin2``: (P, 144) [second hidden layer || latent]."""
        x = F.softplus(self.lin0(self.encoding(points)), beta=100)
        x = F.softplus(self.lin1(torch.cat([x, latent], 1)), beta=100)
        return torch.cat([x, latent], 1)

    def forward(self, points: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """points (P, 3) normalised, latent (P, 16) -> (P, 128): [SDF, 127 features]."""
        return self.lin2(self.hidden(points, latent))

    def sdf_only(self, points: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """(P,) SDF alone: only the first row of ``lin2`` (128x fewer multiply-adds in the last layer)."""
        return F.linear(self.hidden(points, latent), self.lin2.weight[:1], self.lin2.bias[:1])[:, 0]
