"""Render folders on disk: what ``python -m data.render`` writes and :func:`load_render` reads back.

Layout of a render folder (written whole, via :func:`data.io.atomic_directory`)::

    <name>.png         RGB on the background, 8 bit (so :meth:`data.views.Views.load` reads the folder)
    <name>_mask.png    alpha / coverage, 8 bit
    <name>_depth.npy   float32 (H, W) z-depth along the optical axis, world units, 0 = background
    <name>_normal.png  world-frame normals encoded as (n + 1) / 2, 8 bit (black = background)
    cameras.json       Views' schema (OpenCV c2w, K per view) plus OpenGL c2w and spherical angles, the
                       mesh path, its up axis and the render config
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data.cameras import Cameras
from data.io import atomic_directory
from data.render.rasterizer import RenderOutput


def _png(path: Path, chw: torch.Tensor) -> None:
    arr = (chw.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def write_render_files(folder: Path, out: RenderOutput, names: list[str]) -> None:
    """Write the per-view image files of ``out`` into an existing ``folder`` (no cameras.json)."""
    for i, name in enumerate(names):
        _png(folder / f"{name}.png", out.rgb[i])
        _png(folder / f"{name}_mask.png", out.alpha[i])
        np.save(folder / f"{name}_depth.npy", out.depth[i, 0].cpu().numpy().astype(np.float32))
        if out.normals is not None:
            _png(folder / f"{name}_normal.png", (out.normals[i] + 1.0) / 2.0 * (out.alpha[i] > 0))


def cameras_meta(cameras: Cameras, names: list[str]) -> dict:
    """The cameras.json dictionary (a superset of :meth:`data.views.Views.save`'s)."""
    cams = cameras.to("cpu", torch.float64)
    polar, azimuth, radius = cams.spherical()
    return {
        "source": "render",
        "width": cams.width,
        "height": cams.height,
        "views": [
            {
                "name": n,
                "c2w_opencv": cams.c2w[i].tolist(),
                "c2w_opengl": cams.c2w_opengl[i].tolist(),
                "intrinsics": cams.intrinsics[i].tolist(),
                "polar_deg": float(polar[i]),
                "azimuth_deg": float(azimuth[i]),
                "radius": float(radius[i]),
            }
            for i, n in enumerate(names)
        ],
    }


def save_render(out: RenderOutput, directory: str | Path, names: list[str] | None = None, **info) -> Path:
    """Write a render folder atomically; ``info`` (JSON-able, dataclasses allowed) is stored in cameras.json."""
    names = list(names) if names else [f"{i:03d}" for i in range(len(out))]
    if len(names) != len(out):
        raise ValueError(f"{len(names)} names for {len(out)} renders")
    meta = cameras_meta(out.cameras, names)
    meta.update({k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in info.items()})
    with atomic_directory(directory) as tmp:
        write_render_files(tmp, out, names)
        (tmp / "cameras.json").write_text(json.dumps(meta, indent=1))
    return Path(directory)


def load_cameras(directory: str | Path) -> tuple[Cameras, list[str]]:
    """Cameras and view names stored in ``directory/cameras.json``."""
    meta = json.loads((Path(directory) / "cameras.json").read_text())
    views = meta["views"]
    cams = Cameras(
        torch.tensor([v["c2w_opencv"] for v in views], dtype=torch.float64),
        torch.tensor([v["intrinsics"] for v in views], dtype=torch.float64),
        meta["width"],
        meta["height"],
    )
    return cams, [v["name"] for v in views]


def load_render(directory: str | Path) -> tuple[RenderOutput, list[str]]:
    """Read a render folder back (8-bit colour, mask and normals; exact float32 depth)."""
    directory = Path(directory)
    cams, names = load_cameras(directory)

    def img(path: Path) -> torch.Tensor:
        a = np.asarray(Image.open(path), np.float32) / 255.0
        return torch.from_numpy(a[..., None] if a.ndim == 2 else a).permute(2, 0, 1)

    rgb = torch.stack([img(directory / f"{n}.png")[:3] for n in names])
    alpha = torch.stack([img(directory / f"{n}_mask.png") for n in names])
    depth = torch.stack([torch.from_numpy(np.load(directory / f"{n}_depth.npy"))[None] for n in names])
    normals = None
    if all((directory / f"{n}_normal.png").exists() for n in names):
        enc = torch.stack([img(directory / f"{n}_normal.png") for n in names])
        normals = torch.nn.functional.normalize(enc * 2.0 - 1.0, dim=1) * (alpha > 0)
    return RenderOutput(rgb, alpha, depth, normals, cams), names
