"""The orchestrator: one image -> generated posed views -> reconstruction -> mesh, with pluggable view generators.

    from pipeline import build_pipeline, load_pipeline_config
    cfg = load_pipeline_config("configs/infer/default.yaml", overrides=["generator=zero123plus_nearby"])
    out = build_pipeline(cfg)("photo.png")          # -> PipelineOutput
    write_outputs(out, cfg, Path("outputs/photo"), "ply", "photo.png")

Modules: ``config`` (the typed config; ``generator`` names the generator), ``context`` (device, dtype, seeds,
progress, timings), ``output`` (``PipelineOutput``), ``writers`` (mesh / images / result.json), ``registry``
(generator name -> class; how to add one), ``stages`` (building and calling the stage packages through their public
APIs), ``generators/`` (one module per generator), ``prompt`` (text -> input image). This package composes the stage
packages (the only place besides sjc_pipeline.py, scripts and infer.py that may); it is not installed, import it from
the repository root.
"""
import importlib

#: Public name -> its module (imported on first access, so ``import pipeline.writers`` stays light).
_EXPORTS = {
    "Zero123Pipeline": "zero123",  # tests patch its class methods through this name
    "ElevationPolicyConfig": "pipeline.config", "PipelineConfig": "pipeline.config",
    "PipelineError": "pipeline.config", "ScheduleConfig": "pipeline.config", "TextToImageConfig": "pipeline.config",
    "WeightsConfig": "pipeline.config", "load_pipeline_config": "pipeline.config",
    "RunContext": "pipeline.context", "Timer": "pipeline.context", "derive_seed": "pipeline.context",
    "peak_rss_bytes": "pipeline.context",
    "One2345Pipeline": "pipeline.generators.one2345", "stage2_conditioning": "pipeline.generators.one2345",
    "view_seed": "pipeline.generators.one2345",
    "PipelineOutput": "pipeline.output",
    "text_to_image": "pipeline.prompt",
    "GENERATORS": "pipeline.registry", "build_pipeline": "pipeline.registry", "generator_class": "pipeline.registry",
    "required_weights": "pipeline.registry",
    "build_estimator": "pipeline.stages",
    "write_outputs": "pipeline.writers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
