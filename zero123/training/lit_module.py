"""``Zero123LitModule``: the official Zero123 training step around the pure :class:`Zero123Model`.

Per sample: target latent = ``scale * VAE posterior sample``; concat = posterior mode (unscaled) of the
conditioning image; context = ``cc_projection([CLIP embedding | pose code])``; CFG dropout with one uniform
draw u: u < p drops the CLIP embedding, p <= u < 2p drops both, 2p <= u < 3p drops the concat latent (the pose
is never dropped, dropping happens before the projection); loss = MSE(eps_pred, eps) at t ~ U{0..T-1}.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from data.datasets.seeded import draw_generator
from data.layout import RelativePose
from zero123.model import Zero123Model
from zero123.pose import pose_vector
from zero123.training.config import Zero123TrainConfig
from zero123.training.ema import ModuleEMA


def batch_pose_code(batch: dict) -> torch.Tensor:
    """(B, 4) pose code from a pairs-dataset batch (degrees / world units)."""
    pose = RelativePose(batch["delta_polar_deg"].cpu(), batch["delta_azimuth_deg"].cpu(), batch["delta_radius"].cpu())
    return pose_vector(pose)


def dropout_masks(u: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(drop_clip, drop_concat) boolean masks from one uniform draw per sample (official 3-way split)."""
    drop_clip = u < 2 * p
    drop_concat = (u >= p) & (u < 3 * p)
    return drop_clip, drop_concat


class Zero123LitModule(pl.LightningModule):
    """Trains ``model.unet`` and ``model.cc_projection``; VAE and CLIP stay frozen (eval mode)."""

    def __init__(self, model: Zero123Model, cfg: Zero123TrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        model.vae.requires_grad_(False).eval()
        model.image_encoder.requires_grad_(False).eval()
        if cfg.trainer.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        self.ema = ModuleEMA(model.unet, cfg.ema_decay) if cfg.use_ema else None

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.vae.eval()
        self.model.image_encoder.eval()
        return self

    # ------------------------------------------------------------------ shared maths
    def _generator(self, batch_idx: int) -> torch.Generator:
        """Randomness of one training batch: a function of (seed, global step, micro-batch of the step, rank), so a
        resumed run draws what the uninterrupted one did."""
        micro = batch_idx % max(1, self.cfg.trainer.accumulate_grad_batches)
        return draw_generator(self.cfg.seed, self.global_step, micro, self.global_rank)

    @torch.no_grad()
    def encode_batch(self, batch: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target latents, concat latents, CLIP embeddings) of a batch (frozen encoders)."""
        cond = batch["cond_image"].float() * 2.0 - 1.0
        target = batch["target_image"].float() * 2.0 - 1.0
        dist = self.model.vae.encode(target.to(self.model.vae.dtype)).latent_dist
        noise = torch.randn(dist.mean.shape, generator=gen).to(dist.mean)
        z = (dist.mean + dist.std * noise) * self.model.cfg.scale_factor
        return z.float(), self.model.concat_latents(cond).float(), self.model.embed_images(cond).float()

    def diffusion_loss(
        self, z: torch.Tensor, concat: torch.Tensor, embeds: torch.Tensor, code: torch.Tensor,
        gen: torch.Generator, reduce: bool = True,
    ) -> torch.Tensor:
        b = z.shape[0]
        t = torch.randint(0, self.model.cfg.num_train_timesteps, (b,), generator=gen).to(z.device)
        eps = torch.randn(z.shape, generator=gen).to(z)
        acp = self.model.alphas_cumprod.to(z.device)[t].view(b, 1, 1, 1)
        noisy = acp.sqrt() * z + (1.0 - acp).sqrt() * eps
        context = self.model.project_context(embeds, code.to(z.device))
        pred = self.model.predict_noise(noisy, t, context, concat).float()
        loss = F.mse_loss(pred, eps, reduction="none").mean(dim=(1, 2, 3))
        return loss.mean() if reduce else loss

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        gen = self._generator(batch_idx)
        z, concat, embeds = self.encode_batch(batch, gen)
        drop_clip, drop_concat = dropout_masks(torch.rand(z.shape[0], generator=gen), self.cfg.cond_dropout)
        embeds = torch.where(drop_clip.to(z.device)[:, None], torch.zeros_like(embeds), embeds)
        concat = torch.where(drop_concat.to(z.device)[:, None, None, None], torch.zeros_like(concat), concat)
        loss = self.diffusion_loss(z, concat, embeds, batch_pose_code(batch), gen)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=z.shape[0])
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """Optimizer step, then the EMA update (before any checkpoint callback of the same step runs)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.model.unet)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Held-out pairs, fixed noise: loss with the true poses vs the same pairs with shuffled poses.

        Each pair is scored at ``val_repeats`` (timestep, noise) draws; both losses use identical draws.
        """
        code = batch_pose_code(batch)
        b, k = code.shape[0], self.cfg.val_repeats
        if b < 2:
            return
        z, concat, embeds = self.encode_batch(batch, torch.Generator().manual_seed(batch_idx))
        rep = lambda x: x.repeat(k, *([1] * (x.ndim - 1)))  # noqa: E731
        shuffled = code[torch.roll(torch.arange(b), 1)]
        losses = {}
        for name, c in (("true_pose", code), ("shuffled_pose", shuffled)):
            gen = torch.Generator().manual_seed(10_000 + batch_idx)
            losses[name] = self.diffusion_loss(rep(z), rep(concat), rep(embeds), rep(c), gen)
            self.log(f"val/loss_{name}", losses[name], batch_size=b, sync_dist=True)
        self.log("val/pose_gain", losses["shuffled_pose"] - losses["true_pose"], batch_size=b, sync_dist=True)

    def configure_optimizers(self):
        o = self.cfg.optim
        groups = [
            {"params": [p for p in self.model.unet.parameters() if p.requires_grad], "lr": o.lr},
            {"params": list(self.model.cc_projection.parameters()), "lr": o.lr * o.projection_lr_multiplier},
        ]
        opt = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

        def warmup(step: int) -> float:
            if step >= o.warmup_steps:
                return 1.0
            return o.warmup_start_factor + (1.0 - o.warmup_start_factor) * step / max(1, o.warmup_steps)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def unet_state(self, use_ema: bool = True) -> dict[str, torch.Tensor]:
        """UNet weights to export: the EMA copy (what inference should use) or the raw weights."""
        if use_ema and self.ema is not None:
            return self.ema.state_for(self.model.unet)
        return {k: v.detach().clone() for k, v in self.model.unet.state_dict().items()}
