"""``train.py`` with ``task: reconstruction`` on a tiny dataset written in the official layout (+ CPU DDP)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _training_synthetic import render_sphere, rig
from data.datasets.one2345_official import IMAGE_FOLDER, POSE_FILE, SPLIT_FILE

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/train/reconstruction.yaml"
SIZE = 32


def write_official_sphere_layout(root: Path, uids=("a", "b", "c")) -> Path:
    """The sphere rendered by the shared rig, stored exactly as the official training data."""
    cams = rig(70.0, SIZE)
    rgb, mask, depth = render_sphere(cams)
    (root / POSE_FILE).parent.mkdir(parents=True, exist_ok=True)
    c2w_gl = cams.c2w_opengl.double().tolist()
    (root / POSE_FILE).write_text(json.dumps({"intrinsics": cams.intrinsics[0].tolist(), "near_far": [0.5, 1.8],
                                              "c2ws": {f"view_{i}": m for i, m in enumerate(c2w_gl)}}))
    items = [{"folder_id": "000-000", "uid": u} for u in uids]
    (root / SPLIT_FILE).write_text(json.dumps({"train": items[:-1], "val": items[-1:]}))
    rgba = np.concatenate([rgb.permute(0, 2, 3, 1).numpy(), mask.permute(0, 2, 3, 1).numpy()], -1)
    rgba = (rgba * 255).round().astype(np.uint8)
    depth_mm = (depth[:, 0].numpy() * 1000).round().astype(np.uint16)
    for uid in uids:
        folder = root / IMAGE_FOLDER / "000-000" / uid
        folder.mkdir(parents=True)
        for k in range(8):
            Image.fromarray(rgba[k], "RGBA").save(folder / f"view_{k}.png")
            Image.fromarray(depth_mm[k]).save(folder / f"view_{k}_depth_mm.png")
            for j in range(4):
                for suffix in ("", "_gt"):
                    Image.fromarray(rgba[8 + 4 * k + j], "RGBA").save(folder / f"view_{k}_{j}_10{suffix}.png")
    return root


def tiny_overrides(data_root: Path, out: Path) -> list[str]:
    return [
        f"data.root={data_root}", f"trainer.output_dir={out}", "data.image_size=32", "data.num_workers=0",
        "data.source_views=[0,5,10,15,16,21,26,31]", "data.gt_source_probability=0.5",
        "model.volume_resolution=16", "model.voxel_size=null", "model.device=cpu",
        "render.num_uniform_rays=4", "render.num_foreground_rays=12", "render.n_samples=8", "render.n_importance=8",
        "render.up_sample_steps=1", "render.random_points=32", "trainer.val_mesh_resolution=16",
        "trainer.log_every=1", "trainer.ckpt_every=2", "trainer.val_every=2", "trainer.accelerator=cpu",
    ]


@pytest.mark.slow
def test_train_py_trains_on_the_official_layout(tmp_path):
    import train

    data = write_official_sphere_layout(tmp_path / "data")
    out = tmp_path / "run"
    assert train.main(["--config", str(CONFIG), "--max-steps", "2", *tiny_overrides(data, out)]) == 0
    assert (out / "checkpoints/last.ckpt").is_file() and (out / "config.yaml").is_file()
    assert list((out / "val").glob("step_0000002/object0_*.png"))
    assert list((out / "tensorboard").glob("version_0/events.*"))
    # resume through the CLI flag continues from step 2
    assert train.main(["--config", str(CONFIG), "--max-steps", "3", "--resume", str(out / "checkpoints/last.ckpt"),
                       *tiny_overrides(data, tmp_path / "run2")]) == 0
    assert (tmp_path / "run2/checkpoints/last.ckpt").is_file()


def test_train_py_reports_config_errors(tmp_path, capsys):
    import train

    assert train.main(["--config", str(CONFIG), "loss.unknown=1"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert train.main(["--config", str(CONFIG), "data.root="]) == 2


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(tmp_path):
    data = write_official_sphere_layout(tmp_path / "data", uids=("a", "b", "c", "d", "e"))
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(CONFIG), "--accelerator", "cpu",
           "--devices", "2", "--strategy", "ddp", "--max-steps", "2", *tiny_overrides(data, tmp_path / "ddp"),
           "data.val_objects=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained to step 2" in proc.stdout
    assert (tmp_path / "ddp/checkpoints/last.ckpt").is_file()


def test_train_py_malformed_yaml_and_override_without_equals_exit_2(tmp_path, capsys):
    import train

    bad = tmp_path / "bad.yaml"
    bad.write_text("task: reconstruction\ndata:\n  root: x\n layout: [a\n")
    assert train.main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 4, column 2: malformed YAML" in err and len(err.strip().splitlines()) == 1
    assert train.main(["--config", str(CONFIG), "data.root"]) == 2
    assert "expected key=value, got 'data.root'" in capsys.readouterr().err
