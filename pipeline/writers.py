"""The output writers: one run's :class:`PipelineOutput` -> ``<output>/<stem>/`` (mesh, images, result.json).

``write_outputs`` writes, into a temporary folder renamed onto the target at the end (whole or nothing):
``mesh.<format>``, ``input.png``, ``views.png`` (the generator's own layout, :func:`views_grid`),
``turntable.png``, ``config.yaml`` and ``result.json`` (:func:`result_record`). Every file format decision lives
here (one module), so a new output (e.g. a texture) is one more writer.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import conventions as conv
from data import layout
from data.config import config_to_yaml
from data.io import atomic_directory
from pipeline.texture import texture_record

MESH_FRAME_WORLD = (
    "One-2-3-45 world frame (= pose.json): +z up, object near the origin (longest side ~1), input camera at "
    "azimuth 30 deg (azimuth 0 on -y, increasing towards +x), radius 1.2, polar angle = polar_deg"
)
MESH_FRAME_EXPORT = (
    "official .obj/.glb export frame: world (x, y, z) -> (x, z, y), i.e. y up; a reflection of the world "
    "frame, faces reversed (see data/conventions.py EXPORT_FRAME_FROM_WORLD)"
)
NEARBY_ROWS = "nearby views j = 0..3 (dpolar -10, +10, dazimuth -10, +10)"


def _to_u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _resized(img: torch.Tensor, size: int) -> torch.Tensor:
    if img.shape[-1] == size and img.shape[-2] == size:
        return img
    return torch.nn.functional.interpolate(img[None].float(), size=(size, size), mode="bilinear",
                                           antialias=True, align_corners=False)[0]


def views_grid(out) -> Image.Image:
    """The generated views in the generator's own layout.

    With nearby views: (5 x s) x (n x s), column k = first-stage view k (row 0) and its nearby views j (rows 1-4),
    s = the nearby views' side (first-stage views of another size are resized). Without: the Zero123++ 3x2 grid
    (view k at tile (k // 2, k % 2), as the model generates it).
    """
    first, nearby = out.first_stage, getattr(out, "nearby", None)
    if nearby is None:
        grid = layout.tile_grid(first.images.float().cpu(), layout.ZERO123PLUS_GRID)
        return Image.fromarray(_to_u8(grid))
    size = nearby.images.shape[-1]
    grid = np.full((5 * size, len(first) * size, 3), 255, np.uint8)
    for col, name in enumerate(first.names):
        grid[:size, col * size:(col + 1) * size] = _to_u8(_resized(first.images[col], size))
        for j in range(4):
            img = nearby.images[nearby.names.index(f"{name}_{j}")]
            grid[(j + 1) * size:(j + 2) * size, col * size:(col + 1) * size] = _to_u8(img)
    return Image.fromarray(grid)


def views_grid_record(out) -> dict:
    """result.json's description of ``views.png``."""
    if getattr(out, "nearby", None) is None:
        rows, cols = layout.ZERO123PLUS_GRID
        return {"file": "views.png", "rows": rows, "cols": cols, "tiles": list(out.first_stage.names),
                "layout": "Zero123++ grid: view k at row k // 2, column k % 2"}
    return {"file": "views.png", "rows": 5, "cols": len(out.first_stage),
            "columns": list(out.first_stage.names), "row_0": "first-stage view", "rows_1_4": NEARBY_ROWS}


def turntable(mesh, polar_deg: float, frames: int = 8, size: int = conv.IMAGE_SIZE) -> Image.Image:
    """A strip of ``frames`` CPU renders of the world-frame mesh around +z at the input's polar angle."""
    from data.cameras import Cameras
    from data.render import RenderConfig, render_mesh

    azimuths = [conv.INPUT_AZIMUTH_DEG + k * 360.0 / frames for k in range(frames)]
    cams = Cameras.from_spherical([polar_deg] * frames, azimuths, conv.CAMERA_RADIUS, size_px=size)
    rgb = render_mesh(mesh, cams, RenderConfig()).rgb  # (N, H, W, 3) or (N, 3, H, W) in [0, 1]
    rgb = torch.as_tensor(rgb)
    if rgb.shape[1] == 3:
        rgb = rgb.permute(0, 2, 3, 1)
    strip = torch.cat(list(rgb), dim=1).clamp(0, 1).numpy()
    return Image.fromarray((strip * 255 + 0.5).astype(np.uint8))


def camera_records(views) -> dict[str, dict]:
    """View name -> its camera (spherical angles in the world frame, radius, focal length and size in px)."""
    if views is None:
        return {}
    cams = views.cameras
    polar, azimuth, radius = (t.double().tolist() for t in cams.spherical())
    fx = cams.intrinsics[:, 0, 0].double().tolist()
    return {name: {"polar_deg": round(p, 6), "azimuth_deg": round(a % 360.0, 6), "radius": round(r, 6),
                   "focal_px": round(f, 6), "size_px": [int(cams.width), int(cams.height)]}
            for name, p, a, r, f in zip(views.names, polar, azimuth, radius, fx)}


def result_record(out, cfg, *, input_name: str, mesh_file: str, fmt: str) -> dict:
    """result.json: what ran (``ran``, ``half``, ``weights`` come from the run, not from the request), the
    generator and each view's camera, the angle, timings and every warning of the run."""
    est = out.estimate
    sources = getattr(out, "sources", None)
    reference = getattr(out, "reference", None)
    record = {
        "input": input_name,
        "generator": getattr(out, "generator", "one2345"),
        "label": cfg.label,
        "random_weights": list(out.random_weight_stages),
        "mesh": {"file": mesh_file, "format": fmt, "vertices": out.mesh.num_vertices, "faces": out.mesh.num_faces,
                 "frame": MESH_FRAME_EXPORT if f".{fmt}" in conv.EXPORT_FRAME_FORMATS else MESH_FRAME_WORLD,
                 "vertex_colors": out.mesh.vertex_colors is not None,
                 "texture": texture_record(out, fmt)},
        "polar_deg": out.polar_deg,
        "elevation_deg": out.elevation_deg,
        "polar_source": out.polar_source,
        "fallback_used": out.polar_source == "fallback",
        "elevation_failure": out.elevation_failure,
        "elevation_failure_reason": getattr(out, "elevation_failure_reason", None),
        "confidence": None if est is None else float(est.confidence),
        "estimated_polar_deg_raw": None if est is None else float(est.polar_deg),
        "elevation_estimate": None if est is None or not hasattr(est, "to_dict") else est.to_dict(),
        "timings_s": {k: round(v, 4) for k, v in out.timings.items()},
        "total_s": round(sum(out.timings.values()), 4),
        "cpu_timings_s": {k: round(v, 4) for k, v in out.cpu_timings.items()},
        "peak_memory_gb": {k: round(v, 3) for k, v in getattr(out, "peak_memory_gb", {}).items()},
        "peak_memory_note": ("CUDA allocator peak per stage" if out.ran["device"].startswith("cuda")
                             else "process peak resident set so far (CPU: no per-stage figure)"),
        "seed": out.seed,
        "view_seeds": out.view_seeds,
        "ran": dict(out.ran),
        "device": out.ran["device"],
        "half": out.ran.get("zero123_dtype", out.ran.get("zero123plus_dtype")) == "float16",
        "weights": dict(out.weights),
        "preprocess": {"method": out.input.method, "bbox_xywh": list(out.input.bbox)},
        "views_grid": views_grid_record(out),
        "cameras": {
            "first_stage": camera_records(out.first_stage),
            "nearby": camera_records(getattr(out, "nearby", None)),
            "reconstruction_sources": list(sources.names) if sources is not None else None,
            "reference": None if reference is None else next(iter(camera_records(
                _named(reference, "reference")).values())),
        },
        "warnings": out.warnings,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    return record


def _named(cameras, name: str):
    from types import SimpleNamespace

    return SimpleNamespace(cameras=cameras, names=(name,))


def export_mesh(mesh, path: Path) -> Path:
    """Write a world-frame mesh; .obj/.glb get the official export frame (data.conventions), .ply stays as is."""
    if path.suffix.lower() in conv.EXPORT_FRAME_FORMATS:
        mesh = mesh.transformed(torch.from_numpy(conv.EXPORT_FRAME_FROM_WORLD),
                                flip_winding=conv.EXPORT_FRAME_FLIPS_WINDING)
    return mesh.export(path)


def write_outputs(out, cfg, folder: Path, fmt: str, input_name: str,
                  extra_images: dict[str, Image.Image] | None = None) -> Path:
    """Everything for one input, written into a temporary folder renamed onto ``folder`` at the end."""
    preview_note = None
    polar = out.preview_polar_deg if hasattr(out, "preview_polar_deg") else out.polar_deg
    try:
        preview = turntable(out.mesh, polar)
    except Exception as exc:  # the CPU renderer needs EGL/OSMesa or embree; the mesh itself is still valid
        preview, preview_note = None, f"turntable preview not rendered: {type(exc).__name__}: {exc}"
        out.warnings.append(preview_note)
    record = result_record(out, cfg, input_name=input_name, mesh_file=f"mesh.{fmt}", fmt=fmt)
    record["turntable"] = None if preview is None else {"file": "turntable.png", "frames": 8, "polar_deg": polar}
    with atomic_directory(folder) as tmp:
        export_mesh(out.mesh, tmp / f"mesh.{fmt}")
        Image.fromarray(out.input.image).save(tmp / "input.png")
        views_grid(out).save(tmp / "views.png")
        if preview is not None:
            preview.save(tmp / "turntable.png")
        for name, img in (extra_images or {}).items():
            img.save(tmp / name)
        (tmp / "config.yaml").write_text(config_to_yaml(cfg))
        (tmp / "result.json").write_text(json.dumps(record, indent=2))
    return folder
