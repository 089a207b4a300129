"""Single image (or folder, or text prompt) -> coloured 3D mesh. Thin CLI over the ``pipeline/`` package.

    python infer.py IMAGE|DIR [--output DIR] [--polar-deg DEG | --elevation-deg DEG] [--mesh-resolution 256]
                    [--format ply|obj|glb] [--texture] [--texture-size 1024] [--device cuda|cpu] [--half]
                    [--seed N] [--config YAML]
                    [--generator one2345|zero123plus|zero123plus_nearby]
    python infer.py --prompt "a kungfu cat" [...]
    python infer.py IMAGE|DIR --method sjc|sds [--config configs/sjc/official.yaml] [...]   # Zero-1-to-3's own
                    per-shape optimisation (sjc_pipeline.py; outputs of scripts/optimise_sjc.py)

Per input, ``<output>/<image stem>/`` receives (the folder is written whole or not at all):
``mesh.<format>``, ``input.png`` (the preprocessed 256x256 conditioning image), ``views.png`` (the generator's
layout: one2345: 8 columns = first-stage views 0..3 + second ring, row 0 = that view, rows 1-4 = its nearby views
j = 0..3; zero123plus: the 3x2 grid; zero123plus_nearby: 6 columns as one2345's),
``turntable.png`` (8 renders of the mesh around the object), ``result.json`` and ``config.yaml``.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from data import conventions as conv
from data.config import ConfigError
from data.preprocess import PreprocessError, load_image
from data.weights import MissingWeightsError, resolve_all
from pipeline.registry import GENERATORS
# the output writers live in pipeline/writers.py (re-exported here: infer.views_grid, infer.turntable, ...)
from pipeline.writers import (MESH_FRAME_EXPORT, MESH_FRAME_WORLD, export_mesh, result_record,  # noqa: F401
                              turntable, views_grid, write_outputs)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "infer" / "default.yaml"
GENERATOR_NAMES = tuple(GENERATORS)


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
    p.add_argument("--format", choices=("ply", "obj", "glb"), default=None,
                   help="mesh file format (default ply; glb with --texture)")
    p.add_argument("--texture", action="store_true",
                   help="UV-textured .glb/.obj: xatlas atlas + base-colour texture baked from the colour network "
                        "(.ply keeps vertex colours)")
    p.add_argument("--texture-size", type=int, default=None, metavar="N",
                   help="texture side in texels (default 1024; implies --texture)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--half", action="store_true",
                   help="float16 Zero123 (CUDA only; on a CPU it runs float32 with a warning in result.json)")
    p.add_argument("--seed", type=int, help="run seed (default: the config's)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="pipeline YAML (configs/infer/*.yaml)")
    p.add_argument("--segmenter", choices=("auto", "alpha", "rembg", "sam", "grabcut", "none"),
                   help="background removal (none: use the image as it is)")
    p.add_argument("--prompt", help="make the input image from this text with a text-to-image model")
    p.add_argument("--generator", choices=tuple(GENERATOR_NAMES),
                   help="view generator (default: the config's, one2345): one2345 | zero123plus (six Zero123++ "
                        "views straight to reconstruction) | zero123plus_nearby (+ Zero123 nearby views, released "
                        "reconstruction)")
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
                      ("device", "device"), ("seed", "seed"), ("segmenter", "preprocess.segmenter"),
                      ("generator", "generator")):
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
    texture_size = args.texture_size or (1024 if args.texture else 0)
    args.format = args.format or ("glb" if texture_size else "ply")
    if texture_size and (args.format == "ply" or args.method != "one2345" or texture_size < 16):
        print("error: --texture/--texture-size need --format glb or obj (.ply keeps vertex colours), the "
              "feed-forward --method one2345 and a size >= 16", file=sys.stderr)
        return 2
    if args.method != "one2345":
        return run_sjc(args)
    from pipeline import PipelineError, build_pipeline, load_pipeline_config, required_weights, text_to_image
    from pipeline.texture import add_texture

    try:
        cfg = load_pipeline_config(args.config, overrides=config_overrides(args))
        out_root = Path(args.output)
        check_output_root(out_root)
        inputs = list_inputs(args)
        check_readable(inputs)
        paths = resolve_all(required_weights(cfg, text_prompt=bool(args.prompt)))  # before any work
        pipe = build_pipeline(cfg, weight_paths={k: v for k, v in paths.items() if k != "text2image"})
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
            if texture_size:
                out = add_texture(pipe, out, texture_size)
            if args.prompt:
                out.weights["text2image"] = str(paths["text2image"])
            folder = write_outputs(out, cfg, out_root / stem, args.format, name, extra)
        except (PreprocessError, PipelineError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if out.polar_deg is None:
            angle = f"{out.generator}: {len(out.sources)} views at known poses"
        else:
            src = {"user": "given", "estimated": "estimated", "fallback": "FALLBACK"}[out.polar_source]
            angle = f"polar {out.polar_deg:g} deg ({src}), elevation {out.elevation_deg:g} deg"
        print(f"{name}: {angle}, {out.mesh.num_vertices} vertices, {sum(out.timings.values()):.1f} s -> {folder}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
