"""``Zero123Pipeline``: posed novel views from conditioning images (the interface the orchestrator uses)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from data.layout import RelativePose
from zero123.checkpoints.folders import write_folder
from zero123.checkpoints.loading import load_zero123
from zero123.config import Zero123Config, load_zero123_config
from zero123.model import Zero123Model
from zero123.pose import pose_vector
from zero123.sampling import Conditioning, ViewNoise, executed_steps, sample_ddim, sample_dpm_solver


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """The official PNG round trip: clamp to [0,1], ``uint8(255 x)`` by truncation, back to k/255 floats."""
    return torch.floor(images.clamp(0.0, 1.0) * 255.0) / 255.0


def whiten_near_white(images: torch.Tensor, threshold: int = 253) -> torch.Tensor:
    """Official stage-2 input fix: every channel value >= threshold/255 becomes 1.0. (N,3,H,W) in [0,1]."""
    return torch.where(images >= threshold / 255.0 - 1e-6, torch.ones_like(images), images)


def resolve_seeds(seeds, n: int) -> list[int]:
    """None -> n random seeds from torch's global RNG; int s -> s, s+1, ...; list -> checked length n."""
    if seeds is None:
        return torch.randint(0, 2**31 - 1, (n,)).tolist()
    if isinstance(seeds, int):
        return [seeds + i for i in range(n)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"seeds: need one per target view ({n}), got {len(seeds)}")
    return seeds


class Zero123Pipeline:
    """Zero123 with its sampler; pure modules in ``self.model``, settings in ``self.cfg``.

    Construct with :meth:`from_pretrained` (official weights) or :meth:`from_config` (random weights).
    """

    def __init__(self, model: Zero123Model, cfg: Zero123Config, device=None, dtype: torch.dtype | None = None):
        self.model = model.eval().requires_grad_(False)
        self.cfg = cfg.validate()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float32
        self.to(self.device, self.dtype)

    # ------------------------------------------------------------------ construction / persistence
    @classmethod
    def from_config(cls, cfg: Zero123Config | str | os.PathLike, device=None, dtype=None, seed: int | None = 0):
        """Random weights (tiny configs for tests / smoke runs). ``seed`` makes the init reproducible."""
        if not isinstance(cfg, Zero123Config):
            cfg = load_zero123_config(cfg)
        if seed is not None:
            torch.manual_seed(seed)
        return cls(Zero123Model(cfg.validate().model), cfg, device, dtype)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        device=None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> "Zero123Pipeline":
        """Official LDM checkpoint, diffusers Format A/B folder, our folder, or hub id.

        Keyword arguments go to :func:`zero123.checkpoints.loading.load_zero123` (``config``,
        ``original_config``, ``ema``, ``variant``, ``allow_unsafe_pickle``).
        """
        cfg, model = load_zero123(path_or_hub_id, **kwargs)
        return cls(model, cfg, device, dtype)

    def save_pretrained(self, directory: str | os.PathLike, safe_serialization: bool = True) -> Path:
        """Write a folder :meth:`from_pretrained` reads back (float32, safetensors, Format-A compatible)."""
        model = Zero123Model(self.cfg.model)
        model.load_state_dict({k: v.float().cpu() for k, v in self.model.state_dict().items()})
        return write_folder(directory, model, self.cfg, safe_serialization)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Zero123Pipeline":
        """Move to ``device``; UNet and CLIP run in ``dtype`` (bf16/fp16 on CUDA), VAE in fp32 under fp16."""
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        m = self.model.to(self.device)
        vae_dtype = torch.float32 if self.dtype == torch.float16 else self.dtype
        for module, dtype in ((m.unet, self.dtype), (m.image_encoder, self.dtype), (m.vae, vae_dtype)):
            if module.dtype != dtype:
                module.to(dtype=dtype)
        return self

    # ------------------------------------------------------------------ conditioning
    @torch.no_grad()
    def encode_conditions(self, cond_images: torch.Tensor, relative_pose: RelativePose) -> Conditioning:
        """Context tokens and concat latents for N targets; identical conditioning images are encoded once."""
        images = self._check_images(cond_images)
        if len(relative_pose) != images.shape[0]:
            raise ValueError(
                f"relative_pose has {len(relative_pose)} entries but cond_images has {images.shape[0]}: "
                "give one conditioning image per target view"
            )
        unique, inverse = _unique_images(images)
        x = unique.to(self.device, torch.float32) * 2.0 - 1.0
        embeds, concats = [], []
        for chunk in x.split(self.cfg.sampling.max_batch_size):
            embeds.append(self.model.embed_images(chunk).float())
            concats.append(self.model.concat_latents(chunk).float())
        embeds, concats = torch.cat(embeds)[inverse], torch.cat(concats)[inverse]
        code = pose_vector(relative_pose).to(self.device)
        context = self.model.project_context(embeds, code).float()
        return Conditioning(context, concats)

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"cond_images must be an (N,3,H,W) float tensor in [0,1], got {shape}")
        size = self.cfg.model.vae.sample_size
        if images.shape[-2:] != (size, size):
            raise ValueError(
                f"cond_images must be {size}x{size} (Zero123's input size), got {tuple(images.shape[-2:])}: "
                "resize / recentre the object first"
            )
        if not images.is_floating_point():
            raise ValueError(f"cond_images must be float in [0,1], got {images.dtype} (divide uint8 by 255)")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise ValueError(f"cond_images must lie in [0,1], got values in [{lo:.3f}, {hi:.3f}]")
        return images.float()

    # ------------------------------------------------------------------ sampling
    def auto_batch_size(self) -> int:
        """Views per UNet call: ``sampling.max_batch_size``, capped on CUDA by the memory budget estimate."""
        cap = self.cfg.sampling.max_batch_size
        if self.device.type != "cuda":
            return cap
        budget = self.cfg.sampling.memory_budget_gb
        free = torch.cuda.mem_get_info(self.device)[0] if budget is None else budget * 1024**3
        return max(1, min(cap, int(0.8 * free // self.bytes_per_view())))

    def bytes_per_view(self) -> int:
        """Rough activation memory of one target view per denoising step (CFG doubles the rows)."""
        u = self.cfg.model.unet
        side = u.sample_size
        values = sum(40 * c * (side // 2**i) ** 2 for i, c in enumerate(u.block_out_channels))
        attention = u.attention_head_dim * side**4  # materialised self-attention at the top level
        width = torch.finfo(self.dtype).bits // 8
        return int(2 * width * (values + attention))

    @torch.no_grad()
    def generate(
        self,
        cond_images: torch.Tensor,
        relative_pose: RelativePose,
        *,
        num_inference_steps: Optional[int] = None,
        guidance_scale: Optional[float] = None,
        seeds: int | Sequence[int] | None = None,
        batch_size: Optional[int] = None,
        progress: bool = True,
        scheduler: Optional[str] = None,
    ) -> torch.Tensor:
        """Novel views.

        Args:
            cond_images: (N,3,H,W) float in [0,1] (H = W = 256), one conditioning image per target.
            relative_pose: N target poses relative to their conditioning image.
            num_inference_steps: sampler steps (official DDIM "75" runs 76 UNet calls); default from config.
            guidance_scale: CFG scale (1.0 = conditional branch only); default 3.0.
            seeds: None, an int (view i gets seed + i) or N ints; a view's result does not depend on batching.
            batch_size: views per UNet call (None = :meth:`auto_batch_size`).
            scheduler: ``"ddim"`` (official) or ``"dpmsolver++"``; default from config.

        Returns:
            (N,3,H,W) float32 on the CPU in [0,1], quantised to k/255 like the official PNG output.
        """
        s = self.cfg.sampling
        steps = num_inference_steps or s.num_inference_steps
        scale = s.guidance_scale if guidance_scale is None else float(guidance_scale)
        sched = scheduler or s.scheduler
        if sched not in ("ddim", "dpmsolver++"):
            raise ValueError(f"scheduler must be 'ddim' or 'dpmsolver++', got '{sched}'")
        cond = self.encode_conditions(cond_images, relative_pose)
        n = len(cond)
        seed_list = resolve_seeds(seeds, n)
        bs = batch_size or self.auto_batch_size()
        latent_shape = tuple(cond.concat.shape[1:])
        chunks = [range(i, min(i + bs, n)) for i in range(0, n, bs)]
        total = len(chunks) * executed_steps(sched, steps, self.cfg.model.num_train_timesteps)
        outputs = []
        with tqdm(total=total, disable=not progress, desc="zero123", unit="step") as bar:
            for idx in chunks:
                sub = cond[idx.start: idx.stop]
                noise = ViewNoise(seed_list[idx.start: idx.stop], latent_shape, self.device)
                x_T = noise.draw()
                if sched == "ddim":
                    z = sample_ddim(self.model, sub, x_T, steps, scale, s.eta, lambda k: noise.draw(), bar.update)
                else:
                    z = sample_dpm_solver(self.model, sub, x_T, steps, scale, bar.update)
                images = (self.model.decode_latents(z).float() + 1.0) / 2.0
                outputs.append(quantize_8bit(images).cpu())
        return torch.cat(outputs)

    def unet_evaluations(self, num_views: int, num_inference_steps: int, scheduler: str | None = None) -> int:
        """Per-sample UNet evaluations (CFG rows counted) to generate ``num_views`` views."""
        steps = executed_steps(scheduler or self.cfg.sampling.scheduler, num_inference_steps)
        return num_views * steps * (2 if self.cfg.sampling.guidance_scale != 1.0 else 1)


def _unique_images(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct images (exact equality) and, per input, the index of its distinct copy."""
    keys, index, inverse = {}, [], []
    for i, img in enumerate(images):
        key = hash(img.numpy().tobytes()) if img.device.type == "cpu" else hash(img.cpu().numpy().tobytes())
        if key not in keys or not torch.equal(images[index[keys[key]]], img):
            keys[key] = len(index)
            index.append(i)
        inverse.append(keys[key])
    return images[index], torch.tensor(inverse, dtype=torch.long)
