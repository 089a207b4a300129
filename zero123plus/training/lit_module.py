"""``Zero123PlusLitModule``: InstantMesh's Zero123++ fine-tuning step around the pure :class:`Zero123PlusModel`.

Per batch (spec sections 5-7): target latents = ``scale_latents(0.18215 * VAE posterior sample of
scale_image(grid))``; reference = raw posterior sample of the conditioning view, forward-diffused to the same t
with its own noise (``sqrt(abar) ref + sqrt(1 - abar) noise``, DDPM ``add_noise``); context = empty-prompt states
+ ramp x CLIP embedding; with probability ``cond_dropout`` per batch the context loses the image term and the
reference becomes the latent of an all-black image (InstantMesh's dropout); t ~ U{0..T-1}, linear betas;
loss = MSE(v_pred, v) with v = sqrt(abar) eps - sqrt(1 - abar) x0. Only the UNet trains (VAE, CLIP towers frozen).
Every random draw comes from a generator of (seed, global step, micro-batch, rank): a resumed run draws what the
uninterrupted one did.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image

from data.datasets.seeded import draw_generator
from data.ema import ModuleEMA
from zero123plus.model import Zero123PlusModel
from zero123plus.scaling import scale_image, scale_latents
from zero123plus.schedule import alphas_cumprod
from zero123plus.training.config import Zero123PlusTrainConfig


class Zero123PlusLitModule(pl.LightningModule):
    """Trains ``model.unet`` (the reference-attention UNet); EMA of its weights kept as buffers."""

    def __init__(self, model: Zero123PlusModel, cfg: Zero123PlusTrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        model.requires_grad_(False)
        model.unet.requires_grad_(True)
        for frozen in (model.vae, model.text_encoder, model.vision_encoder):
            frozen.eval()
        if cfg.trainer.gradient_checkpointing:
            model.unet.unet.enable_gradient_checkpointing()
        self.ema = ModuleEMA(model.unet.unet, cfg.ema_decay) if cfg.use_ema else None
        s = model.scheduler_config
        abar = alphas_cumprod(s.get("beta_schedule", "linear"), s.get("beta_start", 0.00085),
                              s.get("beta_end", 0.012), s.get("num_train_timesteps", 1000))
        self.register_buffer("alphas_cumprod", abar, persistent=False)
        black = model.vae_processor(Image.new("RGB", (model.vae_processor.size,) * 2))
        self.register_buffer("black_vae_input", black[None], persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.model.vae, self.model.text_encoder, self.model.vision_encoder):
            frozen.eval()
        return self

    def _generator(self, batch_idx: int) -> torch.Generator:
        micro = batch_idx % max(1, self.cfg.trainer.accumulate_grad_batches)
        return draw_generator(self.cfg.seed, self.global_step, micro, self.global_rank)

    # ------------------------------------------------------------------ shared maths
    def _sample(self, dist, gen: torch.Generator) -> torch.Tensor:
        return dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(dist.mean)

    @torch.no_grad()
    def encode_batch(self, batch: dict, gen: torch.Generator, drop: bool = False):
        """(target latents (B,4,h,w), reference latents (B,4,64,64), context (B,77,D)) of a batch."""
        m = self.model
        target = scale_image(batch["target"].float() * 2.0 - 1.0)
        z = scale_latents(self._sample(m.posterior(target), gen) * m.vae.config.scaling_factor).float()
        text = m.encode_prompt("").float()
        b = z.shape[0]
        if drop:
            ref = self._sample(m.posterior(self.black_vae_input.expand(b, -1, -1, -1)), gen).float()
            return z, ref, text.expand(b, -1, -1)
        ref = self._sample(m.posterior(batch["cond_vae"]), gen).float()
        return z, ref, m.ramped_context(text, m.image_embeds(batch["cond_clip"]).float())

    def diffusion_loss(self, z, ref, context, gen: torch.Generator) -> torch.Tensor:
        """Per-sample v-prediction MSE (B,) at t ~ U{0..T-1}, the reference noised to the same t."""
        b = z.shape[0]
        t = torch.randint(0, self.alphas_cumprod.shape[0], (b,), generator=gen).to(z.device)
        eps = torch.randn(z.shape, generator=gen).to(z)
        ref_eps = torch.randn(ref.shape, generator=gen).to(ref)
        a = self.alphas_cumprod.to(z.device)[t].view(b, 1, 1, 1)
        noisy = a.sqrt() * z + (1.0 - a).sqrt() * eps
        v_target = a.sqrt() * eps - (1.0 - a).sqrt() * z
        reference = a.sqrt() * ref + (1.0 - a).sqrt() * ref_eps
        v = self.model.unet(noisy, t, context, reference).float()
        return F.mse_loss(v, v_target, reduction="none").mean(dim=(1, 2, 3))

    # ------------------------------------------------------------------ Lightning hooks
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        gen = self._generator(batch_idx)
        drop = bool(torch.rand((), generator=gen) < self.cfg.cond_dropout)
        z, ref, ctx = self.encode_batch(batch, gen, drop)
        loss = self.diffusion_loss(z, ref, ctx, gen).mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=z.shape[0])
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """Optimizer step, then the EMA update (before any checkpoint callback of the same step runs)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update(self.model.unet.unet)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Fixed draws: loss with each item's own reference vs the batch's references rolled by one
        (``val/reference_gain`` > 0 = the model uses the conditioning view)."""
        b = batch["target"].shape[0]
        z, ref, ctx = self.encode_batch(batch, torch.Generator().manual_seed(batch_idx))
        own = self.diffusion_loss(z, ref, ctx, torch.Generator().manual_seed(10_000 + batch_idx)).mean()
        self.log("val/loss", own, batch_size=b, sync_dist=True)
        if b >= 2:
            roll = torch.roll(torch.arange(b), 1)
            other = self.diffusion_loss(z, ref[roll], ctx[roll],
                                        torch.Generator().manual_seed(10_000 + batch_idx)).mean()
            self.log("val/reference_gain", other - own, batch_size=b, sync_dist=True)

    def configure_optimizers(self):
        o = self.cfg.optim
        params = [p for p in self.model.unet.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

        def warmup(step: int) -> float:
            if step >= o.warmup_steps:
                return 1.0
            return o.warmup_start_factor + (1.0 - o.warmup_start_factor) * step / max(1, o.warmup_steps)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def unet_state(self, use_ema: bool = True) -> dict[str, torch.Tensor]:
        """Plain UNet weights to export: the EMA copy (what inference should use) or the raw weights."""
        unet = self.model.unet.unet
        if use_ema and self.ema is not None:
            return self.ema.state_for(unet)
        return {k: v.detach().clone() for k, v in unet.state_dict().items()}
