"""Typed configs: a dataclass schema per component, YAML values merged on top, validated on load.

Usage::

    cfg = load_config(MyConfig, "configs/x.yaml", overrides=["model.width=64"])

Unknown keys and wrong types raise :class:`ConfigError` naming the key and the file before any model is built.
``save_config`` writes the resolved config next to an output.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data.io import write_text_atomic

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match its schema (unknown key, wrong type, missing value)."""


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    return f"key '{key}': {msg}" if key else msg


def load_config(schema: type[T], *sources: str | Path | dict, overrides: Sequence[str] = ()) -> T:
    """Build a typed config object.

    Args:
        schema: a dataclass type; nested sections are dataclasses too.
        sources: YAML paths or plain dicts merged in order on top of the schema defaults.
        overrides: dotlist strings ``"section.key=value"`` applied last.

    Returns:
        An instance of ``schema`` (``OmegaConf.to_object``): plain dataclasses, validated.
    """
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"{schema!r} is not a dataclass")
    merged = OmegaConf.structured(schema)
    for src in sources:
        where = str(src) if not isinstance(src, dict) else "<dict>"
        if isinstance(src, dict):
            layer = OmegaConf.create(src)
        else:
            path = Path(src)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            layer = OmegaConf.load(path)
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{where}: {_describe(exc)} (allowed keys come from {schema.__name__})") from exc
    if overrides:
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"command-line override: {_describe(exc)}") from exc
    try:
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{schema.__name__}: {_describe(exc)}") from exc


def config_to_yaml(cfg: Any) -> str:
    """YAML text of a (dataclass) config."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    return write_text_atomic(path, config_to_yaml(cfg))
