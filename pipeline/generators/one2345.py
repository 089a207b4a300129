"""The ``one2345`` generator (One-2-3-45's own schedule): one image -> 8 + 32 Zero123 views -> polar angle -> SDF reconstruction -> mesh.

``One2345Pipeline.from_config(cfg)`` resolves every needed weight first (one error listing all missing files),
then builds the three stages; ``pipeline(image)`` runs the official schedule (spec sections 2 and 4.4):

1. preprocess the input (``data.preprocess``) to a 256x256 white-background image;
2. Zero123 stage 1: views 0..3 at the input's polar angle (azimuth +0/90/180/270), "75" DDIM steps;
3. Zero123 stage 2 around view 0: the 4 nearby views (+-10 deg polar / azimuth), "50" steps;
4. polar angle: user-given (skips estimation), else estimated from those 4 views (official ``int()``); on an
   ``ElevationError`` fall back to polar 90 with a warning recorded in the output, or abort (config);
5. stage 1 again: the second ring (30 deg lower if polar <= 75, else 30 deg higher);
6. stage 2 around the other 7 first-stage views (28 views, batched across views);
7. reconstruction from the 32 nearby views, reference = first-stage view 0; mesh in the pose.json world frame.

Stage-2 conditioning images go through 8 bit and every channel value >= 253 becomes 255 (official PNG round trip
and whitening). Each generated view gets its own seed derived from the run seed and the view's official id, so
a view does not depend on how the calls were batched. Registered as ``one2345`` in
``pipeline.registry``; the shared run context, output type and writers live beside it in ``pipeline/``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from data import layout
from data.preprocess import PreprocessedImage
from data.views import Views
from data.weights import resolve_all
from elevation import ElevationError, ElevationEstimator
from reconstruction import Reconstructor
from zero123 import Zero123Pipeline, whiten_near_white

from pipeline.config import PipelineConfig, PipelineError
from pipeline.context import RunContext, Timer, derive_seed
from pipeline.output import PipelineOutput
from pipeline.stages import (RANDOM, bind_run_device, build_estimator, build_reconstructor, build_zero123, grid_ran,
                             preprocess, reconstruct)


def stage2_conditioning(images: torch.Tensor, whiten_threshold: int = 253) -> torch.Tensor:
    """Official hand-off of first-stage views to stage 2: 8-bit PNG round trip, then values >= 253 -> 255.

    Args:
        images: (N, 3, H, W) float in [0, 1].
    Returns:
        (N, 3, H, W) float in [0, 1], values k / 255.
    """
    q = torch.floor(images.clamp(0, 1) * 255 + 1e-4) / 255  # generated views are k/255 already; no re-rounding drift
    return whiten_near_white(q, whiten_threshold)


def view_seed(run_seed: int | None, view_name: str) -> int | None:
    """Seed of one generated view: a function of the run seed and the official view id only."""
    if "_" in view_name:
        k, j = (int(x) for x in view_name.split("_"))
        code = 12 + 4 * k + j
    else:
        code = int(view_name)
    return derive_seed(run_seed, code)


class One2345Pipeline:
    """Composes Zero123, the elevation estimator and the reconstructor; see the module docstring."""

    def __init__(self, cfg: PipelineConfig, zero123: Zero123Pipeline, estimator: ElevationEstimator | None,
                 reconstructor: Reconstructor, device: torch.device, load_seconds: float = 0.0,
                 weight_paths: dict[str, Path] | None = None, load_warnings: list[str] | None = None):
        self.cfg, self.zero123, self.estimator, self.reconstructor = cfg, zero123, estimator, reconstructor
        self.device, self.load_seconds = device, load_seconds
        self.weight_paths = dict(weight_paths or {})
        self.load_warnings = list(load_warnings or [])
        """Fallbacks taken while building the models; every run's ``warnings`` starts with them."""
        self.source_views_hook = None
        """Test hook: a callable given the generated source views (world cameras), returning the views that the
        reconstruction receives instead (e.g. renders of a known mesh at the same cameras)."""

    @property
    def ran(self) -> dict[str, Any]:
        """What the built models run: matcher (None without an estimator), Zero123 precision, device."""
        return {
            "matcher": None if self.estimator is None else self.estimator.matcher.name,
            "zero123_dtype": str(self.zero123.dtype).replace("torch.", ""),
            "device": str(self.device),
        }

    def weights_used(self, matcher_ran: bool) -> dict[str, str]:
        """Registry name -> the file each model was loaded from ("random initialisation" for random stages)."""
        names = ["zero123", "reconstruction"] + (["loftr"] if matcher_ran else [])
        return {name: str(self.weight_paths.get(name, RANDOM)) for name in names}

    name = "one2345"

    @staticmethod
    def required_weights(cfg: PipelineConfig) -> dict[str, str | None]:
        """The model weights this generator loads: Zero123, the reconstruction and, when the polar angle is
        estimated with LoFTR, its weights (``null`` entries are random initialisations, not loaded)."""
        w = cfg.weights
        need: dict[str, str | None] = {}
        if w.zero123 is not None:
            need["zero123"] = w.zero123
        if w.reconstruction is not None:
            need["reconstruction"] = w.reconstruction
        if w.loftr is not None and cfg.elevation_policy.polar_deg is None and cfg.elevation.matcher.name == "loftr":
            need["loftr"] = w.loftr
        return need

    @staticmethod
    def random_weight_stages(cfg: PipelineConfig) -> tuple[str, ...]:
        w = cfg.weights
        names = {"zero123": w.zero123, "reconstruction": w.reconstruction}
        if cfg.elevation_policy.polar_deg is None and cfg.elevation.matcher.name == "loftr":
            names["elevation"] = w.loftr
        return tuple(k for k, v in names.items() if v is None)

    @classmethod
    def from_config(cls, cfg: PipelineConfig, *, weight_paths: dict[str, Path] | None = None) -> "One2345Pipeline":
        """Resolve all weights (ONE ``MissingWeightsError`` listing every missing file), then build the stages."""
        from pipeline.registry import required_weights

        t0 = time.perf_counter()
        paths = weight_paths if weight_paths is not None else resolve_all(required_weights(cfg))
        ctx = RunContext.from_config(cfg)
        cfg = bind_run_device(cfg, ctx)
        estimator = None  # built first: a bad LoFTR file stops the run before Zero123's large checkpoint loads
        if cfg.elevation_policy.polar_deg is None:
            estimator = build_estimator(cfg.elevation, paths.get("loftr"), ctx.device)
        zero123 = build_zero123(cfg, paths.get("zero123"), ctx)
        reconstructor = build_reconstructor(cfg, paths.get("reconstruction"), ctx)
        used = {k: Path(v) for k, v in paths.items() if k in ("zero123", "reconstruction", "loftr")}
        return cls(cfg, zero123, estimator, reconstructor, ctx.device, time.perf_counter() - t0,
                   weight_paths=used, load_warnings=ctx.load_warnings)

    # ---------------------------------------------------------------------------------------------- stages
    def _generate(self, cond: torch.Tensor, views: list[layout.ViewSpec], steps: int, seed: int | None) -> torch.Tensor:
        return self.zero123.generate(
            cond.to(self.device),
            layout.RelativePose.from_views(views),
            num_inference_steps=steps,
            guidance_scale=self.cfg.schedule.guidance_scale,
            seeds=None if seed is None else [view_seed(seed, v.name) for v in views],
            batch_size=self.cfg.schedule.batch_size,
            progress=self.cfg.progress,
        ).float().cpu()

    def _polar(self, nearby0: torch.Tensor, user_polar: float | None, notes: list[str]):
        policy = self.cfg.elevation_policy
        if user_polar is not None:
            return float(user_polar), "user", None, None, None
        if self.estimator is None:
            raise PipelineError("no elevation estimator was built (the config fixes polar_deg); pass polar_deg")
        try:
            estimate = self.estimator.estimate(nearby0)
        except ElevationError as exc:
            if policy.on_failure == "abort":
                raise PipelineError(
                    f"elevation estimation failed ({exc}); stopped because on_failure=abort. Pass the angle "
                    "yourself with --polar-deg / --elevation-deg, or use --on-elevation-failure fallback"
                ) from exc
            note = (
                f"elevation estimation failed ({exc}); using the official fallback polar angle "
                f"{policy.fallback_polar_deg:g} deg (elevation {90 - policy.fallback_polar_deg:g} deg). "
                "Pass --polar-deg / --elevation-deg if you know the camera angle."
            )
            warnings.warn(note, stacklevel=3)
            notes.append(note)
            return float(policy.fallback_polar_deg), "fallback", None, str(exc), getattr(exc, "reason", "error")
        polar = float(int(estimate.polar_deg)) if policy.truncate_to_int else float(estimate.polar_deg)
        return polar, "estimated", estimate, None, None

    def __call__(self, image: Image.Image | str | Path | PreprocessedImage, *, polar_deg: float | None = None,
                 seed: int | None = ..., source_name: str | None = None) -> PipelineOutput:
        """Run the whole chain on one image.

        Args:
            image: a path, a PIL image, or an already preprocessed image.
            polar_deg: polar angle from +z (deg) to use instead of estimating it (overrides the config).
            seed: run seed (default: the config's).
        """
        cfg = self.cfg
        seed = cfg.seed if seed is ... else seed
        user_polar = polar_deg if polar_deg is not None else cfg.elevation_policy.polar_deg
        timer, notes = Timer(self.device), list(self.load_warnings)
        timer.timings["load_models"] = self.load_seconds
        pre = preprocess(cfg, image, source_name, timer, notes)
        cond = pre.to_tensor()

        ring1 = layout.first_stage_views(90.0)[:4]  # deltas of views 0..3 do not depend on the polar angle
        with timer("zero123_stage1_views_0_3"):
            first = self._generate(cond.expand(4, -1, -1, -1), ring1, cfg.schedule.stage1_steps, seed)
        near0_specs = layout.nearby_views(ring1[0])
        with timer("zero123_stage2_view_0"):
            c0 = stage2_conditioning(first[:1], cfg.schedule.whiten_threshold)
            near0 = self._generate(c0.expand(4, -1, -1, -1), near0_specs, cfg.schedule.stage2_steps, seed)
        with timer("elevation"):
            polar, source, estimate, failure, failure_reason = self._polar(near0, user_polar, notes)

        specs = layout.first_stage_views(polar)
        with timer("zero123_stage1_ring_2"):
            ring2 = self._generate(cond.expand(4, -1, -1, -1), specs[4:], cfg.schedule.stage1_steps, seed)
        first = torch.cat([first, ring2])
        rest_specs = [v for parent in specs[1:] for v in layout.nearby_views(parent)]
        with timer("zero123_stage2_other_views"):
            c_rest = stage2_conditioning(first[1:], cfg.schedule.whiten_threshold).repeat_interleave(4, dim=0)
            near_rest = self._generate(c_rest, rest_specs, cfg.schedule.stage2_steps, seed)

        nearby_specs = layout.all_nearby_views(polar)
        first_views = Views(first, layout.cameras_for(specs), names=tuple(v.name for v in specs),
                            source="zero123-stage1")
        nearby_views = Views(torch.cat([near0, near_rest]), layout.cameras_for(nearby_specs),
                             names=tuple(v.name for v in nearby_specs), source="zero123-stage2")
        sources = nearby_views if self.source_views_hook is None else self.source_views_hook(nearby_views)
        reference = layout.cameras_for(specs[:1])
        recon = reconstruct(self.reconstructor, sources, reference, cfg, RunContext(self.device), timer)
        all_specs = specs + nearby_specs
        ran = {**self.ran, "segmenter": pre.method, "sdf_grid": grid_ran(recon)}
        if source == "user":
            ran["matcher"] = None  # no estimate ran
        return PipelineOutput(
            input=pre, first_stage=first_views, nearby=nearby_views, polar_deg=polar, polar_source=source,
            estimate=estimate, elevation_failure=failure, mesh=recon.mesh, reconstruction=recon,
            timings=timer.timings, cpu_timings=timer.cpu_timings, seed=seed,
            view_seeds={v.name: view_seed(seed, v.name) for v in all_specs},
            warnings=notes, random_weight_stages=cfg.random_weight_stages,
            ran=ran,
            weights=self.weights_used(matcher_ran=source != "user"), elevation_failure_reason=failure_reason,
            peak_memory_gb=timer.peak_memory_gb, generator=self.name, sources=sources, reference=reference,
        )


