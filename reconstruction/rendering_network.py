"""IBRNet-style colour blending network (``rendering_network_lod0``; spec section 8.6).

For each point and each source view it scores the view's colour from the view's 2D features, the geometry
latent, the cross-view mean/variance and the angle between a target direction and the source camera, then
returns the softmax-weighted blend of the source colours. No normalisation layers: inputs may be chunked freely.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x)


def _mlp(*dims: int, last_activation: nn.Module | None) -> nn.Sequential:
    """Linear layers with ELU between them; state-dict indices 0, 2, 4, ... like the official Sequentials."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(_ELU())
        elif last_activation is not None:
            layers.append(last_activation)
    return nn.Sequential(*layers)


class BlendingNetwork(nn.Module):
    """Blend source-view colours.

    Args:
        geometry_channels: latent channels sampled from the dense volume (16).
        feature_channels: fused 2D feature channels (56); per-view input is [rgb (3) || features].
    """

    def __init__(self, geometry_channels: int = 16, feature_channels: int = 56):
        super().__init__()
        view_ch = feature_channels + 3
        self.s = nn.Parameter(torch.tensor(0.2))
        self.ray_dir_fc = _mlp(4, 16, view_ch, last_activation=_ELU())
        self.base_fc = _mlp(3 * view_ch + geometry_channels, 64, 32, last_activation=_ELU())
        self.vis_fc = _mlp(32, 32, 33, last_activation=_ELU())
        self.vis_fc2 = _mlp(32, 32, 1, last_activation=nn.Sigmoid())
        self.rgb_fc = _mlp(32 + 1 + 4, 16, 8, 1, last_activation=None)
        for seq in (self.base_fc, self.vis_fc, self.vis_fc2, self.rgb_fc):
            for m in seq:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, geometry: torch.Tensor, view_features: torch.Tensor, ray_diff: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend colours at P points (any leading shape ``B``).

        Args:
            geometry: (*B, 16) latent at the points.
            view_features: (V, *B, 59) per view: sampled RGB (3) then fused features (56).
            ray_diff: (V, *B, 4) per view: unit(target_dir - source_dir) (3) and their dot product (1).
            mask: (V, *B) bool/float: the view sees the point (and the point lies in the active volume).

        Returns:
            rgb (*B, 3) in [0, 1], and the official per-ray validity ``sum_samples(n_visible >= 2) > 8``
            (shape ``B[:-1] + (1,)``; only meaningful for (rays, samples) inputs).
        """
        feats = view_features.movedim(0, -2).contiguous()  # (*B, V, 59)
        diff = ray_diff.movedim(0, -2).contiguous()  # (*B, V, 4)
        m = mask.movedim(0, -1)[..., None].to(feats.dtype)  # (*B, V, 1)

        rgb_in = feats[..., :3]
        feats = feats + self.ray_dir_fc(diff)
        exp_dot = torch.exp(self.s.abs() * (diff[..., 3:] - 1))
        weight = (exp_dot - exp_dot.min(dim=-2, keepdim=True).values) * m
        weight = weight / (weight.sum(dim=-2, keepdim=True) + 1e-8)
        mean = (feats * weight).sum(dim=-2, keepdim=True)
        var = (weight * (feats - mean) ** 2).sum(dim=-2, keepdim=True)
        # base_fc's first layer sees [geometry || mean || var || view features]; the first three are the same for
        # every view, so that part of the product is computed once per point instead of once per view
        first = self.base_fc[0]
        n_shared = geometry.shape[-1] + 2 * feats.shape[-1]
        shared = torch.cat([geometry, mean[..., 0, :], var[..., 0, :]], -1)  # (*B, 16 + 118)
        x = F.linear(feats, first.weight[:, n_shared:]) + F.linear(shared, first.weight[:, :n_shared], first.bias)[
            ..., None, :]
        x = self.base_fc[1:](x)
        x_vis = self.vis_fc(x * weight)
        x_res, vis = x_vis[..., :-1], x_vis[..., -1:]
        vis = torch.sigmoid(vis) * m
        x = x + x_res
        vis = self.vis_fc2(x * vis) * m
        logits = self.rgb_fc(torch.cat([x, vis, diff], -1))
        logits = logits.masked_fill(m == 0, -1e9)
        blend = torch.softmax(logits, dim=-2)
        rgb = (rgb_in * blend).sum(dim=-2)
        seen_twice = (m.sum(dim=-2) >= 2).to(rgb.dtype)  # (*B, 1)
        ray_valid = seen_twice.sum(dim=-2) > 8
        return rgb, ray_valid
