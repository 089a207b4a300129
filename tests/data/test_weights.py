"""Weights registry: local paths, the Hugging Face cache, offline behaviour and the single missing-weights message."""
from __future__ import annotations

import pytest

from data import weights
from data.weights import REGISTRY, MissingWeightsError, parse_source, resolve, resolve_all, try_resolve


def _fake_hub_cache(root, repo_id, filename, content=b"w"):
    """Lay out one file the way huggingface_hub's cache stores it (refs/main -> snapshots/<rev>/<file>)."""
    repo_dir = root / f"models--{repo_id.replace('/', '--')}"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(rev)
    target = repo_dir / "snapshots" / rev / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return target


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))
    return cache


def test_registry_holds_the_official_files():
    assert REGISTRY["zero123"].default_source == "hf://One-2-3-45/code/zero123-xl.ckpt"
    assert REGISTRY["reconstruction"].filename.endswith("lod0/checkpoints/ckpt_215000.pth")
    assert REGISTRY["loftr"].basename == "indoor_ds_new.ckpt"
    assert REGISTRY["sam"].basename == "sam_vit_h_4b8939.pth"
    assert REGISTRY["u2net"].url.endswith("u2net.onnx")


def test_parse_source():
    assert parse_source("hf://One-2-3-45/code/a/b.ckpt") == ("One-2-3-45/code", "a/b.ckpt")
    assert parse_source("hf://kxic/zero123-xl") == ("kxic/zero123-xl", None)
    assert parse_source("bennyguo/zero123-xl-diffusers") == ("bennyguo/zero123-xl-diffusers", None)
    with pytest.raises(ValueError):
        parse_source("weights/model.ckpt")  # looks like a file, so it is a (missing) local path


def test_local_path_wins(tmp_path, offline_cache):
    f = tmp_path / "mine.ckpt"
    f.write_bytes(b"x")
    assert resolve("zero123", str(f)) == f


def test_hub_file_is_found_in_the_cache_offline(offline_cache):
    spec = REGISTRY["loftr"]
    target = _fake_hub_cache(offline_cache, spec.repo_id, spec.filename)
    assert resolve("loftr").resolve() == target.resolve()


def test_url_weight_found_in_its_folder(offline_cache, tmp_path):
    (tmp_path / "u2net").mkdir()
    (tmp_path / "u2net" / "u2net.onnx").write_bytes(b"onnx")
    assert resolve("u2net") == tmp_path / "u2net" / "u2net.onnx"


def test_one_error_lists_every_missing_weight(offline_cache, tmp_path):
    spec = REGISTRY["loftr"]
    _fake_hub_cache(offline_cache, spec.repo_id, spec.filename)
    with pytest.raises(MissingWeightsError) as info:
        resolve_all({"zero123": None, "reconstruction": str(tmp_path / "nope.pth"), "loftr": None, "u2net": None})
    msg = str(info.value)
    assert msg.startswith("3 model weight file(s) are missing")
    assert [s.name for s, _, _ in info.value.missing] == ["zero123", "reconstruction", "u2net"]
    for expected in ("hf://One-2-3-45/code/zero123-xl.ckpt", "nope.pth", "does not exist", "HF_HUB_OFFLINE=1",
                     "scripts/download_weights.py --only zero123 reconstruction u2net", "weights.zero123=",
                     "configs/infer/tiny.yaml"):
        assert expected in msg


def test_unknown_name_is_a_key_error(offline_cache):
    with pytest.raises(KeyError, match="unknown weight"):
        resolve_all({"zero124": None})


def test_try_resolve_never_downloads_when_offline(offline_cache, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("tried to download while offline")

    monkeypatch.setattr(weights, "_download_url", boom)
    path, reason = try_resolve("u2net")
    assert path is None and "downloads are disabled" in reason


def test_unreachable_hub_gives_the_missing_message_at_once(tmp_path, monkeypatch):
    """Downloads allowed but the hub does not answer (closed loopback port): one quick probe, then the message
    naming every missing file -- not a minute of download retries."""
    import time

    endpoint = "http://127.0.0.1:9"  # loopback, nothing listens: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)  # the library read HF_ENDPOINT on import
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError) as info:
        resolve_all({"zero123": None, "reconstruction": None, "loftr": None})
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"took {elapsed:.1f} s to report missing weights"
    assert [s.name for s, _, _ in info.value.missing] == ["zero123", "reconstruction", "loftr"]
    msg = str(info.value)
    for expected in ("zero123-xl.ckpt", "ckpt_215000.pth", "indoor_ds_new.ckpt", endpoint):
        assert expected in msg


def test_cached_files_are_used_without_any_network(offline_cache, monkeypatch):
    """With downloads allowed, a file already in the cache is returned without opening any connection."""
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # should anything connect, it stays on loopback
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    connections = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connections.append(addr) or real_connect(self, addr))
    spec = REGISTRY["loftr"]
    target = _fake_hub_cache(offline_cache, spec.repo_id, spec.filename)
    assert resolve("loftr").resolve() == target.resolve()
    assert connections == []
