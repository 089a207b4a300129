"""Per-iteration schedules of the official training recipe (spec sections 10 and 11.4-11.5).

All functions are pure: ``step`` is the global optimisation step (0-based, one per optimizer update).
"""
from __future__ import annotations

import math


def cosine_lr_factor(step: int, total_steps: int, floor: float = 0.1) -> float:
    """Multiplier of the base learning rate: cosine from 1 at step 0 to ``floor`` at ``total_steps``.

    ``floor + (1 - floor) * (1 + cos(pi * step / total_steps)) / 2``; constant ``floor`` after the end.
    With the official floor 0.1 this is ``0.1 + 0.45 (1 + cos(pi t / T))``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def rounded_end_step(end_step: int, steps_per_epoch: int) -> int:
    """The official runner's T: ``end_step`` rounded up to whole epochs, ``(1 + end // n) * n``."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    return (1 + end_step // steps_per_epoch) * steps_per_epoch


def anneal_ratio(step: int, anneal_end: int) -> float:
    """NeuS cos-annealing ratio rho in [0, 1]: ``min(1, step / anneal_end)`` (1 when ``anneal_end`` <= 0)."""
    return 1.0 if anneal_end <= 0 else min(1.0, max(step, 0) / anneal_end)


def sparsity_weight(step: int, weight: float = 0.02, ramp_steps: int = 50_000) -> float:
    """Sparsity weight ramped linearly from 0 to ``weight`` over ``ramp_steps`` (official: 2 x anneal_end)."""
    return weight if ramp_steps <= 0 else weight * min(1.0, max(step, 0) / ramp_steps)


def foreground_mask_weight(step: int, weight: float = 0.1, start_step: int = 50_000) -> float:
    """Foreground-mask weight: 0 before ``start_step``, then ``weight``."""
    return weight if step >= start_step else 0.0
