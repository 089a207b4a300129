"""The README's training sequence on a fresh clone: render a few shared meshes with scripts/render_dataset.py
(split lists included), train both tiny configs for a few steps with train.py; a missing data folder is a
one-line error that names the folder and the command creating it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {"zero123": "configs/train/zero123_tiny.yaml", "reconstruction": "configs/train/reconstruction_tiny.yaml"}


@pytest.mark.parametrize("task", sorted(TINY))
def test_missing_data_folder_names_the_folder_and_the_command(task, tmp_path, capsys):
    import train

    absent = tmp_path / "absent"
    if task == "zero123":
        overrides = [f"data.root={absent}", f"data.train_list={absent}/train.txt", f"data.val_list={absent}/val.txt"]
    else:
        overrides = [f"data.root={absent}", f"data.train_split={absent}/train.txt", f"data.val_split={absent}/val.txt"]
    assert train.main(["--config", str(ROOT / TINY[task]), *overrides]) == 2
    err = capsys.readouterr().err
    assert str(absent) in err and "scripts/render_dataset.py" in err and f"--layout {task}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tiny_configs_point_at_the_documented_folders():
    from omegaconf import OmegaConf

    z = OmegaConf.load(ROOT / TINY["zero123"]).data
    r = OmegaConf.load(ROOT / TINY["reconstruction"]).data
    assert (z.root, z.train_list, z.val_list) == (
        "runs/data/zero123_tiny", "runs/data/zero123_tiny/train.txt", "runs/data/zero123_tiny/val.txt")
    assert (r.root, r.train_split, r.val_split) == (
        "runs/data/reconstruction_tiny", "runs/data/reconstruction_tiny/train.txt",
        "runs/data/reconstruction_tiny/val.txt")
    readme = (ROOT / "README.md").read_text()
    for folder in ("runs/data/zero123_tiny", "runs/data/reconstruction_tiny"):
        assert f"--out {folder}" in readme


@pytest.mark.slow
def test_readme_sequence_renders_and_trains_both_modules(tmp_path, shared):
    """The README commands in a fresh folder (configs/ linked in; relative paths as documented), 2 steps each."""
    meshes = shared("data/meshes/khronos")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYOPENGL_PLATFORM": "egl"}

    def run(*args):
        proc = subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    render = [ROOT / "scripts/render_dataset.py", meshes, "--backend", "cpu", "--limit", "3", "--no-progress"]
    run(*render, "--out", "runs/data/zero123_tiny", "--layout", "zero123", "--views", "8", "--size", "64")
    run(*render, "--out", "runs/data/reconstruction_tiny", "--layout", "reconstruction",
        "--set", "backend.cpu.supersample=1")
    from data.datasets.rendered import read_id_list

    for layout in ("zero123_tiny", "reconstruction_tiny"):
        folder = tmp_path / "runs/data" / layout
        assert len(read_id_list(folder / "train.txt")) == 2 and len(read_id_list(folder / "val.txt")) == 1
    run(ROOT / "train.py", "--config", TINY["zero123"], "--max-steps", "2", "trainer.val_check_interval=2")
    summary = json.loads((tmp_path / "runs/zero123_tiny/summary.json").read_text())
    assert summary["global_step"] == 2 and (tmp_path / "runs/zero123_tiny/final").is_dir()
    out = run(ROOT / "train.py", "--config", TINY["reconstruction"], "--max-steps", "2", "trainer.val_every=2")
    assert "trained to step 2" in out
    assert (tmp_path / "runs/reconstruction_tiny/checkpoints/last.ckpt").is_file()
    assert list((tmp_path / "runs/reconstruction_tiny/val").glob("step_0000002/object0_*.png"))
