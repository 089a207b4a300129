"""Typed configs fail on unknown keys and wrong types, naming the key."""
from dataclasses import dataclass, field

import pytest

from data.config import ConfigError, load_config, save_config


@dataclass
class _Inner:
    width: int = 8
    name: str = "a"


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    lr: float = 1e-3


def test_yaml_merge_and_override(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  width: 16\nlr: 0.5\n")
    cfg = load_config(_Outer, p, overrides=["inner.name=b"])
    assert isinstance(cfg, _Outer) and isinstance(cfg.inner, _Inner)
    assert (cfg.inner.width, cfg.inner.name, cfg.lr) == (16, "b", 0.5)
    out = save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(_Outer, out) == cfg


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  widht: 16\n")
    with pytest.raises(ConfigError, match="widht"):
        load_config(_Outer, p)
    with pytest.raises(ConfigError, match="nope"):
        load_config(_Outer, overrides=["nope=1"])


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match="width"):
        load_config(_Outer, {"inner": {"width": "wide"}})


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config(_Outer, "does/not/exist.yaml")


def test_every_repo_config_loads():
    """Every YAML under configs/ names its schema in a first-line comment and loads against it."""
    import importlib
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for path in sorted(root.rglob("*.yaml")):
        first = path.read_text().splitlines()[0]
        m = re.match(r"#\s*schema:\s*([\w.]+):(\w+)", first)
        assert m, f"{path} must start with '# schema: package.module:ConfigClass'"
        schema = getattr(importlib.import_module(m.group(1)), m.group(2))
        load_config(schema, path)



def test_unknown_key_in_a_file_names_the_file_line_and_the_allowed_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.1\ninner:\n  name: x\n  widht: 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(_Outer, p)
    msg = str(info.value)
    assert msg.startswith(f"{p}, line 4: ") and "inner.widht" in msg
    assert "'width'" in msg and "<dict>" not in msg


def test_malformed_yaml_names_file_line_column_and_the_fix(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("inner:\n  width: 16\n name: [a, b\n")
    with pytest.raises(ConfigError, match=rf"^{p}, line 3, column 2: malformed YAML.*fix"):
        load_config(_Outer, p)
    p.write_text("inner:\n\twidth: 16\n")
    with pytest.raises(ConfigError, match=r"line 2, column 1: malformed YAML.*tab"):
        load_config(_Outer, p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*mapping"):
        load_config(_Outer, p)


def test_override_without_equals_says_key_equals_value():
    for bad in ("inner.width", "=3", "inner"):
        with pytest.raises(ConfigError, match=rf"expected key=value, got '{bad}'"):
            load_config(_Outer, overrides=[bad])
    assert load_config(_Outer, overrides=["inner.name=''"]).inner.name == ""  # key='' is an empty string
