"""scripts/render_dataset.py: kill-and-resume, bad assets recorded and skipped, sharding, Blender backend."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data.render.backends import BackendUnavailableError, BlenderBackend, BlenderConfig, find_blender

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "render_dataset.py"
FAST = ["--set", "backend.cpu.supersample=1", "backend.cpu.normals=false", "--no-progress"]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600, **kwargs)


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the script's main() in this process (no interpreter start-up); returns (code, stdout, stderr)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_dataset_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _manifest(out: Path) -> list[dict]:
    lines = []
    for path in sorted(out.glob("manifest-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def _write_obj(path: Path, vertices, faces) -> Path:
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"f {a} {b} {c}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tetra(path: Path, shift: float = 0.0) -> Path:
    v = [(0, 0, 0), (1 + shift, 0, 0), (0, 1, 0), (0, 0, 1)]
    return _write_obj(path, v, [(1, 3, 2), (1, 2, 4), (1, 4, 3), (2, 3, 4)])


def test_bad_assets_are_recorded_and_the_run_goes_on(tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    _tetra(assets / "good.obj")
    (assets / "empty.obj").write_bytes(b"")
    (assets / "corrupt.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage" * 10)
    _write_obj(assets / "nan.obj", [(0, 0, 0), (1, 0, 0), ("nan", 1, 0)], [(1, 2, 3)])
    out = tmp_path / "out"
    code, stdout, stderr = _main([str(assets), "--out", str(out), "--layout", "zero123", "--views", "2",
                                  "--size", "64", *FAST], capsys)
    assert code == 0, stderr
    records = {r["object_id"]: r for r in _manifest(out)}
    assert records["good"]["status"] == "ok" and records["good"]["views"] == 2
    for name, words in (("empty", "empty"), ("corrupt", "cannot parse"), ("nan", "NaN")):
        assert records[name]["status"] == "failed" and words in records[name]["error"], records[name]
        assert not (out / name).exists()
    assert json.loads((out / "valid_paths.json").read_text()) == ["good"]
    assert "3 failed" in stdout


@pytest.mark.slow
def test_killed_run_resumes_with_only_the_missing_objects(tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    for i in range(3):
        _tetra(assets / f"obj{i}.obj", shift=0.1 * i)
    out = tmp_path / "out"
    args = [str(assets), "--out", str(out), "--layout", "reconstruction", "--views", "2", *FAST]
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (out / "obj0" / "meta.json").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "first object never completed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_first = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert "obj0" in done_first and len(done_first) < 3, done_first
    for name in done_first:  # nothing half-written is visible: every visible object folder is complete
        assert (out / name / "meta.json").is_file() and (out / name / "pose.json").is_file()
    stamp = (out / "obj0" / "meta.json").stat().st_mtime_ns
    (out / "manifest-0000-of-0001.jsonl").unlink(missing_ok=True)

    code, _, stderr = _main(args, capsys)
    assert code == 0, stderr
    records = {r["object_id"]: r["status"] for r in _manifest(out)}
    assert records == {f"obj{i}": ("skipped" if f"obj{i}" in done_first else "ok") for i in range(3)}
    assert (out / "obj0" / "meta.json").stat().st_mtime_ns == stamp
    assert not [p for p in out.iterdir() if p.name.startswith(".obj")], "stale temporary folders left"
    assert len(list((out / "obj2").glob("view_*_depth_mm.png"))) == 10


def test_shards_split_the_list_between_workers(tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    for i in range(3):
        _tetra(assets / f"t{i}.obj", shift=0.1 * i)
    (tmp_path / "list.txt").write_text("# assets\n" + "".join(f"assets/t{i}.obj\n" for i in range(3)))
    out = tmp_path / "out"
    for shard in (0, 1):
        code, _, stderr = _main([str(tmp_path / "list.txt"), "--out", str(out), "--layout", "zero123", "--views",
                                 "2", "--size", "32", "--shard", str(shard), "--num-shards", "2", *FAST], capsys)
        assert code == 0, stderr
    per_shard = {s: [json.loads(x)["object_id"] for x in (out / f"manifest-{s:04d}-of-0002.jsonl").read_text()
                     .splitlines()] for s in (0, 1)}
    assert per_shard == {0: ["t0", "t2"], 1: ["t1"]}
    assert json.loads((out / "valid_paths.json").read_text()) == ["t0", "t1", "t2"]


def test_bad_arguments_are_reported(tmp_path, capsys):
    code, _, stderr = _main([str(tmp_path / "nothing*.glb"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "no assets" in stderr
    _tetra(tmp_path / "a.obj")
    code, _, stderr = _main([str(tmp_path / "a.obj"), "--out", str(tmp_path / "o"), "--set", "zero123.fov=3"],
                            capsys)
    assert code == 2 and "fov" in stderr


# ---------------------------------------------------------------------- Blender backend (own venv)
@pytest.fixture(scope="module")
def blender_command():
    try:
        return find_blender()
    except BackendUnavailableError as exc:
        reason = os.environ.get("ONE2345_BLENDER_SKIP_REASON", "")
        if os.environ.get("ONE2345_REQUIRE_BLENDER") == "1":
            pytest.fail(f"ONE2345_REQUIRE_BLENDER=1 but {exc}")
        pytest.skip(f"Blender backend unavailable: {exc}" + (f" ({reason})" if reason else ""))


@pytest.mark.blender
def test_blender_backend_renders_a_real_mesh_like_the_cpu_backend(blender_command, shared):
    from data.assets import load_asset
    from data.cameras import Cameras
    from data.render import RenderConfig, render_mesh
    from data.render.backends import AreaLight

    mesh = load_asset(shared("data/meshes") / "khronos/Duck/Duck.glb")
    cams = Cameras.from_spherical([60.0, 100.0], [30.0, 200.0], 1.8, focal_px=48.0, size_px=64, dtype=torch.float64)
    out = BlenderBackend(BlenderConfig(samples=8)).render(mesh, cams, AreaLight((0.3, -0.5, 1.0), 450.0))
    cpu = render_mesh(mesh, cams, RenderConfig(supersample=3, normals=False))
    # same camera convention: the silhouettes coincide up to edge pixels
    differ = ((out.alpha > 0.5) != (cpu.alpha > 0.5)).float().mean()
    assert float(differ) < 0.01, float(differ)
    assert float(out.alpha.mean()) > 0.05
    # the yellow duck comes out yellow (texture reached Cycles), not black or grey
    fg = out.alpha[:, 0] > 0.99
    mean = out.rgb.permute(0, 2, 3, 1)[fg].mean(0)
    assert mean[0] > 0.4 and mean[1] > 0.3 and mean[2] < 0.5 * mean[0], mean.tolist()
    # depth comes from exact ray casting on the same mesh, zero outside the silhouette
    assert (out.depth[out.alpha == 0] == 0).all() and (out.depth[out.alpha == 1] > 0).all()


@pytest.mark.blender
@pytest.mark.slow
def test_render_dataset_with_blender_backend(blender_command, shared, tmp_path):
    asset = shared("data/meshes") / "hope/bbq_sauce/bbq_sauce.obj"
    out = tmp_path / "out"
    proc = _run([str(asset), "--out", str(out), "--layout", "zero123", "--backend", "blender", "--views", "2",
                 "--size", "48", "--no-progress", "--set", "backend.blender.samples=4"])
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = _manifest(out)
    assert record["status"] == "ok" and record["backend"] == "blender", record
    from PIL import Image

    img = np.asarray(Image.open(out / "bbq_sauce" / "000.png"))
    assert img.shape == (48, 48, 4) and img[..., 3].max() == 255 and img[..., 3].min() == 0


def test_split_lists_are_written_beside_the_index(tmp_path, capsys):
    """train.txt / val.txt (the datasets' split-list format) partition valid_paths.json, reproducibly."""
    from data.datasets.rendered import read_id_list

    assets = tmp_path / "assets"
    assets.mkdir()
    for i in range(4):
        _tetra(assets / f"t{i}.obj", shift=0.1 * i)
    out = tmp_path / "out"
    args = [str(assets), "--out", str(out), "--layout", "zero123", "--views", "2", "--size", "32", *FAST]
    code, stdout, stderr = _main(args, capsys)
    assert code == 0, stderr
    index = json.loads((out / "valid_paths.json").read_text())
    train, val = read_id_list(out / "train.txt"), read_id_list(out / "val.txt")
    assert len(val) == 1 and sorted(train + val) == index  # default fraction 0.1: still one validation object
    assert "3 train / 1 val" in stdout
    files = {n: (out / n).read_text() for n in ("train.txt", "val.txt")}
    assert _main(args, capsys)[0] == 0  # a rerun (everything skipped) writes the same lists
    assert {n: (out / n).read_text() for n in files} == files
    assert _main([*args, "--val-fraction", "0.5"], capsys)[0] == 0
    assert len(read_id_list(out / "val.txt")) == 2 and len(read_id_list(out / "train.txt")) == 2
    code, _, stderr = _main([*args, "--val-fraction", "1"], capsys)
    assert code == 2 and "--val-fraction" in stderr


def test_split_ids_rules():
    from data.datasets.splits import split_ids

    ids = [f"obj{i:02d}" for i in range(20)]
    train, val = split_ids(ids, 0.25, seed=0)
    assert len(val) == 5 and sorted(train + val) == ids and split_ids(ids, 0.25, seed=0) == (train, val)
    assert split_ids(ids[::-1], 0.25, seed=0) == (train, val)  # independent of the listing order
    assert split_ids(ids, 0.25, seed=1)[1] != val
    assert split_ids(ids[:2], 0.1, seed=0)[1] != [] and split_ids(ids[:1], 0.1, seed=0) == (ids[:1], [])
    assert split_ids(ids[:3], 0.9, seed=0)[0] != []  # at least one training object
    assert split_ids(ids, 0.0, seed=0) == (ids, [])
