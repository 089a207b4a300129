"""``--prompt``: make the input image from text with a diffusers text-to-image pipeline (Stable Diffusion 1.5)."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from pipeline.config import TextToImageConfig


def text_to_image(prompt: str, model: str | Path, cfg: TextToImageConfig, *, seed: int | None,
                  device: torch.device) -> Image.Image:
    """Make an input image from a text prompt with a diffusers text-to-image pipeline (a folder path)."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(model)).to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    generator = None if seed is None else torch.Generator(device="cpu").manual_seed(int(seed))
    result = pipe(
        prompt + cfg.prompt_suffix, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
        height=cfg.size, width=cfg.size, generator=generator,
    )
    return result.images[0].convert("RGB")
