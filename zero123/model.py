"""The pure Zero123 network: UNet (8 input channels) + VAE + frozen CLIP image tower + pose projection.

No sampling loop and no training logic here (see :mod:`zero123.sampling` and :mod:`zero123.training`).
Images enter as (B, 3, H, W) tensors in [-1, 1] (the official ``x * 2 - 1`` of [0, 1] RGB).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from zero123.config import ModelConfig

#: OpenAI CLIP normalisation (applied after mapping [-1, 1] to [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def official_alphas_cumprod(cfg: ModelConfig) -> torch.Tensor:
    """(T,) float32 cumulative alphas exactly as LDM registers them (float64 maths, stored float32)."""
    betas = np.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.num_train_timesteps, dtype=np.float64) ** 2
    return torch.from_numpy(np.cumprod(1.0 - betas)).to(torch.float32)


def init_pose_projection(layer: nn.Linear, embed_dim: int) -> None:
    """Official initialisation: identity on the CLIP block, zero bias, pose columns keep PyTorch's default."""
    with torch.no_grad():
        layer.weight[:, :embed_dim].copy_(torch.eye(embed_dim, dtype=layer.weight.dtype))
        layer.bias.zero_()


class Zero123Model(nn.Module):
    """Zero123's networks.

    Attributes:
        unet: ``UNet2DConditionModel``, input = cat(noisy target latent, conditioning latent) on channels.
        vae: ``AutoencoderKL`` (frozen in training).
        image_encoder: ``CLIPVisionModelWithProjection`` (frozen); ``image_embeds`` is the projected embedding.
        cc_projection: ``Linear(embed + 4 -> embed)`` mapping [CLIP embedding | pose code] to the one
            cross-attention token.
        alphas_cumprod: (T,) float32 buffer, the training noise schedule.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = UNet2DConditionModel(**cfg.unet.to_diffusers())
        self.vae = AutoencoderKL(**cfg.vae.to_diffusers())
        self.image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg.image_encoder.to_transformers()))
        embed = cfg.image_encoder.projection_dim
        if embed != cfg.unet.cross_attention_dim:
            raise ValueError(
                f"CLIP projection_dim ({embed}) must equal unet.cross_attention_dim ({cfg.unet.cross_attention_dim})"
            )
        self.cc_projection = nn.Linear(embed + cfg.pose_dim, embed)
        init_pose_projection(self.cc_projection, embed)
        self.register_buffer("alphas_cumprod", official_alphas_cumprod(cfg), persistent=False)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ conditioning
    def clip_input(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,3,S,S) CLIP input: bicubic, align_corners=True, no antialias, no crop."""
        size = self.cfg.image_encoder.image_size
        x = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=True, antialias=False)
        x = (x + 1.0) / 2.0
        return (x - self.clip_mean.to(x.dtype)) / self.clip_std.to(x.dtype)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B, embed) projected, un-normalised CLIP image embedding."""
        x = self.clip_input(images).to(self.image_encoder.dtype)
        return self.image_encoder(pixel_values=x).image_embeds

    def project_context(self, image_embeds: torch.Tensor, pose_code: torch.Tensor) -> torch.Tensor:
        """(B, embed) + (B, 4) -> (B, 1, embed) cross-attention context."""
        w = self.cc_projection.weight
        x = torch.cat([image_embeds.to(w.dtype), pose_code.to(device=w.device, dtype=w.dtype)], dim=-1)
        return self.cc_projection(x).unsqueeze(1)

    def concat_latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,4,H/8,W/8) VAE posterior **mode**, not scaled (the concat conditioning)."""
        return self.vae.encode(images.to(self.vae.dtype)).latent_dist.mode()

    # ------------------------------------------------------------------ latents
    def encode_targets(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training targets: ``scale_factor * posterior sample`` of (B,3,H,W) images in [-1,1]."""
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return dist.sample(generator) * self.cfg.scale_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B,4,h,w) scaled latents -> (B,3,8h,8w) images in about [-1,1] (not clamped)."""
        return self.vae.decode(latents.to(self.vae.dtype) / self.cfg.scale_factor).sample

    # ------------------------------------------------------------------ noise prediction
    def predict_noise(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, concat: torch.Tensor
    ) -> torch.Tensor:
        """epsilon for (B,4,h,w) noisy latents at integer ``timesteps`` (B,) given (B,1,E) context, (B,4,h,w) concat."""
        dtype = self.unet.dtype
        x = torch.cat([noisy, concat.to(noisy.dtype)], dim=1).to(dtype)
        return self.unet(x, timesteps, encoder_hidden_states=context.to(dtype)).sample

    def guided_noise(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        concat: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Classifier-free guided epsilon, one batched UNet call over ``[uncond, cond]``.

        The unconditional branch is the official one: zero context (after projection) and zero concat latent.
        With ``guidance_scale == 1`` only the conditional branch runs (as in the official sampler).
        """
        if guidance_scale == 1.0:
            return self.predict_noise(noisy, timesteps, context, concat).to(noisy.dtype)
        b = noisy.shape[0]
        eps = self.predict_noise(
            torch.cat([noisy, noisy]),
            torch.cat([timesteps, timesteps]),
            torch.cat([torch.zeros_like(context), context]),
            torch.cat([torch.zeros_like(concat), concat]),
        ).to(noisy.dtype)
        eps_uncond, eps_cond = eps[:b], eps[b:]
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)
