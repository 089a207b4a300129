"""``Zero123PlusPipeline``: one image in, six consistent posed views out (a 3x2 grid), as the official pipeline."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from data.layout import ZERO123PLUS_GRID, split_grid, zero123plus_cameras
from data.preprocess import PreprocessError, load_image
from data.views import Views
from zero123plus.config import Zero123PlusConfig, load_zero123plus_config
from zero123plus.loading import load_controlnet, load_pipeline_folder, load_unet_file, write_pipeline_folder
from zero123plus.model import Zero123PlusModel
from zero123plus.preprocess import prepare_input, to_rgb
from zero123plus.random_init import random_model
from zero123plus.sampling import Conditioning, NoiseStreams, sample
from zero123plus.scaling import to_uint8, unscale_image
from zero123plus.schedule import euler_ancestral


@dataclass
class Zero123PlusOutput:
    """Result for B input images.

    Attributes:
        grids: (B, H, W, 3) uint8 grids (960x640 for the real model), view k at tile (k // 2, k % 2).
        views: B :class:`Views` of six (3, H/3, W/2) images in [0, 1] (k/255) with their cameras; the background is
            the variant's (grey for v1.x, white for InstantMesh), not necessarily white like other ``Views``.
        latents: (B, 4, H/8, W/8) final latents in the scaled diffusion space.
    """

    grids: torch.Tensor
    views: list[Views]
    latents: torch.Tensor

    def grid_images(self) -> list[Image.Image]:
        return [Image.fromarray(g.numpy()) for g in self.grids]


def resolve_seeds(seeds, n: int) -> list[int]:
    """None -> n random seeds (torch's global RNG); int s -> s, s+1, ...; a list -> checked length n."""
    if seeds is None:
        return torch.randint(0, 2**31 - 1, (n,)).tolist()
    if isinstance(seeds, int):
        return [seeds + i for i in range(n)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"seeds: need one per input image ({n}), got {len(seeds)}")
    return seeds


class Zero123PlusPipeline:
    """Zero123++ with its sampler; networks in ``self.model``, settings in ``self.cfg``.

    Construct with :meth:`from_pretrained` (hub-layout folder) or :meth:`from_config` (random weights).
    """

    def __init__(self, model: Zero123PlusModel, cfg: Zero123PlusConfig, device=None, dtype: torch.dtype | None = None):
        self.model = model.eval().requires_grad_(False)
        self.cfg = cfg.validate()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float32
        self.to(self.device, self.dtype)

    # ------------------------------------------------------------------ construction / persistence
    @classmethod
    def from_config(cls, cfg: Zero123PlusConfig | str | os.PathLike, device=None, dtype=None, seed: int | None = 0):
        """Random weights shaped by ``cfg.model`` (tiny configs for tests / smoke runs)."""
        if not isinstance(cfg, Zero123PlusConfig):
            cfg = load_zero123plus_config(cfg)
        return cls(random_model(cfg.validate().model, seed), cfg, device, dtype)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        cfg: Zero123PlusConfig | str | os.PathLike | None = None,
        unet: str | os.PathLike | None = None,
        controlnet: str | os.PathLike | None = None,
        device=None,
        dtype: torch.dtype | None = None,
    ) -> "Zero123PlusPipeline":
        """Hub-layout folder (``sudo-ai/zero123plus-v1.x``), ``hf://org/repo`` or ``org/repo``.

        Args:
            cfg: variant settings (default: the ``v1.2`` preset); the networks come from the folder.
            unet: replacement UNet weights file (InstantMesh ``diffusion_pytorch_model.bin``).
            controlnet: ControlNet folder (depth variant).
        """
        if cfg is None:
            cfg = load_zero123plus_config()
        elif not isinstance(cfg, Zero123PlusConfig):
            cfg = load_zero123plus_config(cfg)
        folder = _local(path_or_hub_id, "zero123plus_v12" if cfg.variant != "v1.1" else "zero123plus_v11")
        unet_path = _local(unet, "instantmesh_unet") if unet is not None else None
        control = _local(controlnet, "zero123plus_depth_controlnet") if controlnet is not None else None
        model = load_pipeline_folder(folder, unet_path, control)
        return cls(model, cfg, device, dtype)

    def load_unet_weights(self, path: str | os.PathLike) -> None:
        """Replace the UNet's weights (InstantMesh file, or a training checkpoint's ``unet.unet.*``), strictly."""
        load_unet_file(self.model.unet.unet, Path(path))
        self.to()

    def add_controlnet(self, controlnet: str | os.PathLike | torch.nn.Module | None = None) -> None:
        """Attach a depth ControlNet (a folder, a module, or None = ``ControlNetModel.from_unet``, untrained)."""
        from diffusers import ControlNetModel

        if controlnet is None:
            controlnet = ControlNetModel.from_unet(self.model.unet.unet)
        elif not isinstance(controlnet, torch.nn.Module):
            controlnet = load_controlnet(controlnet)
        self.model.controlnet = controlnet.eval().requires_grad_(False)
        self.to()

    def save_pretrained(self, directory: str | os.PathLike, safe_serialization: bool = True) -> Path:
        """Write the hub layout (float32) that :meth:`from_pretrained` reads back."""
        dtype = self.dtype
        self.to("cpu", torch.float32)
        try:
            return write_pipeline_folder(self.model, directory, safe_serialization)
        finally:
            self.to(self.device, dtype)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Zero123PlusPipeline":
        """Move to ``device``; UNet/ControlNet/encoders in ``dtype``, VAE kept in float32 under float16."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        m = self.model.to(self.device)
        vae_dtype = torch.float32 if self.dtype == torch.float16 else self.dtype
        for module, dtype in ((m.unet.unet, self.dtype), (m.text_encoder, self.dtype), (m.vision_encoder, self.dtype),
                              (m.controlnet, self.dtype), (m.vae, vae_dtype)):
            if module is not None and module.dtype != dtype:
                module.to(dtype=dtype)
        return self

    # ------------------------------------------------------------------ inputs
    def prepare_image(self, image: Image.Image | str | os.PathLike) -> Image.Image:
        """The variant's input handling (load, optional InstantMesh re-framing, RGBA over the background grey)."""
        if isinstance(image, (torch.Tensor, np.ndarray)):
            raise PreprocessError("Zero123++ takes a PIL image or an image path (as the official pipeline, which "
                                  "rejects tensors): convert with PIL.Image.fromarray")
        if not isinstance(image, Image.Image):
            image = load_image(image)
        p = self.cfg.preprocess
        return prepare_input(image, p.background, p.foreground_ratio)

    def control_tensor(self, depth_image: Image.Image | str | os.PathLike) -> torch.Tensor:
        """ControlNet input: RGB (RGBA over grey 127), /255, (x - 0.5) / 0.5 -> (1, 3, H, W); H x W = the output size."""
        if not isinstance(depth_image, Image.Image):
            depth_image = load_image(depth_image)
        rgb = np.asarray(to_rgb(depth_image, 127))
        s = self.cfg.sampling
        if rgb.shape[:2] != (s.height, s.width):
            raise PreprocessError(f"depth_image must be {s.height}x{s.width} (the output grid), got "
                                  f"{rgb.shape[0]}x{rgb.shape[1]}")
        x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
        return ((x - 0.5) / 0.5)[None]

    @torch.no_grad()
    def encode(self, images: list[Image.Image], noise: NoiseStreams, guidance_scale: float,
               prompt: str = "", control: Optional[torch.Tensor] = None) -> Conditioning:
        """Context and reference latents of prepared RGB images (draws the posterior samples from ``noise``)."""
        m, dev = self.model, self.device
        vae_px = torch.stack([m.vae_processor(im) for im in images]).to(dev)
        clip_px = torch.stack([m.clip_processor(im) for im in images]).to(dev)
        post = m.posterior(vae_px)
        eps = torch.cat([torch.randn((1, *post.mean.shape[1:]), generator=g) for g in noise.reference])
        cond_lat = post.mean + post.std * eps.to(dev, post.mean.dtype)
        text = m.encode_prompt(prompt).float()
        context = m.ramped_context(text, m.image_embeds(clip_px).float())
        if guidance_scale > 1.0:
            neg = m.posterior(torch.zeros_like(vae_px[:1]))
            eps = torch.cat([torch.randn((1, *neg.mean.shape[1:]), generator=g) for g in noise.reference])
            neg_lat = neg.mean + neg.std * eps.to(dev, neg.mean.dtype)
            cond_lat = torch.cat([neg_lat, cond_lat])
            context = torch.cat([m.encode_prompt("").float().expand(len(images), -1, -1), context])
        if control is not None:
            control = control.to(dev)
        return Conditioning(context.float(), cond_lat.float(), control)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(
        self,
        images: Image.Image | str | os.PathLike | Sequence[Image.Image | str | os.PathLike],
        *,
        seeds: int | Sequence[int] | None = None,
        reference_seeds: int | Sequence[int] | None = None,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        timestep_spacing: Optional[str] = None,
        depth_image: Image.Image | str | os.PathLike | None = None,
        prompt: str = "",
        progress: bool = True,
        on_step=None,
    ) -> Zero123PlusOutput:
        """Six views per input image.

        Args:
            images: one image / path or a list; RGBA is composited on the variant's background.
            seeds: sampling-stream seeds (the official ``generator``): None, an int (image i: seed + i) or a list.
            reference_seeds: reference-stream seeds (the official ``torch.manual_seed``); default = ``seeds``.
            num_inference_steps, guidance_scale, timestep_spacing: defaults from ``cfg.sampling``.
            depth_image: ControlNet conditioning grid (H x W of the output), needs a ControlNet.
            on_step: optional callback receiving every step's tensors (see :func:`zero123plus.sampling.sample`).

        Returns:
            :class:`Zero123PlusOutput`.
        """
        s = self.cfg.sampling
        steps = num_inference_steps or s.num_inference_steps
        scale = s.guidance_scale if guidance_scale is None else float(guidance_scale)
        spacing = timestep_spacing or s.timestep_spacing
        if isinstance(images, (Image.Image, str, os.PathLike)):
            images = [images]
        prepared = [self.prepare_image(im) for im in images]
        seed_list = resolve_seeds(seeds, len(prepared))
        ref_list = seed_list if reference_seeds is None else resolve_seeds(reference_seeds, len(prepared))
        noise = NoiseStreams.from_seeds(ref_list, seed_list)
        control = None
        if depth_image is not None:
            if self.model.controlnet is None:
                raise ValueError("depth_image needs a ControlNet: from_pretrained(..., controlnet=...) or add_controlnet()")
            control = self.control_tensor(depth_image)
        cond = self.encode(prepared, noise, scale, prompt, control)
        scheduler = euler_ancestral(self.model.scheduler_config, spacing)
        shape = (self.model.unet.unet.config.in_channels, s.height // 8, s.width // 8)
        with tqdm(total=steps, disable=not progress, desc="zero123++", unit="step") as bar:
            def step(record):
                bar.update()
                if on_step is not None:
                    on_step(record)

            latents = sample(self.model, scheduler, cond, noise, shape, steps, scale, s.controlnet_scale, step)
        decoded = unscale_image(self.model.decode(latents).float())
        grids = to_uint8(decoded)
        return Zero123PlusOutput(grids, [self.to_views(g) for g in grids], latents.float().cpu())

    def to_views(self, grid: torch.Tensor) -> Views:
        """(H, W, 3) uint8 grid -> six posed :class:`Views` (cameras from ``data.layout``'s table)."""
        x = grid.permute(2, 0, 1).float() / 255.0
        tiles = split_grid(x, ZERO123PLUS_GRID)
        cams = zero123plus_cameras(self.cfg.pose_set, tile_px=tiles.shape[-1])
        return Views(tiles, cams, names=tuple(str(k) for k in range(len(tiles))),
                     source=f"zero123plus-{self.cfg.variant}")

    def unet_evaluations(self, num_inference_steps: Optional[int] = None, guidance_scale: Optional[float] = None) -> int:
        """UNet evaluations per input image (one grid of six views): steps x (write + read pass) x CFG rows."""
        s = self.cfg.sampling
        steps = num_inference_steps or s.num_inference_steps
        scale = s.guidance_scale if guidance_scale is None else guidance_scale
        return steps * 2 * (2 if scale > 1.0 else 1)


def _local(source, registry_name: str) -> Path:
    """A local path as is; anything else (registry name, ``hf://`` / ``org/repo`` source, a missing path) through
    ``data.weights``, which raises the project's one missing-weights message when it cannot be had."""
    from data import weights

    path = Path(str(source)).expanduser()
    if path.exists():
        return path
    if str(source) in weights.REGISTRY:
        return weights.resolve(str(source))
    return weights.resolve(registry_name, str(source))
