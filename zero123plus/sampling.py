"""The Zero123++ sampling loop: Euler-ancestral over v-predictions, CFG in one batched call, official RNG streams.

Randomness (spec section 8, fixtures README section 2), per input image i, from two CPU generators:

* ``reference[i]`` (the official *global* RNG, ``torch.manual_seed``): the VAE posterior sample of the input,
  then (with CFG) of the zero image, then at every step the reference noise of ``[uncond_i, cond_i]`` at once;
* ``sampling[i]`` (the official ``generator``): the initial latent (x ``init_noise_sigma``) and every ancestral
  step's noise.

Seeding both like the official call (``torch.manual_seed(a)``; ``generator=Generator().manual_seed(b)``) replays
an official single-image run draw for draw; an image's result does not depend on the other images of its batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from zero123plus.model import Zero123PlusModel


@dataclass
class NoiseStreams:
    """Per-image generators of the two official random streams (see the module docstring)."""

    reference: list[torch.Generator]
    sampling: list[torch.Generator]

    @classmethod
    def from_seeds(cls, reference_seeds: list[int], sampling_seeds: list[int]) -> "NoiseStreams":
        if len(reference_seeds) != len(sampling_seeds):
            raise ValueError("one reference seed and one sampling seed per image")
        return cls([torch.Generator("cpu").manual_seed(int(s)) for s in reference_seeds],
                   [torch.Generator("cpu").manual_seed(int(s)) for s in sampling_seeds])

    def __len__(self) -> int:
        return len(self.sampling)

    def reference_draw(self, rows_per_image: int, shape: tuple[int, ...]) -> torch.Tensor:
        """(rows * B, *shape) N(0, I): image i draws its ``rows`` rows at once; returned row-major by row kind
        (``[uncond_1..B, cond_1..B]`` for rows = 2), the official CFG batch order."""
        per_image = [torch.randn((rows_per_image, *shape), generator=g) for g in self.reference]
        return torch.stack(per_image, 1).reshape(rows_per_image * len(self), *shape)

    def sampling_draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        """(B, *shape) N(0, I), row i from image i's sampling generator."""
        return torch.cat([torch.randn((1, *shape), generator=g) for g in self.sampling])


@dataclass
class Conditioning:
    """What the denoiser sees for B images (CFG: 2B rows ``[uncond, cond]``).

    Attributes:
        context: (R,77,D) cross-attention states (uncond rows: the empty-prompt states without image term).
        ref_latents: (R,4,64,64) raw reference latents (uncond rows: the zero image's posterior sample).
        control: optional (1 or R, 3, H, W) ControlNet image in [-1, 1].
    """

    context: torch.Tensor
    ref_latents: torch.Tensor
    control: Optional[torch.Tensor] = None


def sample(
    model: Zero123PlusModel,
    scheduler,
    cond: Conditioning,
    noise: NoiseStreams,
    latent_shape: tuple[int, int, int],
    num_inference_steps: int,
    guidance_scale: float,
    control_scale: float = 1.0,
    on_step: Optional[Callable[[dict], None]] = None,
) -> torch.Tensor:
    """Euler-ancestral sampling; returns the final (B,4,h,w) latents in the scaled diffusion space.

    ``on_step(record)`` gets every step's tensors (``t``, ``sigma``, ``unet_input``, ``ref_noise``,
    ``reference``, ``v``, ``guided_v``, ``latents_before``, ``latents_after``, ``pred_x0``) for progress bars and
    parity tests.
    """
    cfg = guidance_scale > 1.0
    rows = 2 if cfg else 1
    b = len(noise)
    device = cond.context.device
    scheduler.set_timesteps(num_inference_steps, device="cpu")
    latents = noise.sampling_draw(latent_shape).to(device) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_in = torch.cat([latents] * rows) if cfg else latents
        x_in = scheduler.scale_model_input(x_in, t)
        sigma = scheduler.sigmas[scheduler.step_index]
        ref_noise = noise.reference_draw(rows, tuple(cond.ref_latents.shape[1:])).to(device)
        reference = model.noised_reference(cond.ref_latents, ref_noise, sigma)
        v = model.predict_v(x_in, t, cond.context, reference, cond.control, control_scale).to(latents.dtype)
        if cfg:
            v_u, v_c = v.chunk(2)
            guided = v_u + guidance_scale * (v_c - v_u)
        else:
            guided = v
        before = latents
        out = scheduler.step(guided, t, latents, generator=noise.sampling)
        latents = out.prev_sample
        if on_step is not None:
            on_step(dict(t=t, sigma=sigma, unet_input=x_in, ref_noise=ref_noise, reference=reference, v=v,
                         guided_v=guided, latents_before=before, latents_after=latents,
                         pred_x0=out.pred_original_sample))
    return latents
