"""Single image (or folder, or text prompt) -> coloured 3D mesh with One-2-3-45. Thin CLI over ``pipeline.py``.

    python infer.py IMAGE|DIR [--output DIR] [--polar-deg DEG | --elevation-deg DEG] [--mesh-resolution 256]
                    [--format ply|obj|glb] [--device cuda|cpu] [--half] [--seed N] [--config YAML]
    python infer.py --prompt "a kungfu cat" [...]
    python infer.py IMAGE|DIR --method sjc|sds [--config configs/sjc/official.yaml] [...]   # Zero-1-to-3's own
                    per-shape optimisation (sjc_pipeline.py; outputs of scripts/optimise_sjc.py)

Per input, ``<output>/<image stem>/`` receives (the folder is written whole or not at all):
``mesh.<format>``, ``input.png`` (the preprocessed 256x256 conditioning image), ``views.png`` (8 columns =
first-stage views 0..3 + second ring, row 0 = that view, rows 1-4 = its nearby views j = 0..3),
``turntable.png`` (8 renders of the mesh around the object), ``result.json`` and ``config.yaml``.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import conventions as conv
from data.config import ConfigError, config_to_yaml
from data.io import atomic_directory
from data.preprocess import PreprocessError, load_image
from data.weights import MissingWeightsError, resolve_all

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "infer" / "default.yaml"
MESH_FRAME_WORLD = (
    "One-2-3-45 world frame (= pose.json): +z up, object near the origin (longest side ~1), input camera at "
    "azimuth 30 deg (azimuth 0 on -y, increasing towards +x), radius 1.2, polar angle = polar_deg"
)
MESH_FRAME_EXPORT = (
    "official .obj/.glb export frame: world (x, y, z) -> (x, z, y), i.e. y up; a reflection of the world "
    "frame, faces reversed (see data/conventions.py EXPORT_FRAME_FROM_WORLD)"
)


class UsageError(ValueError):
    """Bad command-line input (missing path, output path that is a file, ...)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="One-2-3-45: image -> textured 3D mesh.")
    p.add_argument("input", nargs="?", help="image file or folder of images (omit with --prompt)")
    p.add_argument("--output", default="outputs", help="output folder (one sub-folder per image)")
    angle = p.add_mutually_exclusive_group()
    angle.add_argument("--polar-deg", type=float, help="input camera polar angle from +z (deg); skips estimation")
    angle.add_argument("--elevation-deg", type=float, help="input camera elevation above the horizon (deg)")
    p.add_argument("--on-elevation-failure", choices=("fallback", "abort"),
                   help="fallback: polar 90 deg with a warning (official) | abort")
    p.add_argument("--mesh-resolution", type=int, help="marching-cubes grid per axis (default 256)")
    p.add_argument("--format", choices=("ply", "obj", "glb"), default="ply", help="mesh file format")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--half", action="store_true",
                   help="float16 Zero123 (CUDA only; on a CPU it runs float32 with a warning in result.json)")
    p.add_argument("--seed", type=int, help="run seed (default: the config's)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="pipeline YAML (configs/infer/*.yaml)")
    p.add_argument("--segmenter", choices=("auto", "alpha", "rembg", "sam", "grabcut", "none"),
                   help="background removal (none: use the image as it is)")
    p.add_argument("--prompt", help="make the input image from this text with a text-to-image model")
    p.add_argument("--method", choices=("one2345", "sjc", "sds"), default="one2345",
                   help="one2345 (feed-forward, default) | sjc: Zero-1-to-3's own per-shape optimisation "
                        "(official 3drec SJC) | sds: the same with threestudio-style SDS (scripts/optimise_sjc.py)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set weights.zero123=/data/zero123-xl.ckpt (repeatable)")
    return p


def config_overrides(args: argparse.Namespace) -> list[str]:
    out = list(args.overrides)
    if args.polar_deg is not None:
        out.append(f"elevation_policy.polar_deg={args.polar_deg}")
    if args.elevation_deg is not None:
        out.append(f"elevation_policy.polar_deg={float(conv.elevation_to_polar_deg(args.elevation_deg))}")
    for flag, key in (("on_elevation_failure", "elevation_policy.on_failure"), ("mesh_resolution", "mesh_resolution"),
                      ("device", "device"), ("seed", "seed"), ("segmenter", "preprocess.segmenter")):
        if getattr(args, flag) is not None:
            out.append(f"{key}={getattr(args, flag)}")
    if args.half:
        out.append("half=true")
    return out


def list_inputs(args: argparse.Namespace) -> list[Path]:
    """Every image to process; raises :class:`UsageError` before any work when the input is unusable."""
    if args.prompt:
        if args.input:
            raise UsageError("give either an input image/folder or --prompt, not both")
        return []
    if not args.input:
        raise UsageError("no input: pass an image file, a folder of images, or --prompt TEXT")
    path = Path(args.input)
    if not path.exists():
        raise UsageError(f"input not found: {path}")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise UsageError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    return [path]


def check_readable(images: list[Path]) -> None:
    """Open every input image once before any model is built (unreadable files stop the run early)."""
    problems = []
    for path in images:
        try:
            load_image(path)
        except PreprocessError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))


def check_output_root(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output {path} is a file; give a folder path (it is created if missing)")


def views_grid(out) -> Image.Image:
    """(5 x 256) x (8 x 256) grid: column k = first-stage view k (row 0) and its nearby views j (rows 1-4)."""
    first, nearby = out.first_stage, out.nearby
    size = first.images.shape[-1]
    grid = np.full((5 * size, len(first) * size, 3), 255, np.uint8)
    to_u8 = lambda t: (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)  # noqa: E731
    for col, name in enumerate(first.names):
        grid[:size, col * size:(col + 1) * size] = to_u8(first.images[col])
        for j in range(4):
            img = nearby.images[nearby.names.index(f"{name}_{j}")]
            grid[(j + 1) * size:(j + 2) * size, col * size:(col + 1) * size] = to_u8(img)
    return Image.fromarray(grid)


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


def result_record(out, cfg, *, input_name: str, mesh_file: str, fmt: str) -> dict:
    """result.json: what ran (``ran``, ``half``, ``weights`` come from the run, not from the request), the angle,
    timings and every warning of the run."""
    est = out.estimate
    return {
        "input": input_name,
        "label": cfg.label,
        "random_weights": list(out.random_weight_stages),
        "mesh": {"file": mesh_file, "format": fmt, "vertices": out.mesh.num_vertices, "faces": out.mesh.num_faces,
                 "frame": MESH_FRAME_EXPORT if f".{fmt}" in conv.EXPORT_FRAME_FORMATS else MESH_FRAME_WORLD,
                 "vertex_colors": out.mesh.vertex_colors is not None},
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
        "half": out.ran["zero123_dtype"] == "float16",
        "weights": dict(out.weights),
        "preprocess": {"method": out.input.method, "bbox_xywh": list(out.input.bbox)},
        "views_grid": {"file": "views.png", "rows": 5, "cols": len(out.first_stage),
                       "columns": list(out.first_stage.names), "row_0": "first-stage view",
                       "rows_1_4": "nearby views j = 0..3 (dpolar -10, +10, dazimuth -10, +10)"},
        "warnings": out.warnings,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }


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
    try:
        preview = turntable(out.mesh, out.polar_deg)
    except Exception as exc:  # the CPU renderer needs EGL/OSMesa or embree; the mesh itself is still valid
        preview, preview_note = None, f"turntable preview not rendered: {type(exc).__name__}: {exc}"
        out.warnings.append(preview_note)
    record = result_record(out, cfg, input_name=input_name, mesh_file=f"mesh.{fmt}", fmt=fmt)
    record["turntable"] = None if preview is None else {"file": "turntable.png", "frames": 8,
                                                        "polar_deg": out.polar_deg}
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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "prompt"


def run_sjc(args: argparse.Namespace) -> int:
    """``--method sjc|sds``: every input through ``scripts/optimise_sjc.py`` (same output folder layout)."""
    import importlib.util

    if args.prompt:
        print("error: --prompt is only available with --method one2345", file=sys.stderr)
        return 2
    try:
        inputs = list_inputs(args)
        check_readable(inputs)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location(
        "optimise_sjc", Path(__file__).resolve().parent / "scripts" / "optimise_sjc.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    config = args.config if args.config != str(DEFAULT_CONFIG) else str(cli.ROOT / "configs/sjc/official.yaml")
    sets = [f"method={args.method}"] + list(args.overrides)
    polar = args.polar_deg if args.polar_deg is not None else (
        None if args.elevation_deg is None else float(conv.elevation_to_polar_deg(args.elevation_deg)))
    for flag, value in (("input_polar_deg", polar), ("device", args.device), ("seed", args.seed)):
        if value is not None:
            sets.append(f"{flag}={value}")
    worst = 0
    for path in inputs:
        argv = [str(path), "--config", config, "--output", args.output, "--format", args.format]
        argv += [x for s in sets for x in ("--set", s)]
        if args.segmenter is not None:
            argv += ["--segmenter", args.segmenter]
        worst = max(worst, cli.main(argv))
    return worst


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.method != "one2345":
        return run_sjc(args)
    from pipeline import One2345Pipeline, PipelineError, load_pipeline_config, required_weights, text_to_image

    try:
        cfg = load_pipeline_config(args.config, overrides=config_overrides(args))
        out_root = Path(args.output)
        check_output_root(out_root)
        inputs = list_inputs(args)
        check_readable(inputs)
        paths = resolve_all(required_weights(cfg, text_prompt=bool(args.prompt)))  # before any work
        pipe = One2345Pipeline.from_config(cfg, weight_paths={k: v for k, v in paths.items() if k != "text2image"})
    except (UsageError, ConfigError, MissingWeightsError, PreprocessError, PipelineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.random_weight_stages:
        print(f"NOTE: {', '.join(cfg.random_weight_stages)} use RANDOM weights: outputs are meaningless "
              "(smoke test only).", file=sys.stderr)
    stems = [p.stem for p in inputs]
    jobs: list[tuple[str, object, dict]] = [  # a.png + a.jpg in one folder -> a_png, a_jpg
        (p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix[1:].lower()}", p, {}) for p in inputs]
    if args.prompt:
        t0 = time.perf_counter()
        image = text_to_image(args.prompt, paths["text2image"], cfg.text_to_image, seed=cfg.seed, device=pipe.device)
        print(f"text-to-image: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        jobs = [(_slug(args.prompt), image, {"prompt_image.png": image})]
    failures = 0
    for stem, source, extra in jobs:
        name = str(source) if isinstance(source, Path) else f"prompt: {args.prompt}"
        try:
            out = pipe(source, source_name=name)
            if args.prompt:
                out.weights["text2image"] = str(paths["text2image"])
            folder = write_outputs(out, cfg, out_root / stem, args.format, name, extra)
        except (PreprocessError, PipelineError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failures += 1
            continue
        src = {"user": "given", "estimated": "estimated", "fallback": "FALLBACK"}[out.polar_source]
        print(f"{name}: polar {out.polar_deg:g} deg ({src}), elevation {out.elevation_deg:g} deg, "
              f"{out.mesh.num_vertices} vertices, {sum(out.timings.values()):.1f} s -> {folder}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
