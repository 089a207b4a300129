"""The diffusion samplers that ``test_cuda_sampling.py`` runs on the GPU in float32 / float16 / bfloat16 and compares
with the CPU in float32. One entry of :data:`SAMPLER_CASES` per sampler: adding one is one entry.

Each case builds its tiny random-weight pipeline (fixed init seed, so the CPU and GPU copies hold the same weights),
samples a few views with fixed seeds and returns them as (N, 3, H, W) float32 CPU images in [0, 1] (quantised to
k/255 like the official PNG output). Tolerances are on those images, per dtype, over all pixels: ``mean`` bounds the
mean absolute difference, ``max`` the largest one.

Zero123++ (``zero123plus/``, issue #14) is the second entry. A new sampler: write ``_name(device, dtype)`` and add
``SAMPLER_CASES["name"] = SamplerCase(_name, TOLERANCES)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

#: How far the tiny samplers may move from the CPU float32 result. Measured on the CPU (torch 2.13, "4" DDIM steps
#: at 256 px, 2 views): bfloat16 mean 0.0023 / max 0.024, float16 mean 0.0002 / max 0.004. The bounds leave 4-5x
#: that for other kernels (cuDNN, Flash / memory-efficient attention). float32 with TF32 off differs from the CPU by
#: summation order only (~1e-6 relative), which can flip a k/255 quantisation step.
ZERO123_TOLERANCES = {
    "float32": {"mean": 5e-4, "max": 3 / 255},
    "float16": {"mean": 3e-3, "max": 0.05},
    "bfloat16": {"mean": 1e-2, "max": 0.1},
}

#: Two conditioning images shared by every case (256 px, smooth random colours).
COND = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                                       size=(256, 256), mode="bilinear", align_corners=False).clamp(0, 1)


@dataclass(frozen=True)
class SamplerCase:
    """``run(device, dtype) -> (images, pipeline)``; ``tolerances[dtype name] = {"mean": ..., "max": ...}``."""

    run: Callable[[torch.device, torch.dtype], tuple[torch.Tensor, Any]]
    tolerances: dict[str, dict[str, float]]


def _zero123_tiny(device: torch.device, dtype: torch.dtype):
    from zero123 import Zero123Pipeline
    from zero123.pose import relative_pose_from_degrees

    pipe = Zero123Pipeline.from_config("configs/zero123/tiny.yaml", device=device, dtype=dtype, seed=0)
    pose = relative_pose_from_degrees(torch.tensor([-10.0, 20.0]), torch.tensor([30.0, 200.0]))
    images = pipe.generate(COND, pose, num_inference_steps=4, seeds=[1, 2], progress=False)
    return images, pipe


#: Zero123++ tiny (2 Euler-ancestral steps, a 192x128 grid of six 64 px views) measured the same way on the CPU:
#: bfloat16 mean 0.010 / max 0.137, float16 mean 0.0012 / max 0.016 (a 2-step ancestral sampler keeps more of the
#: per-step error than Zero123's DDIM). Same 4-5x margin.
ZERO123PLUS_TOLERANCES = {
    "float32": {"mean": 5e-4, "max": 3 / 255},
    "float16": {"mean": 6e-3, "max": 0.08},
    "bfloat16": {"mean": 4e-2, "max": 0.4},
}


def _zero123plus_tiny(device: torch.device, dtype: torch.dtype):
    from PIL import Image

    from zero123plus import Zero123PlusPipeline

    pipe = Zero123PlusPipeline.from_config("configs/zero123plus/tiny.yaml", device=device, dtype=dtype, seed=0)
    image = Image.fromarray((COND[0].permute(1, 2, 0) * 255).round().byte().numpy())
    grids = pipe.generate(image, seeds=1, num_inference_steps=2, progress=False).grids  # (1, H, W, 3) uint8
    return grids.permute(0, 3, 1, 2).float().cpu() / 255.0, pipe


SAMPLER_CASES: dict[str, SamplerCase] = {
    "zero123_tiny": SamplerCase(_zero123_tiny, ZERO123_TOLERANCES),
    "zero123plus_tiny": SamplerCase(_zero123plus_tiny, ZERO123PLUS_TOLERANCES),
}
