"""Ray sampling for training (spec section 11.2): uniform pixels plus pixels drawn from the foreground."""
from __future__ import annotations

import torch

from data.cameras import Cameras


def sample_pixels(
    mask: torch.Tensor,
    num_uniform: int = 128,
    num_foreground: int = 384,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick training pixels of one target view.

    ``num_uniform`` pixels uniformly over the image, then ``num_foreground`` uniformly (with replacement)
    among the foreground pixels of ``mask``. When the view has no foreground pixel, those are drawn uniformly
    over the image as well, so the ray count is always ``num_uniform + num_foreground``.

    Args:
        mask: (H, W) foreground (bool or float > 0.5 = foreground).
        generator: optional torch generator (sampling happens on ``mask.device``'s CPU generator semantics).

    Returns:
        (R, 2) long pixel coordinates (u = column, v = row), R = num_uniform + num_foreground.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {tuple(mask.shape)}")
    h, w = mask.shape
    dev = mask.device
    flat = torch.randint(0, h * w, (num_uniform,), generator=generator, device="cpu")
    fg = torch.nonzero(mask.reshape(-1).cpu() > 0.5).reshape(-1)
    if num_foreground > 0:
        if fg.numel() > 0:
            pick = torch.randint(0, fg.numel(), (num_foreground,), generator=generator, device="cpu")
            flat = torch.cat([flat, fg[pick]])
        else:
            flat = torch.cat([flat, torch.randint(0, h * w, (num_foreground,), generator=generator, device="cpu")])
    return torch.stack([flat % w, flat // w], -1).to(dev)


def gather_pixels(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Values of a (C, H, W) image at (R, 2) integer (u, v) pixels -> (R, C)."""
    return image[:, pixels[:, 1], pixels[:, 0]].T


def pixel_rays_unit(camera: Cameras, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of one camera through integer pixel coordinates (no half-pixel shift, as the official loader).

    Args:
        camera: a 1-camera batch (any frame; the rays come out in that frame).
        pixels: (R, 2) (u, v).

    Returns:
        origins (R, 3) and **unit-length** directions (R, 3), in ``camera.c2w``'s dtype.
    """
    if len(camera) != 1:
        raise ValueError(f"expected a single camera, got {len(camera)}")
    origins, dirs = camera.pixel_rays(pixels[None].to(camera.c2w.dtype))
    dirs = dirs[0] / dirs[0].norm(dim=-1, keepdim=True)
    return origins[0], dirs
