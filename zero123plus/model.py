"""The pure Zero123++ networks and the official per-call computation (spec sections 3, 5, 6, 8, 9).

No sampling loop and no file handling here (:mod:`zero123plus.sampling`, :mod:`zero123plus.loading`).

Shapes for a 960x640 output (B input images): denoised latents (B,4,120,80) in the *scaled* diffusion space;
reference latents (B,4,64,64) raw VAE posterior samples of the 512 px input; context (B,77,D) with D the text
width (1024 real); CLIP image embeddings (B,D). Under classifier-free guidance every batch is ``[uncond, cond]``.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from zero123plus.attention import has_reference_attention, install_reference_attention
from zero123plus.preprocess import ImageProcessor
from zero123plus.scaling import unscale_latents


class ReferenceUNet(nn.Module):
    """``UNet2DConditionModel`` with reference attention: a write pass on the noised reference, then the read pass.

    State dict: the UNet's keys prefixed ``unet.`` (as the official ``RefOnlyNoisedUNet``).
    """

    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet
        install_reference_attention(unet)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        reference: torch.Tensor,
        down_block_additional_residuals: Optional[tuple[torch.Tensor, ...]] = None,
        mid_block_additional_residual: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """v-prediction (B,4,h,w) for ``sample`` (B,4,h,w) given the *noised, scaled* ``reference`` (B,4,H,W).

        The write pass sees the same timestep and context and no ControlNet residuals; its output is discarded.
        """
        if not has_reference_attention(self.unet):
            raise RuntimeError("the UNet's attention processors were replaced: reference attention is off")
        ref_dict: dict[str, torch.Tensor] = {}
        self.unet(reference, timestep, encoder_hidden_states=encoder_hidden_states,
                  cross_attention_kwargs=dict(mode="w", ref_dict=ref_dict), return_dict=False)
        dtype = self.unet.dtype
        down = None if down_block_additional_residuals is None else [r.to(dtype) for r in down_block_additional_residuals]
        mid = None if mid_block_additional_residual is None else mid_block_additional_residual.to(dtype)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         cross_attention_kwargs=dict(mode="r", ref_dict=ref_dict),
                         down_block_additional_residuals=down, mid_block_additional_residual=mid,
                         return_dict=False)[0]


class Zero123PlusModel(nn.Module):
    """Zero123++'s networks.

    Attributes:
        unet: :class:`ReferenceUNet` (the plain UNet is ``unet.unet``).
        vae: ``AutoencoderKL`` (``config.scaling_factor`` 0.18215).
        text_encoder: ``CLIPTextModel``; only the empty prompt is used in practice.
        vision_encoder: ``CLIPVisionModelWithProjection``; ``image_embeds`` (projected, not normalised).
        controlnet: optional depth ``ControlNetModel`` (plain attention).
        tokenizer: ``CLIPTokenizer`` (max length 77, pad ``!``).
        ramping_coefficients: (77,) buffer, one weight per token position.
        vae_processor, clip_processor: :class:`ImageProcessor` of the two image inputs.
        scheduler_config: the hub scheduler config (dict).
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        vision_encoder: CLIPVisionModelWithProjection,
        tokenizer: CLIPTokenizer,
        ramping_coefficients,
        vae_processor: ImageProcessor,
        clip_processor: ImageProcessor,
        scheduler_config: dict,
        controlnet: Optional[ControlNetModel] = None,
    ):
        super().__init__()
        self.unet = ReferenceUNet(unet)
        self.vae = vae
        self.text_encoder = text_encoder
        self.vision_encoder = vision_encoder
        self.controlnet = controlnet
        self.tokenizer = tokenizer
        ramp = torch.as_tensor(ramping_coefficients, dtype=torch.float32).flatten()
        if ramp.numel() != tokenizer.model_max_length:
            raise ValueError(f"ramping_coefficients has {ramp.numel()} values, the tokenizer "
                             f"{tokenizer.model_max_length} positions")
        self.register_buffer("ramping_coefficients", ramp, persistent=False)
        self.vae_processor, self.clip_processor = vae_processor, clip_processor
        self.scheduler_config = dict(scheduler_config)

    # ------------------------------------------------------------------ conditioning
    def tokenize(self, prompt: str = "") -> torch.Tensor:
        """(1, 77) int64 token ids, padded with the tokenizer's pad token (``!`` = id 0 for SD2's)."""
        max_len = self.tokenizer.model_max_length
        return self.tokenizer(prompt, padding="max_length", max_length=max_len, truncation=True,
                              return_tensors="pt").input_ids

    def encode_prompt(self, prompt: str = "") -> torch.Tensor:
        """(1, 77, D) last hidden state (after the final layer norm) of the text encoder."""
        ids = self.tokenize(prompt).to(self.text_encoder.device)
        return self.text_encoder(ids)[0]

    def image_embeds(self, clip_pixels: torch.Tensor) -> torch.Tensor:
        """(B,3,224,224) CLIP-normalised pixels -> (B, D) projected image embedding."""
        return self.vision_encoder(clip_pixels.to(self.vision_encoder.dtype)).image_embeds

    def ramped_context(self, text_states: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """(1,77,D) + (B,D) -> (B,77,D): token i gets ``ramp[i] * embedding`` added (the global condition)."""
        ramp = self.ramping_coefficients.to(text_states.dtype)
        return text_states + image_embeds[:, None, :].to(text_states.dtype) * ramp[None, :, None]

    def posterior(self, vae_pixels: torch.Tensor):
        """(B,3,512,512) normalised ((p - 0.5) / 0.8) pixels -> the VAE posterior (``mean``, ``std``, ``sample``)."""
        return self.vae.encode(vae_pixels.to(self.vae.dtype)).latent_dist

    # ------------------------------------------------------------------ denoising
    def control_residuals(self, sample, timestep, context, control_image, scale: float):
        """ControlNet residuals (already x ``scale``) for the read pass; ``control_image`` (1 or B, 3, H, W) in [-1, 1]."""
        if self.controlnet is None:
            raise ValueError("a control image was given but the model has no ControlNet")
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=context,
                                    controlnet_cond=control_image.to(self.controlnet.dtype),
                                    conditioning_scale=scale, return_dict=False)
        return down, mid

    @staticmethod
    def noised_reference(ref_latents: torch.Tensor, ref_noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The reference at the sample's noise level: ``(ref + sigma * noise) / sqrt(sigma^2 + 1)``.

        = sqrt(abar_t) ref + sqrt(1 - abar_t) noise (official ``add_noise`` + ``scale_model_input`` of the Euler
        scheduler); ``ref_latents`` / ``ref_noise`` (B,4,H,W), ``sigma`` 0-d.
        """
        sigma = sigma.to(device=ref_latents.device, dtype=ref_latents.dtype)
        return (ref_latents + ref_noise * sigma) / ((sigma**2 + 1) ** 0.5)

    def predict_v(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        reference: torch.Tensor,
        control_image: Optional[torch.Tensor] = None,
        control_scale: float = 1.0,
    ) -> torch.Tensor:
        """One official wrapper call (``RefOnlyNoisedUNet`` [+ ``DepthControlUNet``]).

        Args:
            sample: (B,4,h,w) scheduler-scaled latents (``x / sqrt(sigma^2 + 1)``).
            timestep: 0-d tensor, possibly fractional (``linspace`` spacing).
            context: (B,77,D).
            reference: (B,4,H,W) noised, scaled reference (:meth:`noised_reference`).
            control_image: optional ControlNet input (1 or B, 3, H, W) in [-1, 1]; its residuals (x
                ``control_scale``) enter the read pass only.

        Returns:
            (B,4,h,w) raw v-prediction.
        """
        dtype = self.unet.unet.dtype
        down = mid = None
        if control_image is not None:
            down, mid = self.control_residuals(sample.to(dtype), timestep, context.to(dtype), control_image,
                                               control_scale)
        return self.unet(sample.to(dtype), timestep, context.to(dtype), reference.to(dtype), down, mid)

    # ------------------------------------------------------------------ decoding
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B,4,h,w) scaled diffusion latents -> (B,3,8h,8w) raw VAE decoder output (before ``unscale_image``)."""
        z = unscale_latents(latents) / self.vae.config.scaling_factor
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0]
