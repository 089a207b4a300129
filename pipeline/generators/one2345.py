"""The One-2-3-45 orchestrator: one image -> 8 + 32 Zero123 views -> polar angle -> SDF reconstruction -> mesh.

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
a view does not depend on how the calls were batched. This module composes the stage packages; it is not
installed, import it from the repository root (like ``infer.py``).
"""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf
from PIL import Image

from data import conventions as conv
from data.device import resolve_device
from data import layout
from data.config import ConfigError, check_overrides, load_config, merge_layer, read_yaml
from data.mesh import Mesh
from data.preprocess import PreprocessConfig, PreprocessedImage, preprocess_image
from data.views import Views
from data.weights import resolve_all
from elevation import ElevationConfig, ElevationError, ElevationEstimate, ElevationEstimator
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError, build_loftr
from reconstruction import CheckpointError as ReconstructionCheckpointError
from reconstruction import ReconstructionConfig, ReconstructionError, Reconstructor
from zero123 import CheckpointError, Zero123Config, Zero123Pipeline
from zero123.pipeline import whiten_near_white

REPO_ROOT = Path(__file__).resolve().parent
STAGE_NAMES = ("zero123", "elevation", "reconstruction")


class PipelineError(RuntimeError):
    """The run was stopped on purpose (e.g. elevation failure with ``on_failure: abort``)."""


# --------------------------------------------------------------------------------------------------- config
@dataclass
class WeightsConfig:
    """Where each pretrained weight comes from (see ``data/weights.py``): ``default`` = the official file on the
    hub, a local path, ``hf://org/repo[/file]``; ``null`` = random initialisation from the stage config."""

    zero123: Optional[str] = "default"
    reconstruction: Optional[str] = "default"
    loftr: Optional[str] = "default"
    u2net: Optional[str] = "default"
    sam: Optional[str] = "default"
    text2image: Optional[str] = "default"
    trust_pickled_checkpoints: bool = False
    """Allow full unpickling of a Zero123 ``.ckpt`` that weights-only loading refuses (trusted files only)."""


@dataclass
class ScheduleConfig:
    """Zero123 calls of the schedule."""

    stage1_steps: int = 75
    """DDIM steps of the first-stage views (official "75", which runs 76)."""
    stage2_steps: int = 50
    """DDIM steps of the nearby views (official "50", which runs 49)."""
    guidance_scale: float = 3.0
    whiten_threshold: int = 253
    """Stage-2 conditioning: channel values >= this (0..255 units) become 255 (official)."""
    batch_size: Optional[int] = None
    """Target views per Zero123 call; null = the Zero123 config's memory-bounded default."""


@dataclass
class ElevationPolicyConfig:
    """How the input's polar angle is obtained."""

    polar_deg: Optional[float] = None
    """User-given polar angle from +z (deg); skips estimation. (``elevation_deg = 90 - polar_deg``.)"""
    on_failure: str = "fallback"
    """fallback: use ``fallback_polar_deg`` with a warning (official behaviour) | abort: stop the run."""
    fallback_polar_deg: float = 90.0
    truncate_to_int: bool = True
    """Apply the official ``int()`` to the estimated polar angle."""


@dataclass
class TextToImageConfig:
    """``--prompt``: a diffusers text-to-image pipeline makes the input image (weights: ``weights.text2image``)."""

    steps: int = 30
    guidance_scale: float = 7.5
    size: int = 512
    prompt_suffix: str = ", a single object centred on a plain white background"


@dataclass
class PipelineConfig:
    """Everything a run needs; each stage's own config is nested unchanged."""

    device: str = "auto"
    """auto (CUDA when available) | cpu | cuda | cuda:N."""
    half: bool = False
    """float16 Zero123 on CUDA (on a CPU Zero123 runs float32 with a warning; result.json records what ran)."""
    seed: Optional[int] = 0
    """Run seed (null = nondeterministic, as the official code)."""
    mesh_resolution: int = 256
    progress: bool = True
    label: str = ""
    """Free text copied into result.json (tiny configs say they use random weights)."""
    stage_configs: dict[str, str] = field(default_factory=dict)
    """Stage YAML files (zero123/elevation/reconstruction -> path, relative paths from the repository root) used
    as the base of those sections; the sections' own keys and command-line overrides win."""
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    elevation_policy: ElevationPolicyConfig = field(default_factory=ElevationPolicyConfig)
    text_to_image: TextToImageConfig = field(default_factory=TextToImageConfig)
    zero123: Zero123Config = field(default_factory=Zero123Config)
    elevation: ElevationConfig = field(default_factory=ElevationConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)

    def validate(self) -> "PipelineConfig":
        if self.elevation_policy.on_failure not in ("fallback", "abort"):
            raise ConfigError(
                f"elevation_policy.on_failure must be 'fallback' or 'abort', got '{self.elevation_policy.on_failure}'"
            )
        p = self.elevation_policy.polar_deg
        if p is not None and not 0.0 < p < 180.0:
            raise ConfigError(f"elevation_policy.polar_deg must be in (0, 180) degrees from +z, got {p}")
        if self.mesh_resolution < 8:
            raise ConfigError(f"mesh_resolution must be >= 8, got {self.mesh_resolution}")
        for stage in (self.zero123, self.elevation, self.reconstruction):
            if hasattr(stage, "validate"):
                stage.validate()
        return self

    @property
    def random_weight_stages(self) -> tuple[str, ...]:
        w = self.weights
        names = {"zero123": w.zero123, "reconstruction": w.reconstruction}
        if self.elevation_policy.polar_deg is None and self.elevation.matcher.name == "loftr":
            names["elevation"] = w.loftr
        return tuple(k for k, v in names.items() if v is None)


def load_pipeline_config(*sources: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Typed pipeline config: YAML files / dicts merged in order, ``stage_configs`` files as section bases,
    dotlist ``overrides`` last. Unknown keys and bad values raise :class:`ConfigError` before any model is built."""
    layers = []
    for src in sources:  # each file is checked against the schema on its own, so errors name it and the line
        layer = OmegaConf.create(src) if isinstance(src, dict) else read_yaml(src)
        merge_layer(OmegaConf.structured(PipelineConfig), layer, None if isinstance(src, dict) else src,
                    PipelineConfig.__name__)
        layers.append(layer)
    raw = OmegaConf.merge(*layers) if layers else OmegaConf.create({})
    if overrides:
        raw = OmegaConf.merge(raw, check_overrides(PipelineConfig, overrides))
    merged = OmegaConf.to_container(raw, resolve=True)
    for stage, path in (merged.get("stage_configs") or {}).items():
        if stage not in STAGE_NAMES:
            raise ConfigError(f"stage_configs: unknown stage '{stage}' (known: {STAGE_NAMES})")
        file = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
        if not file.is_file():
            raise ConfigError(f"stage_configs.{stage}: file not found: {file}")
        base_layer = read_yaml(file)
        section = type(getattr(PipelineConfig(), stage))
        merge_layer(OmegaConf.structured(section), base_layer, file, section.__name__)
        base = OmegaConf.to_container(base_layer, resolve=True) or {}
        merged[stage] = OmegaConf.to_container(OmegaConf.merge(base, merged.get(stage) or {}))
    return load_config(PipelineConfig, merged).validate()


# --------------------------------------------------------------------------------------------------- output
@dataclass
class PipelineOutput:
    """Everything one run produced.

    Attributes:
        input: the preprocessing result (the 256x256 conditioning image and how it was segmented).
        first_stage: the 8 first-stage views (official ids 0..3 + 4..7 or 8..11), world-frame cameras.
        nearby: the 32 nearby views ``k_j`` (the reconstruction's sources), official order.
        polar_deg: polar angle used (deg from +z); ``elevation_deg = 90 - polar_deg``.
        polar_source: "estimated" | "user" | "fallback".
        estimate: the elevation estimate when estimation ran and succeeded.
        elevation_failure: the estimator's error message when the fallback was used.
        elevation_failure_reason: its typed reason (``ElevationError.reason``, e.g. "search_edge").
        mesh: coloured mesh in the pose.json world frame (z up, input camera at azimuth 30 deg, radius 1.2).
        reconstruction: the reconstruction stage's full output (mesh, SDF volume, frame).
        timings: wall-clock seconds per stage, in execution order.
        cpu_timings: process CPU seconds per stage (all threads), same keys except ``load_models``.
        peak_memory_gb: per stage (same keys as ``cpu_timings``), GiB: CUDA allocator peak during the stage on a
            GPU; on a CPU the process's peak resident set so far.
        seed: the run seed (each view's seed is listed in ``view_seeds``).
        warnings: notes for the user: every fallback taken while building the models (e.g. ``half`` on a CPU)
            and during this run (GrabCut segmentation, the fallback polar angle, ...).
        random_weight_stages: stages that ran with random weights (outputs are meaningless then).
        ran: what actually ran: ``matcher`` ("loftr" | "sift" | None when the angle was given), ``segmenter``
            (the preprocessing method), ``zero123_dtype`` ("float32" | "float16" | "bfloat16") and ``device``.
        weights: the weight files actually loaded (registry name -> path, or "random initialisation"); LoFTR
            only when it matched views.
    """

    input: PreprocessedImage
    first_stage: Views
    nearby: Views
    polar_deg: float
    polar_source: str
    estimate: ElevationEstimate | None
    elevation_failure: str | None
    mesh: Mesh
    reconstruction: Any
    timings: dict[str, float]
    cpu_timings: dict[str, float]
    seed: int | None
    view_seeds: dict[str, int]
    warnings: list[str]
    random_weight_stages: tuple[str, ...]
    ran: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    elevation_failure_reason: str | None = None
    peak_memory_gb: dict[str, float] = field(default_factory=dict)

    @property
    def elevation_deg(self) -> float:
        return float(conv.polar_to_elevation_deg(self.polar_deg))


# --------------------------------------------------------------------------------------------------- helpers
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
    if run_seed is None:
        return None
    if "_" in view_name:
        k, j = (int(x) for x in view_name.split("_"))
        code = 12 + 4 * k + j
    else:
        code = int(view_name)
    return int(run_seed) * 100 + code


def required_weights(cfg: PipelineConfig, *, text_prompt: bool = False) -> dict[str, str | None]:
    """Registry name -> source of every weight this configuration needs (random-init stages need none)."""
    w = cfg.weights
    need: dict[str, str | None] = {}
    if w.zero123 is not None:
        need["zero123"] = w.zero123
    if w.reconstruction is not None:
        need["reconstruction"] = w.reconstruction
    if w.loftr is not None and cfg.elevation_policy.polar_deg is None and cfg.elevation.matcher.name == "loftr":
        need["loftr"] = w.loftr
    if cfg.preprocess.segmenter in ("rembg", "sam") and w.u2net is not None:
        need["u2net"] = w.u2net
    if cfg.preprocess.segmenter == "sam" and w.sam is not None:
        need["sam"] = w.sam
    if text_prompt:
        if w.text2image is None:
            raise ConfigError("--prompt needs weights.text2image (a diffusers text-to-image folder or hub id)")
        need["text2image"] = w.text2image
    return {k: (None if v == "default" else v) for k, v in need.items()}


class _Timer:
    """Wall-clock and process-CPU seconds per named stage (CPU time does not grow when the machine is shared), and
    peak memory per stage: on CUDA the allocator's peak during the stage, on a CPU the process's peak resident set
    so far (the OS keeps no per-stage figure)."""

    def __init__(self, device: torch.device):
        self.device, self.timings, self.cpu_timings, self.peak_memory_gb = device, {}, {}, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        if cuda:
            torch.cuda.synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        self.cpu_timings[name] = self.cpu_timings.get(name, 0.0) + time.process_time() - c0
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else peak_rss_bytes()
        self.peak_memory_gb[name] = max(self.peak_memory_gb.get(name, 0.0), peak / 1024**3)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux / macOS units handled)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# --------------------------------------------------------------------------------------------------- pipeline
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
        return {name: str(self.weight_paths.get(name, "random initialisation")) for name in names}

    @classmethod
    def from_config(cls, cfg: PipelineConfig, *, weight_paths: dict[str, Path] | None = None) -> "One2345Pipeline":
        """Resolve all weights (ONE ``MissingWeightsError`` listing every missing file), then build the stages."""
        t0 = time.perf_counter()
        paths = weight_paths if weight_paths is not None else resolve_all(required_weights(cfg))
        device = resolve_device(cfg.device)
        if cfg.preprocess.device == "auto":  # SAM follows the pipeline's device
            cfg = copy.deepcopy(cfg)
            cfg.preprocess.device = str(device)
        load_warnings: list[str] = []
        dtype = torch.float32
        if cfg.half:
            if device.type == "cuda":
                dtype = torch.float16
            else:
                note = f"half precision needs CUDA; running Zero123 in float32 on the {device.type.upper()}"
                warnings.warn(note, stacklevel=2)
                load_warnings.append(note)
        estimator = None  # built first: a bad LoFTR file stops the run before Zero123's large checkpoint loads
        if cfg.elevation_policy.polar_deg is None:
            estimator = build_estimator(cfg.elevation, paths.get("loftr"), device)
        if "zero123" in paths:
            # a single LDM file carries no geometry: the zero123 section describes it (official full size by
            # default); a weight folder carries its own config
            geometry = {"config": cfg.zero123} if Path(paths["zero123"]).is_file() else {}
            try:
                zero123 = Zero123Pipeline.from_pretrained(
                    str(paths["zero123"]), device=device, dtype=dtype,
                    allow_unsafe_pickle=cfg.weights.trust_pickled_checkpoints, **geometry)
            except CheckpointError as exc:
                raise PipelineError(
                    f"{exc}\nIf this is the official file from a trusted source, allow it with "
                    "--set weights.trust_pickled_checkpoints=true") from exc
            zero123.cfg.sampling = cfg.zero123.sampling
        else:
            zero123 = Zero123Pipeline.from_config(cfg.zero123, device=device, dtype=dtype, seed=0)
        if "reconstruction" in paths:
            try:
                reconstructor = Reconstructor.from_official_checkpoint(
                    paths["reconstruction"], device, cfg.reconstruction)
            except ReconstructionCheckpointError as exc:
                raise PipelineError(str(exc)) from exc
        else:
            reconstructor = Reconstructor.from_config(cfg.reconstruction, device)
        used = {k: Path(v) for k, v in paths.items() if k in ("zero123", "reconstruction", "loftr")}
        return cls(cfg, zero123, estimator, reconstructor, device, time.perf_counter() - t0,
                   weight_paths=used, load_warnings=load_warnings)

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
        timer, notes = _Timer(self.device), list(self.load_warnings)
        timer.timings["load_models"] = self.load_seconds
        with timer("preprocess"):
            pre = image if isinstance(image, PreprocessedImage) else preprocess_image(
                image, cfg.preprocess, source_name=source_name)
        notes.extend(pre.warnings)
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
        with timer("reconstruction"):
            try:
                recon = self.reconstructor.reconstruct(
                    nearby_views.to(self.device), layout.cameras_for(specs[:1]).to(self.device),
                    mesh_resolution=cfg.mesh_resolution,
                )
            except ReconstructionError as exc:
                raise PipelineError(f"reconstruction failed: {exc}") from exc
        all_specs = specs + nearby_specs
        ran = {**self.ran, "segmenter": pre.method}
        if source == "user":
            ran["matcher"] = None  # no estimate ran
        return PipelineOutput(
            input=pre, first_stage=first_views, nearby=nearby_views, polar_deg=polar, polar_source=source,
            estimate=estimate, elevation_failure=failure, mesh=recon.mesh, reconstruction=recon,
            timings=timer.timings, cpu_timings=timer.cpu_timings, seed=seed, view_seeds={v.name: view_seed(seed, v.name) for v in all_specs},
            warnings=notes, random_weight_stages=cfg.random_weight_stages,
            ran=ran,
            weights=self.weights_used(matcher_ran=source != "user"), elevation_failure_reason=failure_reason,
            peak_memory_gb=timer.peak_memory_gb,
        )


def build_estimator(cfg: ElevationConfig, loftr_path: Path | None, device: torch.device) -> ElevationEstimator:
    """The elevation estimator with its matcher built now; LoFTR gets the resolved weights, or random weights when
    ``loftr_path`` is None. A LoFTR file that cannot be loaded raises :class:`PipelineError` (never a silent SIFT
    fallback: the user asked for that file)."""
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


def text_to_image(prompt: str, model: str | Path, cfg: TextToImageConfig, *, seed: int | None,
                  device: torch.device) -> Image.Image:
    """Make an input image from a text prompt with a diffusers text-to-image pipeline (a folder path)."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(model)).to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    generator = None if seed is None else torch.Generator(device="cpu").manual_seed(int(seed))
    result = pipe(
        prompt + cfg.prompt_suffix, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
        height=cfg.size, width=cfg.size, generator=generator,
    )
    return result.images[0].convert("RGB")

