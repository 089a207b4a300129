"""Zero123++ training data: per object, conditioning views at random poses and, for each, its six target views at
the variant's fixed poses (:func:`data.layout.zero123plus_cameras`) tiled into the 3x2 grid.

Zero123++'s target azimuths are relative to the input's, its elevations absolute (spec sections 2 and 10), so each
conditioning view has its own grid. Per object folder::

    cond_{k:02d}.png   RGBA (straight alpha, transparent background), the conditioning view k (tile_size^2)
    grid_{k:02d}.png   RGB, 3 rows x 2 columns of tile_size^2 views on the variant's background grey level,
                       view j at tile (j // 2, j % 2), azimuth = conditioning azimuth + 30 + 60 j
    meta.json          object id, asset, light, pose set, per sample the conditioning camera and the six target
                       cameras (OpenCV c2w, K), background

Conditioning poses (InstantMesh#114: azimuth 0-360, elevation -20..45 deg, distance 2.5-5 at radius 4): azimuth
U(0, 360), elevation U(``cond_elevation_min``, ``cond_elevation_max``), radius U(0.625, 1.25) x the table radius,
the table's FOV. Objects are framed like a preprocessed input (``framing="rig"``), which the table's radius keeps.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from data import conventions as conv
from data.cameras import Cameras
from data.layout import ZERO123PLUS_FOV_DEG, tile_grid, zero123plus_cameras, zero123plus_radius
from data.render.backends import AreaLight
from data.render.rasterizer import RenderOutput


@dataclass
class Zero123PlusLayoutConfig:
    """Zero123++ dataset settings (defaults: v1.2 poses at the real 320 px tiles, InstantMesh's white background)."""

    pose_set: str = "v1.2"
    tile_size: int = 320
    #: Grey level of the targets' background: 255 (InstantMesh's fine-tune) or 127 (the official pipeline's).
    background: int = 255
    #: Conditioning views per object (each with its own target grid).
    num_samples: int = 2
    cond_elevation_min: float = -20.0
    cond_elevation_max: float = 45.0
    cond_radius_min_factor: float = 0.625
    cond_radius_max_factor: float = 1.25

    def __post_init__(self) -> None:
        if self.pose_set not in ZERO123PLUS_FOV_DEG:
            raise ValueError(f"zero123plus.pose_set must be one of {sorted(ZERO123PLUS_FOV_DEG)}, got {self.pose_set!r}")
        if not 0 <= self.background <= 255:
            raise ValueError(f"zero123plus.background must be a grey level 0..255, got {self.background}")
        if self.num_samples < 1 or self.tile_size < 8:
            raise ValueError("zero123plus.num_samples must be >= 1 and tile_size >= 8")


def sample_zero123plus_views(cfg: Zero123PlusLayoutConfig, rng: np.random.Generator) -> tuple[Cameras, list[dict]]:
    """Cameras (float64, OpenCV) of all samples, ``[cond_0, six targets of 0, cond_1, ...]``, and per-sample poses."""
    r0 = zero123plus_radius(cfg.pose_set)
    focal = conv.fov_to_focal(ZERO123PLUS_FOV_DEG[cfg.pose_set], cfg.tile_size)
    cams, poses = [], []
    for _ in range(cfg.num_samples):
        az = float(rng.uniform(0.0, 360.0))
        elev = float(rng.uniform(cfg.cond_elevation_min, cfg.cond_elevation_max))
        radius = float(rng.uniform(cfg.cond_radius_min_factor, cfg.cond_radius_max_factor) * r0)
        cams.append(Cameras.from_spherical([conv.elevation_to_polar_deg(elev)], [az], radius, focal_px=focal,
                                           size_px=cfg.tile_size, dtype=torch.float64))
        cams.append(zero123plus_cameras(cfg.pose_set, az, cfg.tile_size, dtype=torch.float64))
        poses.append({"cond_azimuth_deg": az, "cond_elevation_deg": elev, "cond_radius": radius})
    return Cameras.cat(cams), poses


def straight_rgba(out: RenderOutput, index: int) -> np.ndarray:
    """(H, W, 4) float64 straight-alpha RGBA in [0, 1] of view ``index`` (the renders are composited on white)."""
    rgb, alpha = out.rgb[index].double(), out.alpha[index].double()
    straight = torch.where(alpha > 0, (rgb - (1.0 - alpha)) / alpha.clamp_min(1e-6), torch.zeros_like(rgb))
    return torch.cat([straight.clamp(0, 1), alpha], 0).permute(1, 2, 0).numpy()


def write_zero123plus_object(folder, out: RenderOutput, poses: list[dict], cfg: Zero123PlusLayoutConfig,
                             light: AreaLight, meta: dict) -> None:
    """Write one object's samples into an (empty, temporary) ``folder``."""
    bg = cfg.background / 255.0
    samples = []
    for k, pose in enumerate(poses):
        first = 7 * k
        rgba = straight_rgba(out, first)
        Image.fromarray((rgba * 255.0 + 0.5).astype(np.uint8), "RGBA").save(folder / f"cond_{k:02d}.png")
        tiles = []
        for j in range(first + 1, first + 7):
            v = straight_rgba(out, j)
            tiles.append(torch.from_numpy(v[..., :3] * v[..., 3:] + bg * (1.0 - v[..., 3:])).permute(2, 0, 1))
        grid = tile_grid(torch.stack(tiles)).permute(1, 2, 0).numpy()
        Image.fromarray((grid * 255.0 + 0.5).astype(np.uint8), "RGB").save(folder / f"grid_{k:02d}.png")
        cams = out.cameras[first: first + 7]
        samples.append({**pose, "cond": {"c2w_opencv": cams.c2w[0].tolist(), "intrinsics": cams.intrinsics[0].tolist()},
                        "targets": [{"c2w_opencv": c.tolist()} for c in cams.c2w[1:]],
                        "target_intrinsics": cams.intrinsics[1].tolist()})
    meta = {**meta, "layout": "zero123plus", "num_samples": len(poses), "pose_set": cfg.pose_set,
            "tile_size": cfg.tile_size, "background": cfg.background, "light": asdict(light), "samples": samples}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
