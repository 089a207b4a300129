"""scripts/cuda_check.py (the CUDA device check): its CPU dry run, the random-weight official-size config it times,
the carried wheels / fixtures, and the ``cuda`` marker's skip without CUDA."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))


def test_random_full_config_builds_every_model_at_the_official_size_with_random_weights():
    from pipeline import PipelineConfig, load_pipeline_config, required_weights
    from reconstruction import ReconstructionConfig  # noqa: F401
    from zero123.config import ModelConfig

    cfg = load_pipeline_config(REPO / "configs/infer/random_full.yaml")
    assert set(cfg.random_weight_stages) == {"zero123", "reconstruction", "elevation"}
    assert required_weights(cfg) == {}  # nothing to download (RGBA inputs: no segmenter weights)
    assert cfg.zero123.model == ModelConfig()  # the official Zero123-XL geometry
    assert (cfg.reconstruction.volume_resolution, cfg.mesh_resolution) == (96, 256)
    assert cfg.elevation.matcher.name == "loftr" and cfg.elevation.matcher.resize_px == 480
    assert (cfg.schedule.stage1_steps, cfg.schedule.stage2_steps, cfg.schedule.guidance_scale) == (75, 50, 3.0)
    assert cfg.half and cfg.device == "auto" and "RANDOM WEIGHTS" in cfg.label
    official = load_pipeline_config(REPO / "configs/infer/default.yaml")
    assert cfg.reconstruction == official.reconstruction and cfg.elevation == official.elevation
    assert isinstance(cfg, PipelineConfig)


def test_carry_lists_and_wheel_names(tmp_path):
    import cuda_carry

    specs = cuda_carry.requirements(REPO / "requirements-cuda-carry.txt")
    names = [s.split("==")[0].lower() for s in specs]
    assert all("==" in s for s in specs) and len(set(names)) == len(names)  # pinned, one version each
    assert {"diffusers", "kornia", "kornia_rs", "omegaconf", "trimesh"} <= set(names)
    for wheel in ("freetype_py-2.5.1-py3-none-any.whl", "kornia_rs-0.2.0-cp312-cp312-manylinux2014_x86_64.whl",
                  "pyopengl-3.1.0-py3-none-any.whl"):
        (tmp_path / wheel).touch()
    assert [w.name for w in cuda_carry.wheels_of("freetype-py", tmp_path)] == ["freetype_py-2.5.1-py3-none-any.whl"]
    assert len(cuda_carry.wheels_of("kornia_rs", tmp_path)) == 1 and not cuda_carry.wheels_of("kornia", tmp_path)
    assert len(cuda_carry.wheels_of("PyOpenGL", tmp_path)) == 1


def test_carried_reference_parts_exist(shared):
    import cuda_carry

    root = shared("fixtures/one2345_parity").parents[1]
    assert [p for p in cuda_carry.SHARED_PARTS if not (root / p).exists()] == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_marked_tests_skip_with_the_reason_without_cuda():
    env = {k: v for k, v in os.environ.items() if k not in ("ONE2345_CUDA_TESTS_DEVICE", "ONE2345_REQUIRE_CUDA")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "cuda",
                           "tests/cuda/test_cuda_sparse.py"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout and "needs a CUDA GPU (torch.cuda.is_available() is False)" in proc.stdout


@pytest.mark.slow
def test_cpu_dry_run_passes_and_writes_the_report(tmp_path):
    """``--device cpu --quick``: the cuda tests on the CPU and every timing step at tiny sizes (~2 min here)."""
    proc = subprocess.run([sys.executable, "scripts/cuda_check.py", "--device", "cpu", "--quick", "--out",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    report = json.loads((tmp_path / "cuda_check.json").read_text())
    assert {k: v["status"] for k, v in report["steps"].items()} == {
        k: "ok" for k in ("environment", "tests", "unet", "schedule", "reconstruction", "elevation", "infer")}
    t = report["tests"]["cuda_on_cpu"]
    assert t["failed"] == 0 and t["passed"] >= 8
    stages = [r["stage"] for r in report["timings"]]
    for expected in ("Zero123 UNet step, batch 2", "Zero123 UNet step, batch 4", "the One-2-3-45 schedule",
                     "Reconstruction, mesh resolution", "Elevation: loftr matching", "Elevation: pose search",
                     "infer.py, one image"):
        assert any(expected in s for s in stages), (expected, stages)
    assert all(r["seconds"] is not None and r["seconds"] >= 0 for r in report["timings"])
    table = (tmp_path / "cuda_check.md").read_text()
    assert "| stage (random weights) | seconds | peak memory GiB |" in table and "| cuda_on_cpu | " in table


def test_time_budget_skips_the_remaining_steps_and_still_writes_the_report(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/cuda_check.py", "--device", "cpu", "--quick", "--skip", "tests",
                           "--budget", "1", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]  # incomplete: not a pass
    report = json.loads((tmp_path / "cuda_check.json").read_text())
    assert report["steps"]["environment"]["status"] == "ok"
    assert {report["steps"][k]["status"] for k in ("unet", "schedule", "reconstruction", "elevation", "infer")} == {
        "skipped"}
    assert "time budget of 1 s spent" in (tmp_path / "cuda_check.md").read_text()


def test_shell_wrapper_parses_and_installs_the_listed_wheels_only():
    script = REPO / "scripts/cuda_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "--no-index --find-links .cuda_carry/wheels --no-deps" in text and "-r requirements-cuda-carry.txt" in text
