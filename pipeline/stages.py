"""Building and calling the stages for any generator, through each stage package's public API only."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from data.cameras import Cameras
from data.preprocess import PreprocessedImage, preprocess_image
from data.views import Views
from elevation import ElevationConfig, ElevationEstimator, LoFTRMatcher, LoFTRWeightsError, build_loftr
from reconstruction import CheckpointError as ReconstructionCheckpointError
from reconstruction import ReconstructionError, Reconstructor
from zero123 import CheckpointError, Zero123Pipeline

from pipeline.config import PipelineConfig, PipelineError
from pipeline.context import RunContext, Timer

RANDOM = "random initialisation"


def bind_run_device(cfg: PipelineConfig, ctx: RunContext) -> PipelineConfig:
    """A copy of ``cfg`` whose stage device keys name the run's resolved device (SAM, the matcher, ...)."""
    cfg = copy.deepcopy(cfg)
    cfg.preprocess.device = str(ctx.device)
    cfg.elevation.matcher.device = str(ctx.device)
    cfg.reconstruction.device = str(ctx.device)
    return cfg


def preprocess(cfg: PipelineConfig, image, source_name: str | None, timer: Timer, notes: list[str]
               ) -> PreprocessedImage:
    """A path / PIL image -> the preprocessed 256x256 input (an already preprocessed image passes through)."""
    with timer("preprocess"):
        pre = image if isinstance(image, PreprocessedImage) else preprocess_image(
            image, cfg.preprocess, source_name=source_name)
    notes.extend(pre.warnings)
    return pre


def build_zero123(cfg: PipelineConfig, path: Path | None, ctx: RunContext) -> Zero123Pipeline:
    """Zero123 from a weight file / folder, or random weights from the ``zero123`` section (``path`` None)."""
    if path is None:
        return Zero123Pipeline.from_config(cfg.zero123, device=ctx.device, dtype=ctx.dtype, seed=0)
    # a single LDM file carries no geometry: the zero123 section describes it (official full size by default); a
    # weight folder carries its own config
    geometry = {"config": cfg.zero123} if Path(path).is_file() else {}
    try:
        zero123 = Zero123Pipeline.from_pretrained(
            str(path), device=ctx.device, dtype=ctx.dtype,
            allow_unsafe_pickle=cfg.weights.trust_pickled_checkpoints, **geometry)
    except CheckpointError as exc:
        raise PipelineError(
            f"{exc}\nIf this is the official file from a trusted source, allow it with "
            "--set weights.trust_pickled_checkpoints=true") from exc
    zero123.cfg.sampling = cfg.zero123.sampling
    return zero123


def zero123plus_weight_names(cfg: PipelineConfig) -> tuple[str, ...]:
    """Registry entries of the configured Zero123++ variant: its pipeline folder (+ InstantMesh's UNet file)."""
    z = cfg.zero123plus
    names = ("zero123plus_v11",) if z.variant == "v1.1" else ("zero123plus_v12",)
    if z.variant == "instantmesh":
        names += ("instantmesh_unet",)
    return names


def build_zero123plus(cfg: PipelineConfig, paths: dict[str, Path], ctx: RunContext):
    """Zero123++ from its resolved folder (+ UNet file), or random weights from the ``zero123plus`` section."""
    from zero123plus import Zero123PlusPipeline

    folder_name = zero123plus_weight_names(cfg)[0]
    if folder_name not in paths:
        return Zero123PlusPipeline.from_config(cfg.zero123plus, device=ctx.device, dtype=ctx.dtype, seed=0)
    unet = paths.get("instantmesh_unet")
    return Zero123PlusPipeline.from_pretrained(paths[folder_name], cfg.zero123plus, unet=unet, device=ctx.device,
                                               dtype=ctx.dtype)


def build_reconstructor(cfg: PipelineConfig, path: Path | None, ctx: RunContext) -> Reconstructor:
    """The reconstructor from an official-layout checkpoint, or random weights (``path`` None)."""
    if path is None:
        return Reconstructor.from_config(cfg.reconstruction, ctx.device)
    try:
        return Reconstructor.from_official_checkpoint(path, ctx.device, cfg.reconstruction)
    except ReconstructionCheckpointError as exc:
        raise PipelineError(str(exc)) from exc


def reconstruct(reconstructor, sources: Views, reference: Cameras, cfg: PipelineConfig, ctx: RunContext,
                timer: Timer):
    """Views + reference camera -> the reconstruction output (mesh in the world frame)."""
    with timer("reconstruction"):
        try:
            return reconstructor.reconstruct(sources.to(ctx.device), reference.to(ctx.device),
                                             mesh_resolution=cfg.mesh_resolution)
        except ReconstructionError as exc:
            raise PipelineError(f"reconstruction failed: {exc}") from exc


def grid_ran(recon) -> str | None:
    """How the reconstruction's marching-cubes grid was evaluated, for ``result.json``'s ``ran``: ``"narrow_band"``,
    ``"dense"``, or ``"narrow_band, dense fallback"`` when the band's check-and-grow gave up and evaluated every
    node (the same mesh in every case); None when the reconstruction did not record it."""
    stats = getattr(recon, "grid_stats", None)
    if stats is None:
        return None
    return stats.method + (", dense fallback" if stats.dense_fallback else "")


def build_estimator(cfg: ElevationConfig, loftr_path: Path | None, device: torch.device) -> ElevationEstimator:
    """The elevation estimator with its matcher built now; LoFTR gets the resolved weights, or random weights when
    ``loftr_path`` is None. A LoFTR file that cannot be loaded raises :class:`PipelineError` (never a silent SIFT
    fallback: the user asked for that file)."""
    from data.device import resolve_device

    cfg = copy.deepcopy(cfg)
    if cfg.matcher.device == "auto":
        cfg.matcher.device = str(device)
    if cfg.matcher.name != "loftr":
        estimator = ElevationEstimator(cfg)
        estimator.matcher  # noqa: B018 -- built now, not during the run
        return estimator
    if loftr_path is not None:
        cfg.matcher.loftr_weights = str(loftr_path)
        try:
            matcher = LoFTRMatcher.from_checkpoint(loftr_path, resolve_device(cfg.matcher.device))
        except LoFTRWeightsError as exc:
            raise PipelineError(
                f"LoFTR weights {loftr_path} cannot be used: {exc}\nReplace the file (a truncated download: "
                "python scripts/download_weights.py --only loftr, after deleting it from the cache) or point "
                "--set weights.loftr=PATH at a good copy; or match with SIFT instead "
                "(--set elevation.matcher.name=sift), or skip the estimation with --polar-deg / --elevation-deg"
            ) from exc
        return ElevationEstimator(cfg, matcher=matcher)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        matcher = LoFTRMatcher(build_loftr(None), cfg.matcher.device)
    return ElevationEstimator(cfg, matcher=matcher)
