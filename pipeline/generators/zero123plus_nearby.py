"""The ``zero123plus_nearby`` generator: six Zero123++ views, then Zero123's 4 nearby views around each, 24 views
to the released One-2-3-45 reconstruction checkpoint (what it was trained on: 4 nearby views per view).

1. preprocess; Zero123++ makes the six views (as ``zero123plus``);
2. each view tile is resized to 256 px and handed to Zero123 as One-2-3-45 hands its first-stage views to stage 2
   (8-bit round trip, channels >= 253 -> 255); its polar angle is known (the variant's table), so the relative
   poses of the nearby views (``data.layout.NEARBY_DELTAS_DEG``: +-10 deg polar / azimuth) are exact;
   ``data.layout.zero123plus_nearby_views`` defines the 24 views (rig cameras: radius 1.2, f 280 px at 256 px;
   the six views' radius was chosen for the rig's framing, so a resized tile is the rig's view at its angles up to
   perspective);
3. the reconstruction receives the 24 nearby views and the reference ``zero123plus_nearby_reference`` (input
   azimuth, on the horizon). Weights: ``weights.reconstruction`` (the released ``ckpt_215000.pth``).

Zero123's settings are the ``schedule`` section's nearby-view ones (``stage2_steps``, ``guidance_scale``,
``whiten_threshold``, ``batch_size``). Each nearby view's seed is ``RunContext.seed_for(61 + 4 k + j)``.
"""
from __future__ import annotations

import torch

from data import conventions as conv
from data import layout
from data.views import Views

from pipeline.config import PipelineConfig
from pipeline.context import Timer
from pipeline.generators.one2345 import stage2_conditioning
from pipeline.generators.zero123plus import GRID_SEED_CODE, Zero123PlusGenerator
from pipeline.stages import zero123plus_weight_names

#: Seed code of nearby view j of Zero123++ view k: ``NEARBY_SEED_CODE + 4 k + j`` (61..84).
NEARBY_SEED_CODE = 61


def nearby_seed_code(name: str) -> int:
    k, j = (int(x) for x in name.split("_"))
    return NEARBY_SEED_CODE + 4 * k + j


class Zero123PlusNearbyGenerator(Zero123PlusGenerator):
    """Zero123++ six views -> Zero123 4 nearby views each -> the released reconstruction (module docstring)."""

    name = "zero123plus_nearby"

    @classmethod
    def stage_weights(cls, cfg: PipelineConfig) -> dict[str, tuple[str, ...]]:
        return {"zero123plus": zero123plus_weight_names(cfg), "zero123": ("zero123",),
                "reconstruction": ("reconstruction",)}

    @property
    def ran(self):
        return {**super().ran, "zero123_dtype": str(self.zero123.dtype).replace("torch.", "")}

    def sources(self, six: Views, seed: int | None, timer: Timer):
        """The 24 nearby views (Zero123, conditioned on the six views at their angles), the rig reference, seeds."""
        s = self.cfg.schedule
        specs = layout.zero123plus_nearby_views(self.cfg.zero123plus.pose_set)
        size = conv.IMAGE_SIZE  # Zero123's conditioning size (the rig's 256 px)
        with timer("zero123_nearby_views"):
            tiles = torch.nn.functional.interpolate(six.images.float(), size=(size, size), mode="bilinear",
                                                    antialias=True, align_corners=False).clamp(0, 1)
            cond = stage2_conditioning(tiles, s.whiten_threshold).repeat_interleave(4, dim=0)
            seeds = None if seed is None else [self.ctx.seed_for(nearby_seed_code(v.name), seed) for v in specs]
            images = self.zero123.generate(
                cond.to(self.device), layout.RelativePose.from_views(specs), num_inference_steps=s.stage2_steps,
                guidance_scale=s.guidance_scale, seeds=seeds, batch_size=s.batch_size, progress=self.ctx.progress,
            ).float().cpu()
        nearby = Views(images, layout.cameras_for(specs), names=tuple(v.name for v in specs), source="zero123-nearby")
        reference = layout.cameras_for(layout.zero123plus_nearby_reference())
        view_seeds = {"grid": self.ctx.seed_for(GRID_SEED_CODE, seed)}
        view_seeds.update({v.name: self.ctx.seed_for(nearby_seed_code(v.name), seed) for v in specs})
        return nearby, reference, view_seeds
