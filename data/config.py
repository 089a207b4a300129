"""Typed configs: a dataclass schema per component, YAML values merged on top, validated on load.

Usage::

    cfg = load_config(MyConfig, "configs/x.yaml", overrides=["model.width=64"])

Unknown keys and wrong types raise :class:`ConfigError` naming the key, the file and the key's line before any
model is built; malformed YAML names the file, line and column; an override without ``=`` says so.
``save_config`` writes the resolved config next to an output.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data.io import write_text_atomic

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match its schema (unknown key, wrong type, missing value)."""


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()[0]  # one line: no full_key/object_type dump
    return f"key '{key}': {msg}" if key else msg


def read_yaml(path: str | Path) -> DictConfig:
    """Parse a YAML config file into a ``DictConfig``.

    Raises :class:`ConfigError` when the file is missing, is not valid YAML (naming the file, line and column of
    the problem), or its top level is not a ``key: value`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        layer = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        raise ConfigError(
            f"{where}: malformed YAML ({problem or exc}); fix the syntax there: indent nested keys with spaces "
            "(no tabs) consistently, write 'key: value' with a space after the colon, close brackets and quotes"
        ) from exc
    except (OSError, UnicodeDecodeError, OmegaConfBaseException) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{path}: a config file must be a mapping of 'key: value' lines, found a "
                          f"{type(layer).__name__}; write e.g. 'seed: 0' at the top level")
    return layer


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """Dotlist overrides ``"section.key=value"`` -> ``DictConfig``; an item without ``key=`` raises ConfigError."""
    for item in overrides:
        key, eq, _ = str(item).partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"command-line override: expected key=value, got '{item}' "
                              "(e.g. --set seed=1; key='' for an empty string)")
    try:
        return OmegaConf.from_dotlist([str(o) for o in overrides])
    except OmegaConfBaseException as exc:
        raise ConfigError(f"command-line override: {_describe(exc)}") from exc


def _merge_overrides(merged: DictConfig, layer: DictConfig) -> DictConfig:
    """``OmegaConf.merge(merged, layer)`` of parsed overrides; a bad key or value raises ConfigError."""
    try:
        return OmegaConf.merge(merged, layer)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"command-line override: {_describe(exc)}{_allowed_keys(exc)}") from exc


def check_overrides(schema: type, overrides: Sequence[str]) -> DictConfig:
    """:func:`parse_overrides`, then the keys and value types checked against ``schema`` (a dataclass)."""
    layer = parse_overrides(overrides)
    _merge_overrides(OmegaConf.structured(schema), layer)
    return layer


def _key_line(path: Path, full_key: str) -> int | None:
    """1-based line of ``full_key`` ("a.b[0].c") in a YAML file, or None when it cannot be located."""
    try:
        node = yaml.compose(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in re.findall(r"[^.\[\]]+", full_key):
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if str(k.value) == part]
            if not match:
                return None
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return None
    return line


def _allowed_keys(exc: OmegaConfBaseException) -> str:
    """ ' (allowed here: a, b, c)' for an unknown key inside a dataclass section, else ''."""
    obj = getattr(exc, "object_type", None)
    if not (isinstance(exc, KeyError) or "not in" in str(getattr(exc, "msg", ""))):
        return ""
    if obj is not None and dataclasses.is_dataclass(obj):
        return f" (allowed here: {', '.join(f.name for f in dataclasses.fields(obj))})"
    return ""


def merge_layer(merged: DictConfig, layer: DictConfig, source: str | Path | None, schema_name: str) -> DictConfig:
    """``OmegaConf.merge(merged, layer)``; a bad key raises ConfigError naming ``source`` (a file: with the
    key's line) and the keys allowed there."""
    try:
        return OmegaConf.merge(merged, layer)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        if source is None:
            where = "<dict>"
        else:
            line = _key_line(Path(source), str(key)) if key else None
            where = f"{source}, line {line}" if line else str(source)
        allowed = _allowed_keys(exc)
        fix = "fix or remove that key" if allowed or isinstance(exc, KeyError) else "fix that value"
        raise ConfigError(f"{where}: {_describe(exc)}{allowed} (the schema is {schema_name}); {fix}") from exc


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
        if isinstance(src, dict):
            merged = merge_layer(merged, OmegaConf.create(src), None, schema.__name__)
        else:
            merged = merge_layer(merged, read_yaml(src), src, schema.__name__)
    if overrides:
        merged = _merge_overrides(merged, parse_overrides(overrides))
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
