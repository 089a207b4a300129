"""The pipeline's typed configuration (``configs/infer/*.yaml``, schema ``pipeline:PipelineConfig``).

One config describes a run whatever the generator: ``generator`` names it (``pipeline.registry``), the run context
(``device``, ``half``, ``seed``, ``progress``, ``mesh_resolution``) is set once at the top, and every stage keeps
its own section unchanged. Stage sections' device and mesh-resolution keys are not settings of a pipeline run:
the loader copies the run's values into them (a pipeline config that sets them to something else is refused).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from data.config import ConfigError, check_overrides, load_config, merge_layer, read_yaml
from data.preprocess import PreprocessConfig
from elevation import ElevationConfig
from reconstruction import ReconstructionConfig
from zero123 import Zero123Config
from zero123plus import Zero123PlusConfig, load_zero123plus_config

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE_NAMES = ("zero123", "zero123plus", "elevation", "reconstruction")


class PipelineError(RuntimeError):
    """The run was stopped on purpose (e.g. elevation failure with ``on_failure: abort``)."""


@dataclass
class WeightsConfig:
    """Where each pretrained weight comes from (one key per ``data.weights.REGISTRY`` entry): ``default`` = the
    registry's default location, a local path, ``hf://org/repo[/file]``; ``null`` = random initialisation from the
    stage config. A generator reads only the entries it needs (``pipeline.registry``)."""

    zero123: Optional[str] = "default"
    reconstruction: Optional[str] = "default"
    loftr: Optional[str] = "default"
    u2net: Optional[str] = "default"
    sam: Optional[str] = "default"
    text2image: Optional[str] = "default"
    zero123plus_v12: Optional[str] = "default"
    zero123plus_v11: Optional[str] = "default"
    instantmesh_unet: Optional[str] = "default"
    zero123plus_depth_controlnet: Optional[str] = "default"
    reconstruction_zero123plus: Optional[str] = "default"
    trust_pickled_checkpoints: bool = False
    """Allow full unpickling of a Zero123 ``.ckpt`` that weights-only loading refuses (trusted files only)."""


@dataclass
class ScheduleConfig:
    """Zero123 calls: One-2-3-45's schedule, and the nearby views of ``zero123plus_nearby``."""

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
    """How the input's polar angle is obtained (``one2345`` only; the Zero123++ generators do not need it)."""

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

    generator: str = "one2345"
    """The view generator (``pipeline.registry.GENERATORS``): one2345 | zero123plus | zero123plus_nearby."""
    device: str = "auto"
    """The run's device, the only device setting: auto (CUDA when available) | cpu | cuda | cuda:N."""
    half: bool = False
    """float16 diffusion models on CUDA (on a CPU they run float32 with a warning; result.json records what ran)."""
    seed: Optional[int] = 0
    """Run seed (null = nondeterministic, as the official code); every generated view's seed derives from it."""
    mesh_resolution: int = 256
    """Marching-cubes grid per axis, the only mesh-resolution setting (copied into ``reconstruction``)."""
    progress: bool = True
    label: str = ""
    """Free text copied into result.json (tiny configs say they use random weights)."""
    stage_configs: dict[str, str] = field(default_factory=dict)
    """Stage YAML files (zero123/zero123plus/elevation/reconstruction -> path, relative paths from the repository
    root) used as the base of those sections; the sections' own keys and command-line overrides win."""
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    elevation_policy: ElevationPolicyConfig = field(default_factory=ElevationPolicyConfig)
    text_to_image: TextToImageConfig = field(default_factory=TextToImageConfig)
    zero123: Zero123Config = field(default_factory=Zero123Config)
    zero123plus: Zero123PlusConfig = field(default_factory=Zero123PlusConfig)
    elevation: ElevationConfig = field(default_factory=ElevationConfig)
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)

    def validate(self) -> "PipelineConfig":
        from pipeline.registry import generator_class

        generator_class(self.generator)  # unknown names fail here, naming the known ones
        if self.elevation_policy.on_failure not in ("fallback", "abort"):
            raise ConfigError(
                f"elevation_policy.on_failure must be 'fallback' or 'abort', got '{self.elevation_policy.on_failure}'"
            )
        p = self.elevation_policy.polar_deg
        if p is not None and not 0.0 < p < 180.0:
            raise ConfigError(f"elevation_policy.polar_deg must be in (0, 180) degrees from +z, got {p}")
        if self.mesh_resolution < 8:
            raise ConfigError(f"mesh_resolution must be >= 8, got {self.mesh_resolution}")
        for stage in (self.zero123, self.zero123plus, self.elevation, self.reconstruction):
            if hasattr(stage, "validate"):
                stage.validate()
        return self

    @property
    def random_weight_stages(self) -> tuple[str, ...]:
        """Stages of this config's generator that run with random weights (its outputs are meaningless then)."""
        from pipeline.registry import generator_class

        return generator_class(self.generator).random_weight_stages(self)


#: Stage keys that belong to the run context: (section path, run key). A pipeline config may leave them out or
#: give the run's value; the loader copies the run's value in.
_RUN_KEYS = (
    (("reconstruction", "mesh_resolution"), "mesh_resolution"),
    (("reconstruction", "device"), "device"),
    (("preprocess", "device"), "device"),
    (("elevation", "matcher", "device"), "device"),
)


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _check_run_keys(explicit: dict) -> None:
    """Refuse stage-level copies of run settings that disagree with the run's own (one place for each)."""
    for path, run_key in _RUN_KEYS:
        value = _get(explicit, path)
        if value is None or (run_key == "device" and value == "auto"):
            continue
        run_value = explicit.get(run_key, getattr(PipelineConfig, run_key))
        if str(value) != str(run_value):
            raise ConfigError(
                f"{'.'.join(path)}: {value!r} differs from the run's {run_key} {run_value!r}; a pipeline run has one "
                f"{run_key} setting: set '{run_key}' (or --{run_key.replace('_', '-')}) instead"
            )


def load_pipeline_config(*sources: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Typed pipeline config: YAML files / dicts merged in order, ``stage_configs`` files as section bases,
    dotlist ``overrides`` last. Unknown keys and bad values raise :class:`ConfigError` before any model is built.

    The ``zero123plus`` section is completed by its variant's preset (``zero123plus.load_zero123plus_config``:
    defaults < preset < stage file < section keys). The run's ``device`` and ``mesh_resolution`` are copied into the
    stage sections that have such keys."""
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
    overridden = {str(o).partition("=")[0].strip() for o in overrides}
    for path, run_key in _RUN_KEYS:  # --device / --mesh-resolution on a resolved config.yaml: the copies follow
        if run_key in overridden and _get(merged, path) not in (None, "auto"):
            _set(merged, path, merged[run_key])
    _check_run_keys(merged)
    stage_files = dict(merged.get("stage_configs") or {})
    for stage, path in stage_files.items():
        if stage not in STAGE_NAMES:
            raise ConfigError(f"stage_configs: unknown stage '{stage}' (known: {STAGE_NAMES})")
        file = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
        if not file.is_file():
            raise ConfigError(f"stage_configs.{stage}: file not found: {file}")
        if stage == "zero123plus":
            continue  # completed below with its variant preset
        base_layer = read_yaml(file)
        section = type(getattr(PipelineConfig(), stage))
        merge_layer(OmegaConf.structured(section), base_layer, file, section.__name__)
        base = OmegaConf.to_container(base_layer, resolve=True) or {}
        merged[stage] = OmegaConf.to_container(OmegaConf.merge(base, merged.get(stage) or {}))
    z_sources = []
    if "zero123plus" in stage_files:
        z = Path(stage_files["zero123plus"])
        z_sources.append(z if z.is_absolute() else REPO_ROOT / z)
    z_sources.append(merged.get("zero123plus") or {})
    merged["zero123plus"] = OmegaConf.to_container(OmegaConf.structured(load_zero123plus_config(*z_sources)))
    run = {k: merged.get(k, getattr(PipelineConfig, k)) for k in ("device", "mesh_resolution")}
    for path, run_key in _RUN_KEYS:
        _set(merged, path, run[run_key])
    return load_config(PipelineConfig, merged).validate()
