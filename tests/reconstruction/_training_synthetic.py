"""Analytic test objects for the training tests: a two-coloured sphere seen by the official 8 + 32 rig."""
from __future__ import annotations

import torch

from data import layout
from data.cameras import Cameras
from data.datasets.one2345_official import TrainingObject
from data.views import Views

RADIUS = 0.3


def rig(polar_deg: float, size: int) -> Cameras:
    cams = layout.cameras_for(layout.schedule(polar_deg))
    k = cams.intrinsics.clone()
    k[:, :2] *= size / cams.width
    return Cameras(cams.c2w, k, size, size)


def render_sphere(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact ray casting of a sphere (upper half red, lower half blue, on white): rgb, mask, z-depth."""
    n, s = len(cams), cams.width
    v, u = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    pix = torch.stack([u, v], -1).reshape(1, -1, 2).float().expand(n, -1, -1)
    o, d = cams.pixel_rays(pix)
    dn = d / d.norm(dim=-1, keepdim=True)
    b = (o * dn).sum(-1)
    disc = b ** 2 - (o * o).sum(-1) + RADIUS ** 2
    hit = disc > 0
    t = -b - disc.clamp_min(0).sqrt()
    p = o + t[..., None] * dn
    red = torch.tensor([0.9, 0.2, 0.1])
    blue = torch.tensor([0.1, 0.3, 0.9])
    colour = torch.where((p[..., 2:] > 0), red, blue)
    rgb = torch.where(hit[..., None], colour, torch.ones(3))
    z = t * (dn * cams.c2w[:, None, :3, 2]).sum(-1)
    shape = (n, s, s)
    return (rgb.reshape(n, s, s, 3).permute(0, 3, 1, 2).contiguous(), hit.reshape(shape)[:, None].float(),
            (z * hit).reshape(shape)[:, None])


def sphere_object(polar_deg: float = 70.0, size: int = 32) -> TrainingObject:
    cams = rig(polar_deg, size)
    rgb, mask, depth = render_sphere(cams)
    main, near = slice(0, 8), slice(8, 40)
    return TrainingObject("sphere", Views(rgb[main], cams[main], mask[main]), depth[main],
                          Views(rgb[near], cams[near], mask[near]))


class SphereReader:
    """ObjectReader over ``n`` sphere rigs at different polar angles (GT and predicted sources identical)."""

    def __init__(self, n: int = 2, size: int = 32):
        self.objects = [sphere_object(60.0 + 15.0 * i, size) for i in range(n)]

    def __len__(self) -> int:
        return len(self.objects)

    def load(self, index: int, source_kind: str = "predicted") -> TrainingObject:
        return self.objects[index]
