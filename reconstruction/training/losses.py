"""Training losses of the reconstruction module (official recipe, spec section 11.4), as pure functions.

Every function takes plain tensors and returns a 0-d tensor (differentiable w.r.t. its inputs). Weights and
their schedules live in :mod:`reconstruction.training.schedule`; :func:`total_loss` combines both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` (broadcastable, bool/float) is set; 0 if none."""
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype).expand_as(values)
    return (values * m).sum() / m.sum().clamp_min(1e-5)


def color_l1(rendered: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L1 colour loss, mean over the valid rays and the 3 channels.

    Args:
        rendered, target: (R, 3) RGB in [0, 1].
        valid: optional (R,) or (R, 1) bool: rays seen by enough source views (the blending network's flag).
    """
    if valid is not None and valid.ndim == 1:
        valid = valid[:, None]
    return _masked_mean((rendered - target).abs(), valid)


def eikonal(gradients: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eikonal regulariser: masked mean of ``(||grad SDF|| - 1)^2``.

    Args:
        gradients: (..., 3) SDF gradients at the ray samples (normalised frame).
        mask: optional (...,) bool/float: samples inside the occupied volume.
    """
    err = (gradients.norm(dim=-1) - 1.0) ** 2
    return _masked_mean(err, mask)


def sparsity(
    sdf_random: torch.Tensor,
    sdf_samples: torch.Tensor,
    samples_mask: torch.Tensor | None = None,
    scale: float = 100.0,
) -> torch.Tensor:
    """Sparsity regulariser pushing the SDF away from 0 where there is no surface.

    ``0.5 * (mean exp(-scale |sdf_random|) + masked mean exp(-scale |sdf_samples|))``.

    Args:
        sdf_random: (P,) or (P, 1) SDF at uniform random points of [-1, 1]^3.
        sdf_samples: (R, S) or (R, S, 1) SDF at the ray samples.
        samples_mask: optional mask of the same shape as ``sdf_samples`` (samples inside the volume).
        scale: sharpness (official ``sdf_sparse_factor`` 100).
    """
    term_random = torch.exp(-scale * sdf_random.abs()).mean()
    term_samples = _masked_mean(torch.exp(-scale * sdf_samples.abs()), samples_mask)
    return 0.5 * (term_random + term_samples)


def foreground_mask(
    weight_sum: torch.Tensor, target_mask: torch.Tensor, min_background_fraction: float = 0.02
) -> torch.Tensor:
    """L1 between the accumulated ray opacity and the ground-truth foreground mask.

    Returns exactly 0 (no gradient) unless more than ``min_background_fraction`` of the rays are background,
    as in the official trainer.

    Args:
        weight_sum: (R,) or (R, 1) sum of the volume-rendering weights per ray, in [0, 1].
        target_mask: (R,) or (R, 1) ground-truth foreground in {0, 1}.
    """
    w = weight_sum.reshape(-1)
    m = target_mask.reshape(-1).to(w.dtype)
    background_fraction = (m < 0.5).to(w.dtype).mean()
    if background_fraction <= min_background_fraction:
        return w.new_zeros(())
    return (w.clamp(0.0, 1.0) - m).abs().mean()


def depth_l1(rendered: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 depth loss on foreground rays (the paper's loss; weighted 0 by default as in the release).

    Args:
        rendered, target: (R,) or (R, 1) depths along the ray, same units (normalised frame).
        mask: optional (R,) or (R, 1) foreground rays with a valid ground-truth depth.
    """
    r, t = rendered.reshape(-1), target.reshape(-1)
    return _masked_mean((r - t).abs(), None if mask is None else mask.reshape(-1))


@dataclass(frozen=True)
class LossTerms:
    """Unweighted loss terms of one training step (0-d tensors) and the total with the step's weights."""

    color: torch.Tensor
    eikonal: torch.Tensor
    sparsity: torch.Tensor
    foreground_mask: torch.Tensor
    depth: torch.Tensor
    total: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("color", "eikonal", "sparsity", "foreground_mask", "depth", "total")}


def total_loss(
    color: torch.Tensor,
    eikonal_term: torch.Tensor,
    sparsity_term: torch.Tensor,
    foreground_term: torch.Tensor,
    depth_term: torch.Tensor,
    *,
    color_weight: float,
    eikonal_weight: float,
    sparsity_weight: float,
    foreground_weight: float,
    depth_weight: float,
) -> LossTerms:
    """Weighted sum of the terms (weights already evaluated at the current iteration)."""
    total = (
        color_weight * color
        + eikonal_weight * eikonal_term
        + sparsity_weight * sparsity_term
        + foreground_weight * foreground_term
        + depth_weight * depth_term
    )
    return LossTerms(color, eikonal_term, sparsity_term, foreground_term, depth_term, total)
