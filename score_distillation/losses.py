"""Loss terms of the official loop that act on renders (weights are applied by the composer)."""
from __future__ import annotations

import torch

from score_distillation.render import LatentRender


def depth_smoothness(depth: torch.Tensor) -> torch.Tensor:
    """Official ``depth_smooth_loss``: mean |horizontal difference| and mean |vertical difference|, averaged.
    Background pixels have depth 10, so silhouette edges are penalised too."""
    dx = (depth[:, :-1] - depth[:, 1:]).abs().mean()
    dy = (depth[:-1, :] - depth[1:, :]).abs().mean()
    return (dx + dy) / 2.0


def near_view_loss(view: LatentRender, near: LatentRender) -> torch.Tensor:
    """Near-view consistency: ``mean |latent_near - latent| + mean |depth_near - depth|`` (unweighted)."""
    return (near.latent - view.latent).abs().mean() + (near.depth - view.depth).abs().mean()


def emptiness(weights: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """The official "negative emptiness" term ``mean(log(1 + scale w) * (-w / 2))`` (weight 0 in Zero-1-to-3)."""
    return (torch.log(1 + scale * weights) * (-1 / 2 * weights)).mean()
