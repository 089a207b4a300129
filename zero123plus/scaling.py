"""The official latent and image scalings of Zero123++ (spec section 6), in the official operation order.

* Diffusion space: ``scale_latents(0.18215 * z_vae) = (z - 0.22) * 0.75``; decode with
  ``unscale_latents(z) / 0.18215`` = ``(z / 0.75 + 0.22) / 0.18215``.
* Image space: targets are ``scale_image`` of [-1, 1] images (x 0.5 / 0.8: lower contrast); decoded images are
  ``unscale_image``'d (x 1.6) before ``(x / 2 + 0.5).clamp(0, 1)``.
* The **reference** latent (ref-attn) is the raw VAE posterior sample: neither x 0.18215 nor shifted.
"""
from __future__ import annotations

import torch

LATENT_SHIFT = 0.22
LATENT_SCALE = 0.75
IMAGE_SCALE = 0.5 / 0.8


def scale_latents(latents: torch.Tensor) -> torch.Tensor:
    return (latents - LATENT_SHIFT) * LATENT_SCALE


def unscale_latents(latents: torch.Tensor) -> torch.Tensor:
    return latents / LATENT_SCALE + LATENT_SHIFT


def scale_image(image: torch.Tensor) -> torch.Tensor:
    return image * 0.5 / 0.8


def unscale_image(image: torch.Tensor) -> torch.Tensor:
    return image / 0.5 * 0.8


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """diffusers' ``VaeImageProcessor`` postprocess of (B,3,H,W) decoder output in [-1, 1] (after
    :func:`unscale_image`) -> (B,H,W,3) uint8: ``(x / 2 + 0.5).clamp(0, 1)``, then ``round(255 x)``."""
    x = (image / 2 + 0.5).clamp(0, 1)
    return torch.from_numpy((x.permute(0, 2, 3, 1).cpu().float().numpy() * 255).round().astype("uint8"))
