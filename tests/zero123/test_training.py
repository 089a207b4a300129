"""Zero123 fine-tuning: official recipe pieces, a tiny Lightning run, exact resume, train.py dispatch, DDP."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from data.datasets.zero123_layout import Zero123LayoutConfig, blender_w2c, sample_zero123_views
from zero123.config import load_zero123_config
from zero123.model import Zero123Model
from zero123.training.config import Zero123TrainConfig
from zero123.training.ema import ModuleEMA
from zero123.training.init import widen_conv_in
from zero123.training.lit_module import Zero123LitModule, dropout_masks

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = ROOT / "configs/train/zero123_tiny.yaml"


def write_synthetic_dataset(root: Path, objects: int = 3, views: int = 4, size: int = 64) -> list[str]:
    """Zero123-layout folders with real camera files and simple images (a disc that moves with the camera)."""
    rng = np.random.default_rng(0)
    ids = []
    for o in range(objects):
        folder = root / f"obj{o}"
        folder.mkdir(parents=True)
        cams, _ = sample_zero123_views(Zero123LayoutConfig(num_views=views, image_size=size), rng)
        w2c = blender_w2c(cams)
        for v in range(views):
            img = np.zeros((size, size, 4), np.uint8)
            cx, cy = (w2c[v, :2, 2] * size / 4 + size / 2).astype(int)
            yy, xx = np.mgrid[:size, :size]
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (size // 5) ** 2
            img[disc] = ((60 * o + 40) % 256, (200 - 50 * o) % 256, 120, 255)
            Image.fromarray(img).save(folder / f"{v:03d}.png")
            np.save(folder / f"{v:03d}.npy", w2c[v])
        meta = {"num_views": views, "intrinsics": cams.intrinsics[0].tolist()}
        (folder / "meta.json").write_text(json.dumps(meta))
        ids.append(folder.name)
    (root / "list.txt").write_text("\n".join(ids))
    return ids


def tiny_overrides(data_root: Path, out: Path, **extra) -> list[str]:
    items = {
        "data.root": str(data_root), "data.train_list": str(data_root / "list.txt"),
        "data.val_list": str(data_root / "list.txt"), "data.batch_size": 3, "data.image_size": 64,
        "output_dir": str(out), "trainer.max_steps": 2, "trainer.val_check_interval": 2,
        "trainer.checkpoint_every_n_steps": 1, "trainer.log_every_n_steps": 1, "val_repeats": 2,
    }
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


# ----------------------------------------------------------------------------------------- recipe pieces
def test_cfg_dropout_is_the_official_5_5_5_split():
    u = (torch.arange(10000) + 0.5) / 10000
    drop_clip, drop_concat = dropout_masks(u, 0.05)
    assert drop_clip.float().mean() == pytest.approx(0.10)
    assert drop_concat.float().mean() == pytest.approx(0.10)
    assert (drop_clip & drop_concat).float().mean() == pytest.approx(0.05)  # both dropped: 5 %
    assert (drop_clip | drop_concat).float().mean() == pytest.approx(0.15)


def test_widened_conv_in_keeps_old_channels_and_zeros_new():
    w = torch.randn(5, 4, 3, 3)
    out = widen_conv_in({"conv_in.weight": w, "conv_in.bias": torch.ones(5)}, 8)["conv_in.weight"]
    assert out.shape == (5, 8, 3, 3) and torch.equal(out[:, :4], w) and not out[:, 4:].any()


def test_pose_projection_initialisation_and_learning_rates():
    cfg = load_zero123_config(ROOT / "configs/zero123/tiny.yaml")
    model = Zero123Model(cfg.model)
    w, e = model.cc_projection.weight, cfg.model.image_encoder.projection_dim
    assert torch.equal(w[:, :e], torch.eye(e)) and not model.cc_projection.bias.any() and w[:, e:].abs().sum() > 0
    module = Zero123LitModule(model, Zero123TrainConfig())
    opt = module.configure_optimizers()
    groups = opt["optimizer"].param_groups
    assert [g["initial_lr"] for g in groups] == [1e-4, 1e-3] and all(g["weight_decay"] == 0.01 for g in groups)
    assert groups[0]["lr"] == pytest.approx(1e-10)  # warm-up starts at 1e-6 x lr


def test_ema_follows_litema_formula():
    layer = torch.nn.Linear(2, 2)
    ema = ModuleEMA(layer, decay=0.9999)
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    ema.update(layer)
    d = min(0.9999, 2 / 11)
    torch.testing.assert_close(ema.shadows()[0], d * start + (1 - d) * layer.weight.detach())
    assert int(ema.num_updates) == 1


# ----------------------------------------------------------------------------------------- runs
class CaptureStart(pl.Callback):
    def on_train_start(self, trainer, module):
        self.step = trainer.global_step
        self.ema = [s.clone() for s in module.ema.shadows()]
        self.ema_updates = int(module.ema.num_updates)
        self.optimizer = {k: v.clone() for k, v in trainer.optimizers[0].state_dict()["state"][0].items()}


def test_tiny_run_checkpoints_and_resumes_exactly(tmp_path):
    from zero123 import Zero123Pipeline
    from zero123.training.run import run_training

    write_synthetic_dataset(tmp_path / "data")
    summary = run_training(TINY_TRAIN, tiny_overrides(tmp_path / "data", tmp_path / "a",
                                                      **{"trainer.gradient_checkpointing": "true"}))
    assert summary["global_step"] == 2
    assert {"train/loss", "val/loss_true_pose", "val/loss_shuffled_pose"} <= set(summary["metrics"])
    ckpts = sorted((tmp_path / "a" / "checkpoints").glob("step*.ckpt"))
    assert [c.name for c in ckpts] == ["step0000001.ckpt", "step0000002.ckpt"]
    saved = torch.load(ckpts[0], map_location="cpu", weights_only=False)

    capture = CaptureStart()
    run_training(TINY_TRAIN, tiny_overrides(tmp_path / "data", tmp_path / "b", **{"resume": str(ckpts[0])}),
                 callbacks=[capture])
    assert capture.step == 1 and capture.ema_updates == 1
    for i, shadow in enumerate(capture.ema):
        assert torch.equal(shadow, saved["state_dict"][f"ema.shadow_{i}"])
    for k, v in capture.optimizer.items():
        assert torch.equal(v, saved["optimizer_states"][0]["state"][0][k]), k
    # the exported model (EMA UNet) is a normal pipeline folder
    pipe = Zero123Pipeline.from_pretrained(tmp_path / "b" / "final")
    tiny = load_zero123_config(ROOT / "configs/zero123/tiny.yaml").model
    assert pipe.cfg.model.scale_factor != tiny.scale_factor  # init.scale_by_std of the tiny config, exported
    pipe.cfg.model.scale_factor = tiny.scale_factor
    assert pipe.cfg.model == tiny


def test_train_py_rejects_unknown_task(tmp_path):
    import train

    bad = tmp_path / "bad.yaml"
    bad.write_text("task: nothing\n")
    assert train.main(["--config", str(bad)]) == 2
    assert train.main(["--config", str(tmp_path / "absent.yaml")]) == 2


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(tmp_path):
    write_synthetic_dataset(tmp_path / "data", objects=4)
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(TINY_TRAIN), "--accelerator", "cpu",
           "--devices", "2", "--strategy", "ddp",
           *tiny_overrides(tmp_path / "data", tmp_path / "ddp", **{"data.batch_size": 2})]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["global_step"] == 2


def test_view_holdout_keeps_target_views_out_of_training(tmp_path):
    from data.datasets.datamodule import RenderedDataConfig
    from zero123.training.data import Zero123DataModule

    write_synthetic_dataset(tmp_path, objects=2, views=6)
    cfg = RenderedDataConfig(root=str(tmp_path), train_list=str(tmp_path / "list.txt"),
                             val_list=str(tmp_path / "list.txt"), image_size=32)
    dm = Zero123DataModule(cfg, holdout_views=[4, 5])
    dm.setup()
    train = [dm.train[i % 2] for i in range(40)]
    assert all(it["cond_index"] < 4 and it["target_index"] < 4 and it["cond_index"] != it["target_index"]
               for it in train)
    val = [dm.val[i] for i in range(2)]
    assert all(it["cond_index"] < 4 and it["target_index"] in (4, 5) for it in val)
    assert [it["target_index"] for it in val] == [dm.val[i]["target_index"] for i in range(2)]  # fixed pairs


def _tiny_module_and_batch(tmp_path):
    """A random tiny Zero123 LitModule and a 2-pair batch of a synthetic dataset."""
    from data.datasets.rendered import Zero123PairsDataset, collate

    write_synthetic_dataset(tmp_path, objects=2, views=4)
    batch = collate([Zero123PairsDataset(tmp_path, image_size=64, seed=0)[i] for i in range(2)])
    torch.manual_seed(0)
    model = Zero123Model(load_zero123_config(ROOT / "configs/zero123/tiny.yaml").model)
    return model, Zero123LitModule(model, Zero123TrainConfig()), batch


def test_pose_reaches_the_loss_and_its_gradient(tmp_path):
    from zero123.training.lit_module import batch_pose_code

    model, module, batch = _tiny_module_and_batch(tmp_path)
    code = batch_pose_code(batch)
    z, concat, embeds = module.encode_batch(batch, torch.Generator().manual_seed(0))
    loss = module.diffusion_loss(z, concat, embeds, code, torch.Generator().manual_seed(1))
    other = module.diffusion_loss(z, concat, embeds, code + 1.0, torch.Generator().manual_seed(1))
    assert loss.item() != other.item()
    loss.backward()
    assert model.cc_projection.weight.grad[:, -4:].abs().sum() > 0
    assert model.image_encoder.vision_model.post_layernorm.weight.grad is None  # CLIP frozen


def test_init_from_an_sd_unet_widens_conv_in(tmp_path):
    from diffusers import UNet2DConditionModel

    from zero123.training.config import InitConfig
    from zero123.training.init import initial_model

    cfg = load_zero123_config(ROOT / "configs/zero123/tiny.yaml")
    sd_unet = UNet2DConditionModel(**{**cfg.model.unet.to_diffusers(), "in_channels": 4})
    sd_unet.save_pretrained(tmp_path / "sd" / "unet")
    _, model = initial_model(InitConfig(kind="sd_unet", path=str(tmp_path / "sd")), str(ROOT / "configs/zero123/tiny.yaml"))
    w = model.unet.conv_in.weight.detach()
    assert torch.equal(w[:, :4], sd_unet.conv_in.weight.detach()) and not w[:, 4:].any()
    assert torch.equal(model.unet.conv_out.weight, sd_unet.conv_out.weight)


def test_concat_latent_reaches_the_loss_and_conv_in_gradient(tmp_path):
    """The input view's latent is live in training: it changes the loss and trains conv_in channels 4..7."""
    from zero123.training.lit_module import batch_pose_code

    model, module, batch = _tiny_module_and_batch(tmp_path)
    z, concat, embeds = module.encode_batch(batch, torch.Generator().manual_seed(0))
    cond = batch["cond_image"] * 2 - 1
    torch.testing.assert_close(concat, model.vae.encode(cond).latent_dist.mode())
    assert not torch.allclose(concat, model.vae.encode(batch["target_image"] * 2 - 1).latent_dist.mode())
    code = batch_pose_code(batch)
    loss = module.diffusion_loss(z, concat, embeds, code, torch.Generator().manual_seed(1))
    zeroed = module.diffusion_loss(z, torch.zeros_like(concat), embeds, code, torch.Generator().manual_seed(1))
    assert loss.item() != zeroed.item()
    loss.backward()
    assert model.unet.conv_in.weight.grad[:, 4:].abs().sum() > 0
    opt = module.configure_optimizers()["optimizer"]
    assert any(p is model.unet.conv_in.weight for g in opt.param_groups for p in g["params"])


def test_sharp_random_vae_and_scale_by_std_make_targets_image_dependent(tmp_path):
    """A fresh random VAE's posterior is ~N(mean, 1): its target latents are mostly noise. The init options fix it."""
    from zero123.training.config import InitConfig
    from zero123.training.init import initial_model, scale_latents_by_std

    write_synthetic_dataset(tmp_path, objects=3, views=2)
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255).permute(2, 0, 1)
                          for p in sorted(tmp_path.glob("obj*/00*.png"))])
    tiny = str(ROOT / "configs/zero123/tiny.yaml")
    torch.manual_seed(0)
    _, plain = initial_model(InitConfig(), tiny)
    torch.manual_seed(0)
    _, sharp = initial_model(InitConfig(sharp_random_vae=True), tiny)
    x = images * 2 - 1
    with torch.no_grad():
        d_plain, d_sharp = plain.vae.encode(x).latent_dist, sharp.vae.encode(x).latent_dist
    assert d_plain.std.mean() > 0.5  # the reason conditioning cannot help with the plain random VAE
    assert d_sharp.std.max() < 1e-5
    torch.testing.assert_close(d_sharp.mean, d_plain.mean)  # posterior mean untouched
    scale = scale_latents_by_std(sharp, images)
    assert sharp.cfg.scale_factor == scale and (d_sharp.mean * scale).std().item() == pytest.approx(1.0, rel=1e-4)
    from zero123.checkpoints.errors import CheckpointError

    with pytest.raises(CheckpointError, match="random"):
        initial_model(InitConfig(kind="sd_unet", path=str(tmp_path), sharp_random_vae=True), tiny)


class StepLosses(pl.Callback):
    """Training loss of every optimizer step, keyed by the global step it completed (1-based)."""

    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def test_resumed_run_equals_the_uninterrupted_run_at_every_step(tmp_path):
    """8 steps in one go vs 4 steps + checkpoint + resume to 8: the same loss at every step. 5 objects in batches
    of 2 make 3 batches per epoch, so the run crosses epochs and resumes mid-epoch; validation runs in between
    and the resumed half loads data with two workers (the draws depend on neither)."""
    from zero123.training.run import run_training

    write_synthetic_dataset(tmp_path / "data", objects=5)
    common = {"data.batch_size": 2, "trainer.max_steps": 8, "trainer.checkpoint_every_n_steps": 4,
              "trainer.val_check_interval": 3, "optim.warmup_steps": 2}
    whole = StepLosses()
    run_training(TINY_TRAIN, tiny_overrides(tmp_path / "data", tmp_path / "whole", **common), callbacks=[whole])
    ckpt = tmp_path / "whole" / "checkpoints" / "step0000004.ckpt"
    resumed = StepLosses()
    run_training(TINY_TRAIN, tiny_overrides(tmp_path / "data", tmp_path / "resumed", **common,
                                            **{"resume": str(ckpt), "data.num_workers": 2}), callbacks=[resumed])
    assert sorted(whole.losses) == list(range(1, 9)) and sorted(resumed.losses) == list(range(5, 9))
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(whole.losses[step], rel=1e-6, abs=0), (step, whole.losses, resumed.losses)
