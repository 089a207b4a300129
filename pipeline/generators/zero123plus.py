"""The ``zero123plus`` generator: the six Zero123++ views at their known poses go straight to reconstruction.

1. preprocess the input (``data.preprocess``: segmentation; the 256 px recentred image is the recorded input);
2. Zero123++ (``zero123plus``, the configured variant) makes one 3x2 grid of six views from the segmented RGBA input
   with its variant's own input handling (background, InstantMesh's re-framing); their cameras are
   the variant's table in ``data.layout`` (absolute elevations, azimuths relative to the input's 30 deg, the
   variant's FOV, the rig's framing);
3. the reconstruction receives those six ``Views`` and the reference camera
   ``data.layout.zero123plus_reference_camera`` (input azimuth, on the horizon).

No elevation estimation: the six views' polar angles are fixed by the variant, and the input view's polar angle is
not needed (``polar_source: "not_needed"``). The released One-2-3-45 checkpoint was trained on 32 nearby views;
this generator's reconstruction weights are ``weights.reconstruction_zero123plus`` (no released file: trained
with ``train.py``), random in the tiny config.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from data import layout
from data.preprocess import PreprocessedImage
from data.weights import resolve_all

from pipeline.config import PipelineConfig
from pipeline.context import RunContext, Timer
from pipeline.output import POLAR_NOT_NEEDED, PipelineOutput
from pipeline.stages import (RANDOM, bind_run_device, build_reconstructor, build_zero123, build_zero123plus, grid_ran,
                             preprocess, reconstruct, zero123plus_weight_names)

#: Seed code (``RunContext.seed_for``) of the Zero123++ grid.
GRID_SEED_CODE = 60


class Zero123PlusGenerator:
    """Zero123++ six views -> reconstruction (see the module docstring)."""

    name = "zero123plus"

    def __init__(self, cfg: PipelineConfig, zero123plus, reconstructor, ctx: RunContext, load_seconds: float = 0.0,
                 weight_paths: dict[str, Path] | None = None, zero123=None):
        self.cfg, self.zero123plus, self.reconstructor, self.zero123 = cfg, zero123plus, reconstructor, zero123
        self.ctx, self.device, self.load_seconds = ctx, ctx.device, load_seconds
        self.weight_paths = dict(weight_paths or {})
        self.load_warnings = list(ctx.load_warnings)
        self.source_views_hook = None
        """Test hook: a callable given the generated source views (world cameras), returning the views that the
        reconstruction receives instead (e.g. renders of a known mesh at the same cameras)."""

    # ------------------------------------------------------------------------------------------ what it needs
    @classmethod
    def stage_weights(cls, cfg: PipelineConfig) -> dict[str, tuple[str, ...]]:
        """Stage -> the registry entries its models load (the first one decides random vs loaded)."""
        return {"zero123plus": zero123plus_weight_names(cfg), "reconstruction": ("reconstruction_zero123plus",)}

    @classmethod
    def model_weights(cls, cfg: PipelineConfig) -> dict[str, str | None]:
        """Registry entry -> configured source of every model this generator builds (None = random)."""
        return {name: getattr(cfg.weights, name) for names in cls.stage_weights(cfg).values() for name in names}

    @classmethod
    def required_weights(cls, cfg: PipelineConfig) -> dict[str, str | None]:
        """The model weights this generator loads (random-initialised stages need none)."""
        need = {}
        for names in cls.stage_weights(cfg).values():
            if getattr(cfg.weights, names[0]) is not None:
                need.update({n: getattr(cfg.weights, n) for n in names if getattr(cfg.weights, n) is not None})
        return need

    @classmethod
    def random_weight_stages(cls, cfg: PipelineConfig) -> tuple[str, ...]:
        return tuple(stage for stage, names in cls.stage_weights(cfg).items() if getattr(cfg.weights, names[0]) is None)

    @classmethod
    def from_config(cls, cfg: PipelineConfig, *, weight_paths: dict[str, Path] | None = None):
        """Resolve the weights (one missing-weights message for all), then build only this generator's models."""
        from pipeline.registry import required_weights

        t0 = time.perf_counter()
        paths = weight_paths if weight_paths is not None else resolve_all(required_weights(cfg))
        ctx = RunContext.from_config(cfg)
        cfg = bind_run_device(cfg, ctx)
        stages = cls.stage_weights(cfg)
        zero123plus = build_zero123plus(cfg, paths, ctx)
        zero123 = build_zero123(cfg, paths.get("zero123"), ctx) if "zero123" in stages else None
        reconstructor = build_reconstructor(cfg, paths.get(stages["reconstruction"][0]), ctx)
        used = {k: Path(v) for k, v in paths.items() if k in cls.model_weights(cfg)}
        return cls(cfg, zero123plus, reconstructor, ctx, time.perf_counter() - t0, used, zero123)

    # ------------------------------------------------------------------------------------------ running
    @property
    def ran(self) -> dict[str, Any]:
        """What the built models run: Zero123++ variant and precision, device."""
        return {"zero123plus_variant": self.cfg.zero123plus.variant,
                "zero123plus_dtype": str(self.zero123plus.dtype).replace("torch.", ""),
                "device": str(self.device)}

    def weights_used(self) -> dict[str, str]:
        return {name: str(self.weight_paths.get(name, RANDOM)) for name in self.model_weights(self.cfg)}

    def six_views(self, pre: PreprocessedImage, seed: int | None, timer: Timer):
        """The Zero123++ grid of the segmented input -> six Views. Zero123++ gets the RGBA cut-out (``segmented``:
        the input with the foreground alpha used), so its variant's own input handling applies as upstream:
        composited on its background (grey 127, InstantMesh white), re-framed to 85 % for InstantMesh."""
        with timer("zero123plus"):
            out = self.zero123plus.generate(Image.fromarray(pre.segmented, "RGBA"),
                                            seeds=self.ctx.seed_for(GRID_SEED_CODE, seed), progress=self.ctx.progress)
        views = out.views[0]
        return views.__class__(views.images.float().cpu(), views.cameras, names=views.names, source=views.source)

    def __call__(self, image, *, seed: int | None = ..., source_name: str | None = None,
                 polar_deg: float | None = None) -> PipelineOutput:
        """Run the whole chain on one image (``polar_deg`` is accepted and unused: the poses are fixed)."""
        cfg = self.cfg
        seed = cfg.seed if seed is ... else seed
        timer, notes = Timer(self.device), list(self.load_warnings)
        timer.timings["load_models"] = self.load_seconds
        pre = preprocess(cfg, image, source_name, timer, notes)
        six = self.six_views(pre, seed, timer)
        nearby, reference, view_seeds = self.sources(six, seed, timer)
        generated = six if nearby is None else nearby
        sources = generated if self.source_views_hook is None else self.source_views_hook(generated)
        recon = reconstruct(self.reconstructor, sources, reference, cfg, self.ctx, timer)
        return PipelineOutput(
            input=pre, first_stage=six, nearby=nearby, polar_deg=None, polar_source=POLAR_NOT_NEEDED, estimate=None,
            elevation_failure=None, mesh=recon.mesh, reconstruction=recon, timings=timer.timings,
            cpu_timings=timer.cpu_timings, seed=seed, view_seeds=view_seeds, warnings=notes,
            random_weight_stages=cfg.random_weight_stages,
            ran={**self.ran, "segmenter": pre.method, "sdf_grid": grid_ran(recon)},
            weights=self.weights_used(), peak_memory_gb=timer.peak_memory_gb, generator=self.name, sources=sources,
            reference=reference,
        )

    def sources(self, six, seed: int | None, timer: Timer):
        """(nearby views or None, reference camera, view seeds): the six views themselves are the sources."""
        reference = layout.zero123plus_reference_camera(self.cfg.zero123plus.pose_set, tile_px=six.cameras.width)
        return None, reference, {"grid": self.ctx.seed_for(GRID_SEED_CODE, seed)}
