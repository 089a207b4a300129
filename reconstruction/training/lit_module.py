"""LightningModule training the reconstruction networks with the official recipe (spec sections 10-11).

The pure networks (:class:`reconstruction.model.ReconstructionModel`) are injected/owned here; this wrapper
adds ray sampling, NeuS rendering, the losses and their schedules, the optimizer and the per-iteration cosine
schedule, validation renders and meshes, and the official checkpoint export.

Normalisation layers always use batch statistics (the official code never calls ``.eval()``), in training and
in validation alike.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from data.cameras import Cameras
from data.datasets.seeded import draw_generator
from data.io import atomic_path
from data.mesh import Mesh
from data.reconstruction_frame import ReconstructionFrame
from reconstruction.meshing import marching_cubes
from reconstruction.model import CHECKPOINT_KEYS, ReconstructionModel
from reconstruction.reconstructor import Reconstructor, SceneInputs
from reconstruction.training import losses, schedule
from reconstruction.training.config import TrainReconstructionConfig
from reconstruction.training.rays import gather_pixels, pixel_rays_unit, sample_pixels
from reconstruction.training.render import RenderSettings, render_rays


def official_state(model: ReconstructionModel) -> dict[str, dict[str, torch.Tensor]]:
    """The four network state dicts under the official checkpoint's top-level keys (CPU tensors)."""
    return {k: {n: t.detach().cpu() for n, t in getattr(model, k).state_dict().items()} for k in CHECKPOINT_KEYS}


def save_official_checkpoint(model: ReconstructionModel, path: str | Path, step: int,
                             optimizer_state: dict | None = None) -> Path:
    """Write an official-format ``ckpt_XXXXXX.pth`` (spec section 12), loadable by ``load_official_checkpoint``."""
    ckpt = {**official_state(model), "iter_step": int(step), "val_step": 0}
    if optimizer_state is not None:
        ckpt["optimizer"] = optimizer_state
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


class ReconstructionLitModule(pl.LightningModule):
    """Trains :class:`ReconstructionModel` on batches of :func:`reconstruction.training.samples.build_sample`.

    Args:
        config: the full training config.
        steps_per_epoch: optimizer steps per epoch (for the official rounding of the cosine length); None keeps
            ``config.optim.end_step``.
        model: networks to train (default: freshly initialised, seeded by the global seed).
    """

    def __init__(self, config: TrainReconstructionConfig, steps_per_epoch: int | None = None,
                 model: ReconstructionModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = model if model is not None else ReconstructionModel()
        optim = config.optim
        self.total_steps = optim.end_step
        if optim.round_end_to_epochs and steps_per_epoch:
            self.total_steps = schedule.rounded_end_step(optim.end_step, steps_per_epoch)
        self.save_hyperparameters({"config": dataclasses.asdict(config), "total_steps": self.total_steps})

    # ------------------------------------------------------------------ batch-statistics mode everywhere
    def on_validation_model_eval(self) -> None:
        self.model.use_batch_statistics()

    def on_test_model_eval(self) -> None:
        self.model.use_batch_statistics()

    # ------------------------------------------------------------------ helpers
    @property
    def cfg(self) -> TrainReconstructionConfig:
        return self.config

    def render_settings(self, step: int, training: bool) -> RenderSettings:
        r = self.cfg.render
        return RenderSettings(
            n_samples=r.n_samples, n_importance=r.n_importance, up_sample_steps=r.up_sample_steps,
            perturb=r.perturb if training else 0.0, anneal_ratio=schedule.anneal_ratio(step, r.anneal_end),
        )

    def encode(self, sample: dict[str, torch.Tensor]):
        """Feature pyramid on target + sources (batch statistics over all of them), cost volume from sources."""
        m, mc = self.model, self.cfg.model
        images = torch.cat([sample["target_image"][None], sample["source_images"]])
        fused = m.pyramid_feature_network.fused(images)
        volume = m.sdf_network_lod0.build_volume(
            fused[1:], sample["source_affine"], mc.volume_resolution, mc.resolved_voxel_size(),
            mc.min_visible_views, mc.voxel_chunk)
        return fused[1:], volume

    def target_camera(self, sample: dict[str, torch.Tensor]) -> Cameras:
        h, w = sample["target_image"].shape[-2:]
        return Cameras(sample["target_c2w"][None], sample["target_intrinsics"][None], w, h)

    def sample_loss(self, sample: dict[str, torch.Tensor], step: int, generator: torch.Generator | None = None
                    ) -> tuple[losses.LossTerms, dict]:
        """Loss terms of one object (unbatched sample) at optimisation step ``step``.

        ``generator`` (CPU) draws the rays, the sample jitter and the random sparsity points (None: global RNG).
        """
        cfg = self.cfg
        fused, volume = self.encode(sample)
        pixels = sample_pixels(sample["target_mask"][0], cfg.render.num_uniform_rays, cfg.render.num_foreground_rays,
                               generator=generator)
        camera = self.target_camera(sample)
        origins, dirs = pixel_rays_unit(camera, pixels)
        near, far = sample["target_near_far"]
        out = render_rays(
            self.model, volume, fused, sample["source_images"], sample["source_w2c"], sample["source_intrinsics"],
            origins, dirs, float(near), float(far), self.render_settings(step, training=True), training=True,
            generator=generator)
        gt_rgb = gather_pixels(sample["target_image"], pixels)
        gt_mask = gather_pixels(sample["target_mask"], pixels)[:, 0]
        # z-depth -> distance along the unit ray: divide by the cosine to the optical axis
        cos = (dirs * sample["target_c2w"][:3, 2]).sum(-1)
        gt_depth = gather_pixels(sample["target_depth"], pixels)[:, 0] / cos.clamp_min(1e-6)
        lc = cfg.loss
        rand = torch.rand(cfg.render.random_points, 3, generator=generator).to(origins.device) * 2 - 1
        sdf_random = self.model.sdf_network_lod0.sdf(rand, volume)[0]
        terms = losses.total_loss(
            losses.color_l1(out.color, gt_rgb, out.ray_valid),
            losses.eikonal(out.gradients, out.inside),
            losses.sparsity(sdf_random, out.sdf, out.inside, lc.sparsity_scale),
            losses.foreground_mask(out.weight_sum, gt_mask, lc.fg_mask_min_background_fraction),
            losses.depth_l1(out.depth, gt_depth, (gt_mask > 0.5) & (gt_depth > 0)),
            color_weight=lc.color_weight,
            eikonal_weight=lc.eikonal_weight,
            sparsity_weight=schedule.sparsity_weight(step, lc.sparsity_weight, lc.sparsity_ramp_steps),
            foreground_weight=schedule.foreground_mask_weight(step, lc.fg_mask_weight, lc.fg_mask_start_step),
            depth_weight=lc.depth_weight,
        )
        return terms, {"inv_s": float(self.model.variance_network_lod0(1)[0, 0].detach())}

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        step = int(self.global_step)
        n = batch["target_image"].shape[0]
        # every draw of this step is a function of (seed, step, object of the batch, rank): exact resume
        seed = self.cfg.trainer.seed
        per_object = [self.sample_loss({k: v[i] for k, v in batch.items()}, step,
                                       draw_generator(seed, step, i, self.global_rank)) for i in range(n)]
        keys = per_object[0][0].as_dict().keys()
        mean = {k: torch.stack([t.as_dict()[k] for t, _ in per_object]).mean() for k in keys}
        logs = {f"train/{k}": v.detach() for k, v in mean.items()}
        logs["train/inv_s"] = per_object[0][1]["inv_s"]
        logs["train/lr"] = self.optimizers().param_groups[0]["lr"] if self._trainer is not None else 0.0
        self.log_dict(logs, on_step=True, prog_bar=False, batch_size=n)
        self.log("loss", mean["total"].detach(), prog_bar=True, batch_size=n)
        return mean["total"]

    def configure_optimizers(self):
        o = self.cfg.optim
        variance = list(self.model.variance_network_lod0.parameters())
        sdf_mlp = list(self.model.sdf_network_lod0.sdf_layer.parameters())
        ids = {id(p) for p in variance + sdf_mlp}
        others = [p for p in self.model.parameters() if id(p) not in ids]
        groups = [{"params": others, "lr": o.lr}, {"params": variance, "lr": o.lr * o.variance_lr_scale},
                  {"params": sdf_mlp, "lr": o.lr * o.sdf_mlp_lr_scale}]
        opt = torch.optim.Adam(groups, lr=o.lr)
        total, floor = self.total_steps, self.cfg.optim.lr_floor
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule.cosine_lr_factor(s, total, floor))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The official top-level keys ride along, so a Lightning checkpoint also loads via load_official_checkpoint.
        checkpoint.update(official_state(self.model))
        checkpoint["iter_step"] = int(self.global_step)

    # ------------------------------------------------------------------ validation: renders + mesh
    @torch.no_grad()
    def render_image(self, sample: dict[str, torch.Tensor], size: int | None = None) -> dict[str, torch.Tensor]:
        """Full target-view render: rgb (3, S, S), depth (1, S, S) normalised units, normals (3, S, S) in [0, 1]."""
        fused, volume = self.encode(sample)
        camera = self.target_camera(sample)
        h, w = sample["target_image"].shape[-2:]
        size = size or w
        factor = size / w
        k = camera.intrinsics.clone()
        k[:, :2] *= factor
        camera = Cameras(camera.c2w, k, size, size)
        v, u = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        pixels = torch.stack([u, v], -1).reshape(-1, 2).to(sample["target_image"].device)
        near, far = sample["target_near_far"]
        settings = self.render_settings(int(self.global_step), training=False)
        parts = {"color": [], "depth": [], "normal": []}
        for px in pixels.split(self.cfg.render.ray_chunk):
            o, d = pixel_rays_unit(camera, px)
            out = render_rays(self.model, volume, fused, sample["source_images"], sample["source_w2c"],
                              sample["source_intrinsics"], o, d, float(near), float(far), settings, training=False)
            parts["color"].append(out.color)
            parts["depth"].append(out.depth.reshape(-1, 1))
            parts["normal"].append(out.normal)
        img = {k: torch.cat(v).reshape(size, size, -1).permute(2, 0, 1) for k, v in parts.items()}
        img["normal"] = (img["normal"] * 0.5 + 0.5).clamp(0, 1)
        return img

    def extract_mesh(self, sample: dict[str, torch.Tensor], resolution: int) -> Mesh | None:
        """Marching cubes of the SDF through the inference path, in the world frame (None without a surface)."""
        mc = dataclasses.replace(self.cfg.model, mesh_resolution=resolution, device=str(self.device))
        rec = Reconstructor(self.model, mc, self.device)
        frame = ReconstructionFrame(sample["ref_c2w"].double().cpu(), sample["scale_mat"].double().cpu())
        inputs = SceneInputs(sample["source_images"], sample["source_w2c"], sample["source_intrinsics"],
                             sample["source_affine"], frame)
        encoding = rec.encode(inputs)
        verts, faces = marching_cubes(rec.sdf_volume(encoding, resolution))
        self.model.use_batch_statistics()
        if len(faces) == 0:
            return None
        verts_norm = torch.from_numpy(verts).float()
        colours = rec.colours(encoding, verts_norm.to(self.device)).clamp(0, 1).cpu()
        return Mesh(frame.points_to_world(verts_norm.double()).float(), torch.from_numpy(faces), colours)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if batch_idx >= self.cfg.data.val_objects:
            return
        sample = {k: v[0] for k, v in batch.items()}
        out_dir = Path(self.cfg.trainer.output_dir) / "val" / f"step_{int(self.global_step):07d}"
        img = self.render_image(sample, self.cfg.trainer.val_render_size or None)
        gt = torch.nn.functional.interpolate(sample["target_image"][None], size=img["color"].shape[-2:],
                                             mode="area")[0]
        depth = img["depth"] / img["depth"].max().clamp_min(1e-6)
        row = torch.cat([gt, img["color"], depth.expand(3, -1, -1), img["normal"]], -1).clamp(0, 1)
        mse = torch.mean((img["color"] - gt) ** 2)
        self.log("val/psnr", -10 * torch.log10(mse.clamp_min(1e-10)), batch_size=1, sync_dist=True)
        if self.global_rank != 0:
            return
        from PIL import Image

        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / f"object{batch_idx}_gt_rgb_depth_normal.png") as tmp:
            Image.fromarray((row.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)).save(tmp)
        mesh = self.extract_mesh(sample, self.cfg.trainer.val_mesh_resolution)
        if mesh is not None:
            mesh.export(out_dir / f"object{batch_idx}_mesh.ply")
