"""The view generators: registry name -> the class that runs image -> views -> reconstruction -> mesh.

Adding a generator = a module under ``pipeline/generators/`` with a class that has

* ``name`` (its registry name), ``required_weights(cfg) -> {registry name: source}`` (only the model weights it
  loads; None sources mean the registry default), ``random_weight_stages(cfg) -> tuple[str, ...]``;
* ``from_config(cfg, *, weight_paths=None)`` building only what it needs on ``RunContext.from_config(cfg)``;
* ``__call__(image, *, seed=..., source_name=None) -> PipelineOutput``;

a config file ``configs/infer/<name>.yaml`` (``generator: <name>``), and one line in :data:`GENERATORS` below.
Classes are imported on first use, so a run imports only its own generator's stages.
"""
from __future__ import annotations

import importlib

from data.config import ConfigError

GENERATORS: dict[str, str] = {
    "one2345": "pipeline.generators.one2345:One2345Pipeline",
    "zero123plus": "pipeline.generators.zero123plus:Zero123PlusGenerator",
    "zero123plus_nearby": "pipeline.generators.zero123plus_nearby:Zero123PlusNearbyGenerator",
}


def generator_class(name: str) -> type:
    """The generator class registered under ``name`` (ConfigError naming the known ones otherwise)."""
    if name not in GENERATORS:
        raise ConfigError(f"generator: unknown generator '{name}' (known: {', '.join(GENERATORS)})")
    module, _, attr = GENERATORS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def required_weights(cfg, *, text_prompt: bool = False) -> dict[str, str | None]:
    """Registry name -> source of every weight this configuration needs (random-init stages need none): the
    generator's models, the segmenters of ``preprocess``, and the text-to-image model for ``--prompt``."""
    need = dict(generator_class(cfg.generator).required_weights(cfg))
    w = cfg.weights
    if cfg.preprocess.segmenter in ("rembg", "sam") and w.u2net is not None:
        need["u2net"] = w.u2net
    if cfg.preprocess.segmenter == "sam" and w.sam is not None:
        need["sam"] = w.sam
    if text_prompt:
        if w.text2image is None:
            raise ConfigError("--prompt needs weights.text2image (a diffusers text-to-image folder or hub id)")
        need["text2image"] = w.text2image
    return {k: (None if v == "default" else v) for k, v in need.items()}


def build_pipeline(cfg, *, weight_paths=None):
    """The configured generator, built (weights resolved first: one missing-weights message for all)."""
    return generator_class(cfg.generator).from_config(cfg, weight_paths=weight_paths)
