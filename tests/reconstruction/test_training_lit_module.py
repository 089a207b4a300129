"""LightningModule: a few tiny training steps on CPU, loss falls on a fixed batch, exact resume, checkpoint ->
inference path, validation outputs."""
import copy
import csv
import dataclasses

import pytest
import torch
from torch.utils.data import default_collate

from _training_synthetic import SphereReader
from data.config import ConfigError
from reconstruction.checkpoint import load_official_checkpoint
from reconstruction.model import ReconstructionModel
from reconstruction.reconstructor import Reconstructor
from reconstruction.training.fit import fit, fresh_model, load_training_config
from reconstruction.training.lit_module import ReconstructionLitModule, save_official_checkpoint
from reconstruction.training.samples import TrainingSampleDataset

TINY = [
    "model.volume_resolution=16", "model.voxel_size=null", "model.mesh_resolution=24", "model.device=cpu",
    "data.image_size=32", "data.gt_source_probability=1.0", "data.num_workers=0", "data.cache=true",
    "data.source_views=[0,5,10,15,16,21,26,31]",
    "render.num_uniform_rays=8", "render.num_foreground_rays=24", "render.n_samples=12", "render.n_importance=8",
    "render.up_sample_steps=2", "render.random_points=64", "render.anneal_end=4",
    "loss.sparsity_ramp_steps=4", "loss.fg_mask_start_step=0",
    "optim.lr=2e-3", "optim.end_step=20", "optim.round_end_to_epochs=false",
    "trainer.accelerator=cpu", "trainer.log_every=1", "trainer.val_mesh_resolution=24",
]


def tiny_config(tmp_path, *extra):
    return load_training_config(None, [*TINY, f"trainer.output_dir={tmp_path / 'run'}", *extra])


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_config_files_load_and_reject_unknown_keys(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    full = load_training_config(root / "configs/train/reconstruction.yaml")
    assert (full.render.num_uniform_rays, full.render.num_foreground_rays) == (128, 384)
    assert full.optim.lr == 2e-4 and full.loss.eikonal_weight == 0.1 and full.model.volume_resolution == 96
    cpu = load_training_config(root / "configs/train/reconstruction_cpu.yaml")
    assert cpu.data.image_size % 4 == 0 and len(cpu.data.source_views) == 8
    with pytest.raises(ConfigError, match="nonsense"):
        load_training_config(None, ["loss.nonsense=1"])
    with pytest.raises(ConfigError, match="divisible by 4"):
        load_training_config(None, ["data.image_size=30"])


def test_loss_falls_on_a_fixed_batch(tmp_path):
    cfg = tiny_config(tmp_path)
    torch.manual_seed(0)
    module = ReconstructionLitModule(cfg)
    ds = TrainingSampleDataset(SphereReader(1), 1.0, fixed_target=True, source_views=cfg.data.source_views)
    sample = ds[3]
    opt = torch.optim.Adam(module.model.parameters(), lr=2e-3)
    values = []
    for step in range(8):
        torch.manual_seed(123)  # same rays and random points every step: a fixed objective
        terms, _ = module.sample_loss(sample, step=10)
        opt.zero_grad()
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), 1.0)
        opt.step()
        values.append(terms.total.item())
    assert all(torch.isfinite(torch.tensor(values)))
    assert values[-1] < 0.8 * values[0], values


def test_geometry_losses_reach_the_cost_volume_networks(tmp_path):
    """Regression: the renderer's no-grad coarse pass must not leave a detached latent table behind, or the
    mask / eikonal / sparsity / depth losses never train the feature net, compress layer and sparse U-Net."""
    cfg = tiny_config(tmp_path, "loss.color_weight=0.0", "loss.fg_mask_weight=1.0", "loss.depth_weight=1.0")
    torch.manual_seed(0)
    module = ReconstructionLitModule(cfg)
    mlp = module.model.sdf_network_lod0.sdf_layer
    with torch.no_grad():  # the geometric init zeroes the latent inputs: give them weight as after some training
        for lin in (mlp.lin1, mlp.lin2):
            lin.weight_v[:, -mlp.latent_channels:].normal_(0.0, 0.05)
    sample = TrainingSampleDataset(SphereReader(1), 1.0, source_views=cfg.data.source_views)[0]
    terms, _ = module.sample_loss(sample, step=10)
    terms.total.backward()
    net = module.model.sdf_network_lod0
    for name, part in (("feature net", module.model.pyramid_feature_network), ("compress", net.compress_layer),
                       ("sparse U-Net", net.sparse_costreg_net)):
        grad = sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None)
        assert grad > 0, f"no gradient reaches the {name} from the geometry losses"


@pytest.mark.slow
def test_fit_resume_exact_state_and_checkpoint_to_inference(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.val_every=3")
    captured = {}

    class Capture(__import__("pytorch_lightning").Callback):
        def __init__(self, key):
            self.key = key

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2 and self.key not in captured:
                opt = copy.deepcopy(trainer.optimizers[0].state_dict())  # Adam updates its tensors in place
                sched = copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict())
                captured[self.key] = (opt, sched, trainer.optimizers[0].param_groups[0]["lr"])

    reader = SphereReader(2)
    module, trainer = fit(cfg, readers=(reader, SphereReader(1)), callbacks=[Capture("first")])
    out = tmp_path / "run"
    assert trainer.global_step == 4
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and "step0000002.ckpt" in ckpts
    rows = list(csv.DictReader(open(out / "csv/version_0/metrics.csv")))
    losses = [float(r["train/total"]) for r in rows if r.get("train/total")]
    assert len(losses) == 4 and all(v == v and v < 10 for v in losses)
    assert list((out / "val").glob("step_*/object0_gt_rgb_depth_normal.png"))

    resumed = dataclasses.replace(cfg, trainer=dataclasses.replace(
        cfg.trainer, resume=str(out / "checkpoints/step0000002.ckpt"), output_dir=str(tmp_path / "resumed")))
    fit(resumed, readers=(reader, None), callbacks=[Capture("resumed")])
    (opt_a, sched_a, lr_a), (opt_b, sched_b, lr_b) = captured["first"], captured["resumed"]
    assert sched_a == sched_b and lr_a == lr_b and sched_b["last_epoch"] == 2
    for pid, state in opt_a["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(state[name], opt_b["state"][pid][name]), (pid, name)

    # our Lightning checkpoint and the official-format export both load into the inference path
    model = load_official_checkpoint(out / "checkpoints/last.ckpt")
    for a, b in zip(model.state_dict().values(), module.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    official = save_official_checkpoint(module.model, tmp_path / "ckpt_000004.pth", 4)
    assert isinstance(load_official_checkpoint(official), ReconstructionModel)
    obj = reader.load(0)
    rec = Reconstructor(model, cfg.model, "cpu")
    result = rec.reconstruct(obj.sources.select(cfg.data.source_views), obj.targets.cameras[0])
    assert result.mesh.num_faces > 0 and result.mesh.vertex_colors is not None


def test_training_step_batches_objects_and_logs(tmp_path):
    cfg = tiny_config(tmp_path)
    module = ReconstructionLitModule(cfg)
    ds = TrainingSampleDataset(SphereReader(2), 1.0, source_views=cfg.data.source_views)
    batch = default_collate([ds[0], ds[9]])
    module.log_dict = lambda *a, **k: None
    module.log = lambda *a, **k: None
    module.optimizers = lambda: torch.optim.Adam(module.model.parameters())
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in module.model.parameters() if p.grad is not None]
    assert len(grads) > 20 and all(torch.isfinite(g).all() for g in grads)


def test_training_can_start_from_an_official_checkpoint(tmp_path):
    from reconstruction.training.fit import build_model

    torch.manual_seed(3)
    source = ReconstructionModel()
    path = save_official_checkpoint(source, tmp_path / "ckpt_215000.pth", 215000)
    model = build_model(tiny_config(tmp_path, f"trainer.init_official={path}"))
    for (name, a), b in zip(model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="ckpt_215000"):
        build_model(tiny_config(tmp_path, f"trainer.init_official={tmp_path / 'absent.pth'}"))


def test_optimizer_groups_and_cosine_schedule(tmp_path):
    cfg = tiny_config(tmp_path, "optim.variance_lr_scale=10", "optim.sdf_mlp_lr_scale=0.2", "optim.lr=1e-3",
                      "optim.end_step=10")
    module = ReconstructionLitModule(cfg)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-2, 2e-4])
    assert opt.param_groups[1]["params"] == [module.model.variance_network_lod0.variance]
    assert opt.param_groups[2]["params"] == list(module.model.sdf_network_lod0.sdf_layer.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(module.model.parameters()))
    for _ in range(10):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-3, 2e-5])  # cosine down to 10 %


def test_init_options_set_variance_and_latent_weights(tmp_path):
    torch.manual_seed(0)
    official = fresh_model(tiny_config(tmp_path))
    mlp = official.sdf_network_lod0.sdf_layer
    assert float(official.variance_network_lod0.variance) == pytest.approx(0.2)
    assert all(float(lin.weight[:, -16:].abs().max()) == 0 for lin in (mlp.lin1, mlp.lin2))
    torch.manual_seed(0)
    custom = fresh_model(tiny_config(tmp_path, "init.variance=0.3", "init.latent_weight_std=0.01"))
    mlp = custom.sdf_network_lod0.sdf_layer
    assert float(custom.variance_network_lod0(1)[0, 0]) == pytest.approx(float(torch.exp(torch.tensor(3.0))))
    for lin in (mlp.lin1, mlp.lin2):
        std = float(lin.weight[:, -16:].std())
        assert 0.005 < std < 0.02, std
        # the rest of the geometric init (the sphere) is untouched
        torch.testing.assert_close(lin.weight[:, :-16], getattr(official.sdf_network_lod0.sdf_layer,
                                                                 "lin1" if lin is mlp.lin1 else "lin2").weight[:, :-16])


class StepLosses(__import__("pytorch_lightning").Callback):
    """Training loss of every optimizer step, keyed by the global step it completed (1-based)."""

    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def test_resumed_run_equals_the_uninterrupted_run_at_every_step(tmp_path):
    """10 steps in one go vs 5 + checkpoint + resume to 10: the same loss at every step. One sphere = 8 samples
    per epoch, so the resume is mid-epoch and the run crosses an epoch; ground-truth vs predicted sources, target
    views, rays, sample jitter and random points are all drawn; validation runs in between and the resumed half
    loads data with two workers."""
    cfg = tiny_config(tmp_path, "trainer.max_steps=10", "trainer.ckpt_every=5", "trainer.val_every=3",
                      "data.gt_source_probability=0.5", "data.cache=false", "trainer.val_mesh_resolution=8",
                      "trainer.val_render_size=8")
    reader = SphereReader(1)
    whole = StepLosses()
    fit(cfg, readers=(reader, SphereReader(1)), callbacks=[whole])
    resumed_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_workers=2),
                                      trainer=dataclasses.replace(
        cfg.trainer, resume=str(tmp_path / "run" / "checkpoints" / "step0000005.ckpt"),
        output_dir=str(tmp_path / "resumed")))
    resumed = StepLosses()
    fit(resumed_cfg, readers=(reader, SphereReader(1)), callbacks=[resumed])
    assert sorted(whole.losses) == list(range(1, 11)) and sorted(resumed.losses) == list(range(6, 11))
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(whole.losses[step], rel=1e-6, abs=0), (step, whole.losses, resumed.losses)
