"""Two render backends behind one interface, used by the dataset generator.

* :class:`CpuBackend` -- the pyrender rasteriser of this package (fast; tests and small runs).
* :class:`BlenderBackend` -- Cycles through ``scripts/blender/render_views.py``, run by any Blender >= 4
  (``blender -b -P``) or by a Python with the ``bpy`` wheel (the project's ``.venv-blender``). The mesh, texture,
  cameras and light are handed over in a job folder; Blender returns RGBA PNGs.

Both return :class:`RenderOutput`. Depth (and normals) are geometric quantities: the CPU backend reads them from
its depth buffer at pixel centres, the Blender backend computes them by exact ray casting of the very mesh Blender
rendered (no Cycles depth pass: a 1-sample pass would be no more exact, and Blender 5 changed the compositor API).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from data.cameras import Cameras
from data.mesh import Mesh
from data.render.config import RenderConfig
from data.render.normals import corner_normals
from data.render.rasterizer import MeshRenderer, RenderOutput

REPO_ROOT = Path(__file__).resolve().parents[2]
BLENDER_SCRIPT = REPO_ROOT / "scripts" / "blender" / "render_views.py"
BLENDER_VENV_PYTHON = REPO_ROOT / ".venv-blender" / "bin" / "python"
BACKENDS = ("cpu", "blender")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine (the message says how to install it)."""


@dataclass(frozen=True)
class AreaLight:
    """The Zero123 / Objaverse light: one large square area light pointing down (-z).

    Attributes:
        position: (3,) world position (x, y in [-1, 1], z in [0.5, 1.5] in the official sampler).
        energy: Blender watts (300-600 officially).
        size: side length in world units (the official scene scales a unit light by 100).
    """

    position: tuple[float, float, float] = (0.0, 0.0, 1.0)
    energy: float = 450.0
    size: float = 100.0


@dataclass
class BlenderConfig:
    """Settings of the Blender backend.

    Attributes:
        executable: ``blender`` binary or a Python with ``bpy``; empty = ``$ONE2345_BLENDER``, else the project's
            ``.venv-blender/bin/python``, else ``blender`` on the PATH.
        samples: Cycles samples per pixel (Zero123's script: 128).
        denoise: OpenImageDenoise after sampling.
        filter_width: pixel filter width in pixels (Zero123's script: 0.01).
        view_transform: colour management view transform (``Standard`` keeps texture colours as stored).
        exposure: view exposure in stops. Measured here with Blender 5.0.1: under the official light (a 100 m
            area light of 300-600 W about 1 m above the object) an upward-facing surface renders at ~6 % of its
            albedo (linear) at exposure 0; +4 stops (x16) brings it near the albedo.
        threads: CPU threads for Cycles (0 = all).
        timeout_s: kill Blender after this many seconds per object.
        roughness: Principled BSDF roughness of the flattened material.
    """

    executable: str = ""
    samples: int = 64
    denoise: bool = False
    filter_width: float = 1.5
    view_transform: str = "Standard"
    exposure: float = 4.0
    threads: int = 0
    timeout_s: float = 1800.0
    roughness: float = 0.8


@dataclass
class BackendConfig:
    """Which backend and its settings (``cpu`` uses :class:`RenderConfig`)."""

    name: str = "cpu"
    cpu: RenderConfig = field(default_factory=lambda: RenderConfig(light="world", normals=False))
    blender: BlenderConfig = field(default_factory=BlenderConfig)

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.name!r}")


class RenderBackend(Protocol):
    """What the dataset generator needs from a backend."""

    name: str

    def render(self, mesh: Mesh, cameras: Cameras, light: AreaLight | None = None,
               with_depth: bool = True) -> RenderOutput:
        """Colour on white + alpha for every camera; z-depth (world units, 0 = background) if ``with_depth``."""
        ...


class CpuBackend:
    """pyrender on the CPU; the area light becomes a directional light from its position towards the origin."""

    name = "cpu"

    def __init__(self, config: RenderConfig | None = None):
        self.config = config or RenderConfig(light="world", normals=False)

    def render(self, mesh: Mesh, cameras: Cameras, light: AreaLight | None = None,
               with_depth: bool = True) -> RenderOutput:
        """Render ``cameras``; depth always comes with the rasterisation (``with_depth`` is for the interface)."""
        cfg = self.config
        if light is not None and cfg.light == "world":
            direction = [-float(c) for c in light.position]
            cfg = RenderConfig(**{**cfg.__dict__, "light_direction": direction})
        with MeshRenderer(mesh, cfg) as renderer:
            return renderer.render(cameras)


def find_blender(executable: str = "") -> list[str]:
    """Command prefix that runs the Blender script: ``[python, script]`` or ``[blender, -b, -P, script]``."""
    # The bpy venv counts only once `make blender-venv` finished (its stamp is written after `import bpy` worked).
    venv_ready = (BLENDER_VENV_PYTHON.parent.parent / ".installed").is_file()
    candidates = [executable] if executable else [os.environ.get("ONE2345_BLENDER", ""),
                                                  str(BLENDER_VENV_PYTHON) if venv_ready else "", "blender"]
    for exe in candidates:
        if not exe:
            continue
        path = shutil.which(exe) or (exe if Path(exe).is_file() else None)
        if path is None:
            continue
        if Path(path).name.startswith("python"):
            return [path, str(BLENDER_SCRIPT), "--"]
        return [path, "-b", "--factory-startup", "-noaudio", "-P", str(BLENDER_SCRIPT), "--"]
    raise BackendUnavailableError(
        "no Blender found: build the bpy venv with `make blender-venv` (bpy==5.0.1, Python 3.11), install "
        "Blender >= 4 and put `blender` on the PATH, or point ONE2345_BLENDER / blender.executable at either"
    )


def write_blender_job(folder: Path, mesh: Mesh, cameras: Cameras, light: AreaLight, cfg: BlenderConfig,
                      crease_deg: float = 60.0) -> Path:
    """Write ``mesh.npz`` (+ ``texture.png``) and ``job.json`` for the Blender script; returns the job file."""
    verts = mesh.vertices.detach().cpu().numpy().astype(np.float32)
    faces = mesh.faces.cpu().numpy().astype(np.int32)
    arrays = {"vertices": verts, "faces": faces,
              "corner_normals": corner_normals(verts, faces, crease_deg).astype(np.float32)}
    if mesh.uv is not None and mesh.texture is not None:
        arrays["corner_uv"] = mesh.uv.detach().cpu().numpy().astype(np.float32)[faces]
        Image.fromarray(np.ascontiguousarray(mesh.texture[..., :3])).save(folder / "texture.png")
    elif mesh.vertex_colors is not None:
        arrays["vertex_colors"] = mesh.vertex_colors.detach().cpu().numpy().astype(np.float32)
    np.savez(folder / "mesh.npz", **arrays)
    cams = cameras.to("cpu", torch.float64)
    job = {
        "mesh": "mesh.npz",
        "texture": "texture.png" if "corner_uv" in arrays else None,
        "width": cams.width,
        "height": cams.height,
        "views": [{"name": f"{i:03d}", "c2w_opengl": c.tolist(), "intrinsics": k.tolist()}
                  for i, (c, k) in enumerate(zip(cams.c2w_opengl, cams.intrinsics))],
        "light": {"position": list(light.position), "energy": light.energy, "size": light.size},
        "settings": cfg.__dict__,
        "output": "renders",
    }
    path = folder / "job.json"
    path.write_text(json.dumps(job, indent=1))
    return path


def straight_rgba_to_output(rgba: np.ndarray, background=(1.0, 1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W, 4) uint8 straight-alpha RGBA -> rgb (N, 3, H, W) composited on ``background``, alpha (N, 1, H, W)."""
    t = torch.from_numpy(rgba).permute(0, 3, 1, 2).float() / 255.0
    alpha = t[:, 3:4]
    bg = torch.tensor(background, dtype=torch.float32)[None, :, None, None]
    return t[:, :3] * alpha + bg * (1.0 - alpha), alpha


class BlenderBackend:
    """Cycles in a separate process (its own venv or a Blender install)."""

    name = "blender"

    def __init__(self, config: BlenderConfig | None = None, crease_deg: float = 60.0):
        self.config = config or BlenderConfig()
        self.command = find_blender(self.config.executable)
        self.crease_deg = crease_deg

    def render(self, mesh: Mesh, cameras: Cameras, light: AreaLight | None = None,
               with_depth: bool = True) -> RenderOutput:
        """Render ``cameras`` in Cycles; ``with_depth`` adds ray-cast depth and normals (else zeros / None)."""
        from data.render.raycast import RayCaster

        light = light or AreaLight()
        with tempfile.TemporaryDirectory(prefix="one2345-blender-") as tmp:
            folder = Path(tmp)
            job = write_blender_job(folder, mesh, cameras, light, self.config, self.crease_deg)
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            proc = subprocess.run(self.command + [str(job)], capture_output=True, text=True, env=env,
                                  timeout=self.config.timeout_s)
            out_dir = folder / "renders"
            names = [f"{i:03d}" for i in range(len(cameras))]
            missing = [n for n in names if not (out_dir / f"{n}.png").is_file()]
            if proc.returncode != 0 or missing:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise RuntimeError(f"Blender render failed (exit {proc.returncode}, missing {missing[:3]}):\n{tail}")
            rgba = np.stack([np.asarray(Image.open(out_dir / f"{n}.png").convert("RGBA")) for n in names])
        rgb, alpha = straight_rgba_to_output(rgba)
        if not with_depth:
            return RenderOutput(rgb, alpha, torch.zeros_like(alpha), None, cameras)
        cast = RayCaster(mesh, self.crease_deg).render(cameras)
        shape = (len(cameras), 1, cameras.height, cameras.width)
        depth = cast.depth.reshape(shape).float()
        normals = cast.normals.reshape(len(cameras), cameras.height, cameras.width, 3).permute(0, 3, 1, 2).float()
        return RenderOutput(rgb, alpha, depth, normals, cameras)


def make_backend(config: BackendConfig) -> RenderBackend:
    """The backend named by ``config.name``."""
    if config.name == "cpu":
        return CpuBackend(config.cpu)
    return BlenderBackend(config.blender, config.cpu.crease_deg)
