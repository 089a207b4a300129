"""Zero123 as a score for per-shape 3D optimisation: the official ``3drec`` SJC score and threestudio-style SDS.

Both need only the model's noise prediction (:meth:`Zero123Model.predict_noise`) and its VAE; the field, renderer
and loop live elsewhere (``score_distillation/``, ``sjc_pipeline.py``).

SJC (``3drec/adapt_sd.py`` ``denoise_objaverse``, ``run_zero123.sjc_3d``), variance-exploding form:

* noise levels ``us = sqrt((1 - abar) / abar)`` in float64, reversed (``us[j]`` <-> timestep ``999 - j``);
  candidates ``us[30:-10]`` (t in [10, 969]), one drawn uniformly per step (``RandomState.choice``);
* ``z = y + sigma n``; the UNet sees ``z / sqrt(1 + sigma^2)`` (= ``sqrt(abar) y + sqrt(1 - abar) n``) at the
  snapped integer timestep, batched ``[uncond, cond]`` (zero context after the projection, zero concat latent);
  ``eps = eps_u + s (eps_c - eps_u)`` with s = 100; ``D = z - sigma eps``;
* gradient ``g = (D - y) / sigma = n - eps`` (``var_red``) or ``(D - z) / sigma = -eps``; the loop applies
  ``y.backward(-g)``, i.e. dL/dy = eps - n with weight 1.

SDS (threestudio ``Zero123Guidance``): renders encoded through the VAE (posterior sample x scale factor),
``t ~ U{min_step..max_step}`` (annealed), ``x_t = sqrt(abar) z + sqrt(1 - abar) eps``, guidance 3,
``grad = (1 - abar_t)(eps_hat - eps)``, ``loss = 0.5 |z - sg(z - grad)|^2 / B``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from zero123.config import ModelConfig
from zero123.model import Zero123Model


def sjc_noise_levels(cfg: ModelConfig | None = None) -> np.ndarray:
    """(T,) float64 ``us``: ``sqrt((1 - abar) / abar)`` of the training schedule, reversed (largest first)."""
    cfg = cfg or ModelConfig()
    betas = np.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.num_train_timesteps, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)
    return np.sqrt((1 - abar) / abar)[::-1].copy()


@dataclass
class Denoised:
    """One SJC denoiser call (tensors (B, 4, h, w) unless stated).

    Attributes:
        denoised: ``D = z - sigma eps``.
        eps_uncond, eps_cond: the two UNet outputs; ``eps`` the guided one.
        timesteps: (B,) int64 timestep the UNet saw.
        sigma: (B, 1, 1, 1) float32 snapped noise level.
        unet_input: ``z / sqrt(1 + sigma^2)``.
    """

    denoised: torch.Tensor
    eps_uncond: torch.Tensor
    eps_cond: torch.Tensor
    eps: torch.Tensor
    timesteps: torch.Tensor
    sigma: torch.Tensor
    unet_input: torch.Tensor


class _Conditioned:
    """Holds the input image's CLIP embedding and VAE posterior mode (computed once per shape)."""

    def __init__(self, model: Zero123Model):
        self.model = model
        self.clip_emb: torch.Tensor | None = None
        self.vae_emb: torch.Tensor | None = None

    @torch.no_grad()
    def set_image(self, image: torch.Tensor) -> None:
        """``image``: (1, 3, H, W) in [-1, 1] at Zero123's input size (official: the 256 px input x 2 - 1)."""
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"the conditioning image must be (1, 3, H, W) in [-1, 1], got {tuple(image.shape)}")
        size = self.model.cfg.vae.sample_size
        if image.shape[-2:] != (size, size):
            raise ValueError(f"the conditioning image must be {size}x{size}, got {tuple(image.shape[-2:])}")
        x = image.to(next(self.model.parameters()).device, torch.float32)
        self.clip_emb = self.model.embed_images(x).float()  # (1, E)
        self.vae_emb = self.model.concat_latents(x).float()  # (1, 4, h, w), unscaled mode

    def conditioning(self, pose_code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 4) pose codes -> context (2B, 1, E) and concat (2B, 4, h, w), unconditional half first."""
        if self.clip_emb is None:
            raise RuntimeError("call set_image(input image) before asking for a score")
        code = pose_code.reshape(-1, 4).to(self.clip_emb.device)
        b = code.shape[0]
        with torch.no_grad():
            ctx = self.model.project_context(self.clip_emb.expand(b, -1), code).float()
        concat = self.vae_emb.expand(b, -1, -1, -1)
        return torch.cat([torch.zeros_like(ctx), ctx]), torch.cat([torch.zeros_like(concat), concat])

    def _eps(self, x_in: torch.Tensor, timesteps: torch.Tensor, pose_code: torch.Tensor, scale: float):
        ctx, concat = self.conditioning(pose_code)
        with torch.no_grad():
            out = self.model.predict_noise(torch.cat([x_in, x_in]), torch.cat([timesteps, timesteps]), ctx, concat)
        eps_u, eps_c = out.float().chunk(2)
        return eps_u, eps_c, eps_u + scale * (eps_c - eps_u)


class SJCScore(_Conditioned):
    """The official ``3drec`` score of Zero123 (guidance 100, variance-reduced gradient by default).

    Use the EMA weights (``Zero123Pipeline.from_pretrained(..., ema=True)``, the default), as the official
    ``ema_scope``.
    """

    def __init__(self, model: Zero123Model, guidance_scale: float = 100.0, var_red: bool = True,
                 level_range: Sequence[int] = (30, -10)):
        super().__init__(model)
        self.guidance_scale, self.var_red = float(guidance_scale), bool(var_red)
        self.us = sjc_noise_levels(model.cfg)
        self.candidates = self.us[level_range[0]:level_range[1]]

    def sample_sigma(self, rng: np.random.RandomState, batch: int = 1) -> torch.Tensor:
        """(B, 1, 1, 1) float32 noise levels, uniform over the candidate ticks (official ``np.random.choice``)."""
        s = rng.choice(self.candidates, batch, replace=False)
        return torch.as_tensor(s.reshape(-1, 1, 1, 1), dtype=torch.float32)

    def snap(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest tick of each sigma -> (timesteps (B,) int64, snapped sigma (B, 1, 1, 1) float32)."""
        values = sigma.detach().reshape(-1).cpu().numpy()
        js = [int(np.abs(v - self.us).argmin()) for v in values]
        t = torch.tensor([len(self.us) - 1 - j for j in js], dtype=torch.long)
        s = torch.tensor([self.us[j] for j in js], dtype=torch.float32).reshape(-1, 1, 1, 1)
        return t, s

    def denoise(self, z: torch.Tensor, sigma: torch.Tensor, pose_code: torch.Tensor) -> Denoised:
        """Official ``denoise_objaverse`` of noisy latents ``z`` (B, 4, h, w) at levels ``sigma``."""
        t, s = self.snap(sigma)
        t, s = t.to(z.device), s.to(z.device)
        x_in = z / torch.sqrt(1 + s**2)
        eps_u, eps_c, eps = self._eps(x_in, t, pose_code, self.guidance_scale)
        return Denoised(z - s * eps, eps_u, eps_c, eps, t, s, x_in)

    def gradient(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, pose_code: torch.Tensor):
        """The SJC gradient at the render ``y`` (B, 4, h, w), averaged over the batch.

        Returns:
            ``(g, denoised)``: ``g`` (1, 4, h, w) to be applied as ``y.backward(-g)``, and the :class:`Denoised`.
        """
        y = y.detach()
        sigma = sigma.to(y.device)
        z = y + sigma * noise.to(y.device)
        out = self.denoise(z, sigma, pose_code)
        g = (out.denoised - (y if self.var_red else z)) / sigma
        return g.mean(0, keepdim=True), out


def ramp(spec: float | Sequence[float], step: int) -> float:
    """threestudio's ``C()``: a number, or ``[start_step, v0, v1, end_step]`` (linear from v0 to v1 between the
    steps, constant outside), extended to ``[s0, v0, v1, s1, v2, s2, ...]`` for several linear pieces."""
    if isinstance(spec, (int, float)):
        return float(spec)
    spec = [float(x) for x in spec]
    if len(spec) < 4 or (len(spec) - 4) % 2:
        raise ValueError(f"a ramp is a number or [start_step, v0, v1, end_step, (v, step)...], got {spec}")
    points = [(spec[0], spec[1]), (spec[3], spec[2])] + [(spec[i + 1], spec[i]) for i in range(4, len(spec), 2)]
    if step <= points[0][0]:
        return points[0][1]
    for (s0, v0), (s1, v1) in zip(points, points[1:]):
        if step <= s1:
            return v0 + (v1 - v0) * (step - s0) / max(s1 - s0, 1e-12)
    return points[-1][1]


class SDSScore(_Conditioned):
    """threestudio's Zero123 SDS guidance (``Zero123Guidance``; Stable Zero123 only changes the pose code).

    Defaults of ``configs/zero123.yaml``: guidance 3, ``min_step_percent [0, 0.4, 0.2, 200]``,
    ``max_step_percent [0, 0.85, 0.5, 200]``, weight ``1 - abar_t``.
    """

    def __init__(self, model: Zero123Model, guidance_scale: float = 3.0,
                 min_step_percent=(0, 0.4, 0.2, 200), max_step_percent=(0, 0.85, 0.5, 200)):
        super().__init__(model)
        self.guidance_scale = float(guidance_scale)
        self.min_step_percent, self.max_step_percent = min_step_percent, max_step_percent
        self.alphas_cumprod = model.alphas_cumprod.detach().float().cpu()
        self.num_train_timesteps = len(self.alphas_cumprod)

    def step_range(self, step: int) -> tuple[int, int]:
        n = self.num_train_timesteps
        return int(n * ramp(self.min_step_percent, step)), int(n * ramp(self.max_step_percent, step))

    def encode(self, rgb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) renders in [0, 1] -> scaled latents (posterior sample), differentiable."""
        size = self.model.cfg.vae.sample_size
        x = torch.nn.functional.interpolate(rgb, (size, size), mode="bilinear", align_corners=False) * 2 - 1
        dist = self.model.vae.encode(x.to(self.model.vae.dtype)).latent_dist
        eps = torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device, dist.mean.dtype)
        return (dist.mean + dist.std * eps).float() * self.model.cfg.scale_factor

    def grad(self, latents: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, pose_code: torch.Tensor):
        """``(1 - abar_t)(eps_hat - eps)`` for latents z (B, 4, h, w) at timesteps t (B,), and ``eps_hat``."""
        abar = self.alphas_cumprod.to(latents.device)[t].reshape(-1, 1, 1, 1)
        x_t = abar.sqrt() * latents.detach() + (1 - abar).sqrt() * noise
        _, _, eps = self._eps(x_t, t, pose_code, self.guidance_scale)
        return torch.nan_to_num((1 - abar) * (eps - noise)), eps

    def loss(self, rgb: torch.Tensor, pose_code: torch.Tensor, step: int,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """SDS loss of renders ``rgb`` (B, 3, H, W) in [0, 1] at ``step`` (gradient = grad / B on the latents)."""
        z = self.encode(rgb, generator)
        b = z.shape[0]
        lo, hi = self.step_range(step)
        t = torch.randint(lo, hi + 1, (b,), generator=generator).to(z.device)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        g, _ = self.grad(z, t, noise, pose_code)
        target = (z - g).detach()
        loss = 0.5 * ((z - target) ** 2).sum() / b
        return loss, {"t": t.tolist(), "grad_norm": float(g.norm())}
