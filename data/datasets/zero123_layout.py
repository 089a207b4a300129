"""Zero123's view dataset: random views over the whole sphere, the official Objaverse render layout.

Per object folder (what the official ``ObjaverseData`` reads)::

    000.png ... {V-1:03d}.png   RGBA (straight alpha, transparent background), image_size^2 (512 officially)
    000.npy ... {V-1:03d}.npy   3x4 world-to-camera [R | t] in Blender's camera convention (looks along -z)
    meta.json                   object id, asset, up axis, light, intrinsics, seed (extra; ignored officially)

Official sampling (spec section 4.1): camera direction = a uniform sample of the cube [-1, 1]^3, normalised (not
uniform on the sphere); radius U(1.5, 2.2); FOV 49.134 deg (35 mm lens, 32 mm sensor); one area light per object
at x, y ~ U(-1, 1), z ~ U(0.5, 1.5), energy U(300, 600). Objects keep the official scale (longest bounding-box side
:data:`~data.conventions.OBJECT_BBOX_SIZE`, ``framing="bbox"``): at radius 1.5 with this FOV a box of side 1 seen
along a diagonal can reach past the image border, so a few views of elongated or cubic objects are cut by the
frame. That is the official data's property too (its Objaverse renders use the same numbers), kept on purpose.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import conventions as conv
from data.cameras import Cameras
from data.render.backends import AreaLight
from data.render.rasterizer import RenderOutput

#: 2 atan(16 / 35) in degrees: the 35 mm lens on a 32 mm sensor of the official render script.
ZERO123_FOV_DEG = float(np.rad2deg(2.0 * np.arctan(16.0 / 35.0)))


@dataclass
class Zero123LayoutConfig:
    """Zero123 pairs dataset settings (defaults: the official render script)."""

    num_views: int = 12
    image_size: int = 512
    fov_deg: float = ZERO123_FOV_DEG
    radius_min: float = 1.5
    radius_max: float = 2.2
    light_xy: float = 1.0
    light_z_min: float = 0.5
    light_z_max: float = 1.5
    light_energy_min: float = 300.0
    light_energy_max: float = 600.0


def sample_zero123_views(cfg: Zero123LayoutConfig, rng: np.random.Generator) -> tuple[Cameras, AreaLight]:
    """Cameras (float64, OpenCV, looking at the origin, +z up) and the object's light."""
    directions = np.zeros((0, 3))
    while len(directions) < cfg.num_views:  # reject the (measure-zero) near-vertical or zero vectors
        d = rng.uniform(-1.0, 1.0, size=(cfg.num_views, 3))
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        ok = (norm[:, 0] > 1e-3) & (np.linalg.norm(d[:, :2], axis=1) > 1e-3 * norm[:, 0])
        directions = np.concatenate([directions, d[ok] / norm[ok]])[: cfg.num_views]
    radius = rng.uniform(cfg.radius_min, cfg.radius_max, size=cfg.num_views)
    c2w_gl = conv.look_at_c2w_opengl(torch.from_numpy(directions * radius[:, None]))
    k = conv.intrinsics_matrix(conv.fov_to_focal(cfg.fov_deg, cfg.image_size), cfg.image_size)
    cameras = Cameras.from_opengl(c2w_gl, k, cfg.image_size, cfg.image_size)
    return cameras, sample_area_light(cfg, rng)


def sample_area_light(cfg: Zero123LayoutConfig, rng: np.random.Generator) -> AreaLight:
    """The official per-object light: position x, y ~ U(-1, 1), z ~ U(0.5, 1.5), energy U(300, 600)."""
    xy = rng.uniform(-cfg.light_xy, cfg.light_xy, size=2)
    z = rng.uniform(cfg.light_z_min, cfg.light_z_max)
    energy = rng.uniform(cfg.light_energy_min, cfg.light_energy_max)
    return AreaLight((float(xy[0]), float(xy[1]), float(z)), float(energy))


def blender_w2c(cameras: Cameras) -> np.ndarray:
    """(N, 3, 4) world-to-camera ``[R | t]`` in Blender's camera axes (what the official ``NNN.npy`` holds)."""
    return torch.linalg.inv(cameras.to("cpu", torch.float64).c2w_opengl)[:, :3, :].numpy()


def cameras_from_blender_w2c(w2c: np.ndarray, intrinsics: torch.Tensor, size: int) -> Cameras:
    """Inverse of :func:`blender_w2c` for one shared K (3, 3)."""
    w2c = torch.as_tensor(np.asarray(w2c, np.float64))
    full = torch.eye(4, dtype=torch.float64).repeat(len(w2c), 1, 1)
    full[:, :3, :] = w2c
    return Cameras.from_opengl(torch.linalg.inv(full), intrinsics.to(torch.float64), size, size)


def straight_rgba(out: RenderOutput, index: int) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA of view ``index`` (undo the compositing on the white background)."""
    rgb, alpha = out.rgb[index].double(), out.alpha[index].double()
    straight = torch.where(alpha > 0, (rgb - (1.0 - alpha)) / alpha.clamp_min(1e-6), torch.zeros_like(rgb))
    rgba = torch.cat([straight.clamp(0, 1), alpha], 0).permute(1, 2, 0).numpy()
    return (rgba * 255.0 + 0.5).astype(np.uint8)


def write_zero123_object(folder: Path, out: RenderOutput, light: AreaLight, meta: dict) -> None:
    """Write one object's views into an (empty, temporary) ``folder``."""
    w2c = blender_w2c(out.cameras)
    for i in range(len(out)):
        Image.fromarray(straight_rgba(out, i)).save(folder / f"{i:03d}.png")
        np.save(folder / f"{i:03d}.npy", w2c[i])
    k = out.cameras.intrinsics[0].tolist()
    meta = {**meta, "layout": "zero123", "num_views": len(out), "intrinsics": k, "light": asdict(light)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def is_complete_zero123(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


def read_zero123_object(folder: Path) -> tuple[int, Cameras]:
    """Number of views and their cameras (OpenCV) from an object folder."""
    meta = json.loads((folder / "meta.json").read_text())
    n = int(meta["num_views"])
    w2c = np.stack([np.load(folder / f"{i:03d}.npy") for i in range(n)])
    k = torch.tensor(meta["intrinsics"], dtype=torch.float64)
    size = int(round(float(k[0, 2]) * 2))
    return n, cameras_from_blender_w2c(w2c, k, size)
