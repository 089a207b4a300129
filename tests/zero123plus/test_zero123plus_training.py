"""Zero123++ fine-tuning: the zero123plus render layout, the training step, train.py runs, exact resume, export."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from data.layout import split_grid, zero123plus_cameras

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = ROOT / "configs/train/zero123plus_tiny.yaml"


def render_layout(shared, out: Path, limit: int = 3, samples: int = 2, size: int = 64) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_dataset_script", ROOT / "scripts" / "render_dataset.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    render_main = script.main

    assets = shared("data/meshes") / "khronos"
    rc = render_main([str(assets), "--out", str(out), "--layout", "zero123plus", "--backend", "cpu", "--views",
                      str(samples), "--size", str(size), "--limit", str(limit), "--no-progress",
                      "--val-fraction", "0.34"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import require_shared

    return render_layout(lambda rel: require_shared(rel), tmp_path_factory.mktemp("zp") / "data")


def overrides(data: Path, out: Path, **extra) -> list[str]:
    items = {"data.root": str(data), "data.train_list": str(data / "train.txt"), "data.val_list": str(data / "val.txt"),
             "output_dir": str(out), "trainer.max_steps": 2, "trainer.val_check_interval": 2,
             "trainer.checkpoint_every_n_steps": 1, "trainer.log_every_n_steps": 1}
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def test_render_layout_grids_follow_the_camera_table(dataset):
    """Each grid's six tiles were rendered at the table's cameras for its conditioning view's azimuth."""
    ids = json.loads((dataset / "valid_paths.json").read_text())
    assert len(ids) == 3 and (dataset / "train.txt").is_file()
    meta = json.loads((dataset / ids[0] / "meta.json").read_text())
    assert meta["layout"] == "zero123plus" and meta["num_samples"] == 2 and meta["framing"] == "rig"
    for k, sample in enumerate(meta["samples"]):
        table = zero123plus_cameras("v1.2", sample["cond_azimuth_deg"], 64, dtype=torch.float64)
        assert np.allclose([t["c2w_opencv"] for t in sample["targets"]], table.c2w.numpy(), atol=1e-9)
        assert -20 <= sample["cond_elevation_deg"] <= 45
        grid = torch.from_numpy(np.array(Image.open(dataset / ids[0] / f"grid_{k:02d}.png"))).permute(2, 0, 1)
        tiles = split_grid(grid)
        assert tiles.shape == (6, 3, 64, 64)
        assert (tiles[:, :, 0, 0] == 255).all()  # white background (InstantMesh recipe)
        assert ((tiles < 250).flatten(1).float().mean(1) > 0.01).all()  # the object is in every tile
        cond = np.asarray(Image.open(dataset / ids[0] / f"cond_{k:02d}.png"))
        assert cond.shape == (64, 64, 4) and cond[0, 0, 3] == 0 and cond[..., 3].max() == 255


def test_training_step_pieces(dataset):
    from zero123plus import Zero123PlusPipeline
    from zero123plus.training.data import Zero123PlusGridDataset
    from zero123plus.training.lit_module import Zero123PlusLitModule
    from zero123plus.training.run import load_train_config

    cfg = load_train_config(TINY_TRAIN, overrides(dataset, dataset / "unused"))
    pipe = Zero123PlusPipeline.from_config(ROOT / "configs/zero123plus/tiny.yaml")
    module = Zero123PlusLitModule(pipe.model, cfg)
    assert all(p.requires_grad for p in pipe.model.unet.parameters())
    assert not any(p.requires_grad for p in pipe.model.vae.parameters())
    ds = Zero123PlusGridDataset(dataset, dataset / "train.txt", 64, 127, pipe.model.vae_processor,
                                pipe.model.clip_processor)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    # InstantMesh's random conditioning resize: a function of the item's draw key, and it changes the input
    small = Zero123PlusGridDataset(dataset, dataset / "train.txt", 64, 127, pipe.model.vae_processor,
                                   pipe.model.clip_processor, cond_resize=(100, 140))
    key = (0, 0, 1)
    assert torch.equal(small[key]["cond_vae"], small[key]["cond_vae"])
    assert not torch.equal(small[key]["cond_vae"], ds[key]["cond_vae"])
    assert batch["cond_vae"].shape == (2, 3, 512, 512) and batch["target"].shape == (2, 3, 192, 128)
    # the black-image dropout reference: all-zero pixels normalised by the VAE processor
    assert torch.allclose(module.black_vae_input, torch.full((1, 3, 512, 512), -0.625))
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    z, ref, ctx = module.encode_batch(batch, gen())
    assert z.shape == (2, 4, 24, 16) and ref.shape == (2, 4, 64, 64) and ctx.shape == (2, 77, 32)
    z_d, ref_d, ctx_d = module.encode_batch(batch, gen(), drop=True)
    assert torch.equal(z_d, z)  # same target draw
    assert torch.allclose(ctx_d[0], pipe.model.encode_prompt("")[0]) and not torch.allclose(ctx_d, ctx)
    loss = module.diffusion_loss(z, ref, ctx, gen()).mean()
    loss.backward()
    grads = [p.grad for p in pipe.model.unet.parameters()]
    assert torch.isfinite(loss) and sum(g is not None and g.abs().sum() > 0 for g in grads) > 0.9 * len(grads)


@pytest.mark.slow
def test_tiny_finetune_loss_falls_and_exports(dataset, tmp_path):
    import train
    from zero123plus import Zero123PlusPipeline

    out = tmp_path / "run"
    assert train.main(["--config", str(TINY_TRAIN),
                       *overrides(dataset, out, **{"trainer.max_steps": 40, "trainer.val_check_interval": 8,
                                                   "trainer.checkpoint_every_n_steps": 20})]) == 0
    rows = [line.split(",") for line in (out / "logs/version_0/metrics.csv").read_text().splitlines()]
    col = rows[0].index("val/loss")
    val = [float(r[col]) for r in rows[1:] if r[col]]
    assert len(val) == 5 and val[-1] < 0.8 * val[0], val
    pipe = Zero123PlusPipeline.from_pretrained(out / "final", ROOT / "configs/zero123plus/tiny.yaml")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    shadow = ckpt["state_dict"]["ema.shadow_0"]
    first = next(k for k, p in pipe.model.unet.unet.named_parameters())
    assert torch.equal(pipe.model.unet.unet.state_dict()[first], shadow)  # the export is the EMA UNet
    res = pipe.generate(Image.open(dataset / json.loads((dataset / "valid_paths.json").read_text())[0] / "cond_00.png"),
                        seeds=0, num_inference_steps=2, progress=False)
    assert res.grids.shape == (1, 192, 128, 3)


class StepLosses(pl.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


@pytest.mark.slow
def test_resumed_run_equals_the_uninterrupted_run(dataset, tmp_path):
    """6 steps in one go vs 3 steps + checkpoint + resume (a killed run) to 6: the same loss at every step.
    2 training objects in batches of 1 make 2 batches per epoch: the run crosses epochs and resumes mid-epoch."""
    from zero123plus.training.run import run_training

    common = {"data.batch_size": 1, "trainer.max_steps": 6, "trainer.checkpoint_every_n_steps": 3,
              "trainer.val_check_interval": 4, "optim.warmup_steps": 2}
    whole = StepLosses()
    run_training(TINY_TRAIN, overrides(dataset, tmp_path / "whole", **common), callbacks=[whole])
    resumed = StepLosses()
    ckpt = tmp_path / "whole" / "checkpoints" / "step0000003.ckpt"
    run_training(TINY_TRAIN, overrides(dataset, tmp_path / "resumed", **common, resume=str(ckpt)), callbacks=[resumed])
    assert sorted(whole.losses) == list(range(1, 7)) and sorted(resumed.losses) == [4, 5, 6]
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(whole.losses[step], rel=1e-6, abs=0), (step, whole.losses, resumed.losses)


def test_train_config_errors_are_named(tmp_path):
    import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: zero123plus\ninit:\n  kind: magic\ndata:\n  root: /nonexistent\n")
    assert train.main(["--config", str(cfg)]) == 2
    cfg.write_text("task: zero123plus\ninit:\n  kind: random\nmodel_config: configs/zero123plus/tiny.yaml\n"
                   f"data:\n  root: {tmp_path}\n  tile_size: 320\n")
    assert train.main(["--config", str(cfg)]) == 2
    cfg.write_text("task: zero123plus\ndata:\n  root: /nonexistent-zp\n")
    assert train.main(["--config", str(cfg)]) == 2


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(dataset, tmp_path):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(TINY_TRAIN), "--accelerator", "cpu",
           "--devices", "2", "--strategy", "ddp", *overrides(dataset, tmp_path / "ddp", **{"data.batch_size": 1})]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "summary.json").read_text())["global_step"] == 2
    assert (tmp_path / "ddp" / "final" / "model_index.json").is_file()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(dataset, tmp_path):
    """train.py killed (SIGKILL) after its step-4 checkpoint, resumed from it: the exported weights after 10 steps
    equal those of an uninterrupted run, bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    common = {"data.batch_size": 1, "trainer.max_steps": 10, "trainer.checkpoint_every_n_steps": 2,
              "trainer.val_check_interval": 5, "optim.warmup_steps": 2}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(TINY_TRAIN)]
    whole = subprocess.run(cmd + overrides(dataset, tmp_path / "whole", **common), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr[-2000:]
    proc = subprocess.Popen(cmd + overrides(dataset, tmp_path / "killed", **common), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    target = tmp_path / "killed" / "checkpoints" / "step0000006.ckpt"
    deadline = time.time() + 600
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists(), "the run finished before it could be killed"
    resumed = subprocess.run(cmd + overrides(dataset, tmp_path / "killed", **common,
                                             resume=str(tmp_path / "killed" / "checkpoints" / "step0000004.ckpt")),
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(tmp_path / "whole" / "final" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
