"""Command line: six consistent views of an object from one image.

    python -m zero123plus IMAGE --out DIR [--variant v1.2|v1.1|instantmesh] [--steps N] [--guidance G]
                          [--seed S] [--spacing trailing|linspace] [--config YAML] [--set key=value ...]
                          [--weights PATH_OR_HUB_ID] [--unet FILE] [--depth-controlnet DIR --depth-image PNG]
                          [--device auto|cpu|cuda]

Writes into DIR: ``grid.png`` (the 3x2 grid, 960x640 for the real model), ``0.png`` ... ``5.png`` (the six views)
and ``views.json`` (variant, seeds, settings, and per view its polar / azimuth angles and OpenCV camera, in the
world frame of ``data/conventions.py`` with the input at azimuth 30 deg). ``--config configs/zero123plus/tiny.yaml``
runs random weights (no download; meaningless output, marked ``random_weights``). Weights resolve through
``data/weights.py`` (local path, ``hf://`` id or the variant's default); when missing, the run stops before any
work with the project's missing-weights message. Exit code 2 for bad input, config or weights.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image

from data.config import ConfigError, save_config
from data.device import resolve_device
from data.io import atomic_directory
from data.layout import split_grid, zero123plus_cameras, zero123plus_radius, zero123plus_views
from data.preprocess import PreprocessError
from data.weights import MissingWeightsError, resolve_all
from zero123plus.config import SPACINGS, VARIANTS, load_zero123plus_config
from zero123plus.loading import Zero123PlusWeightsError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m zero123plus", description=__doc__.splitlines()[0])
    p.add_argument("image", help="input image (RGBA: its alpha is used; RGB: used as it is)")
    p.add_argument("--out", required=True, help="output folder (written whole or not at all)")
    p.add_argument("--variant", choices=VARIANTS, default=None, help="default: the config's (v1.2)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the variant's)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default 4.0; <= 1 turns CFG off)")
    p.add_argument("--spacing", choices=SPACINGS, default=None, help="Euler-A timestep spacing (default: variant's)")
    p.add_argument("--seed", type=int, default=0, help="seed of both random streams (default 0)")
    p.add_argument("--config", default=None, help="YAML (schema zero123plus.config:Zero123PlusConfig)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--weights", default=None, help="hub-layout folder / hf:// id (default: the variant's)")
    p.add_argument("--unet", default=None, help="replacement UNet file (default: the variant's, InstantMesh)")
    p.add_argument("--depth-controlnet", default=None, help="depth ControlNet folder / hub id")
    p.add_argument("--depth-image", default=None, help="ControlNet conditioning grid (the output's size)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def build_pipeline(args, cfg):
    from zero123plus.pipeline import Zero123PlusPipeline

    device = resolve_device(args.device)
    if cfg.random_weights:
        pipe = Zero123PlusPipeline.from_config(cfg, device=device)
        if args.depth_image is not None:
            pipe.add_controlnet(None)  # untrained, like the official add_controlnet() without weights
        return pipe, {}
    w = cfg.weights
    requests = {"zero123plus_v11" if cfg.variant == "v1.1" else "zero123plus_v12": args.weights or _src(w.pipeline)}
    unet = args.unet or w.unet
    if unet:
        requests["instantmesh_unet"] = _src(unet)
    control = args.depth_controlnet or w.controlnet
    if control:
        requests["zero123plus_depth_controlnet"] = _src(control)
    found = resolve_all(requests)
    folder = found.pop(next(iter(requests)))
    pipe = Zero123PlusPipeline.from_pretrained(folder, cfg, unet=found.get("instantmesh_unet"),
                                               controlnet=found.get("zero123plus_depth_controlnet"), device=device)
    return pipe, {k: str(v) for k, v in {**found, "pipeline": folder}.items()}


def _src(value):
    """A registry name means its default source (None); anything else is a path / hub source."""
    from data.weights import REGISTRY

    return None if value in REGISTRY else value


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        sources = [args.config] if args.config else []
        overrides = list(args.overrides)
        if args.steps is not None:
            overrides.append(f"sampling.num_inference_steps={args.steps}")
        if args.guidance is not None:
            overrides.append(f"sampling.guidance_scale={args.guidance}")
        if args.spacing is not None:
            overrides.append(f"sampling.timestep_spacing={args.spacing}")
        cfg = load_zero123plus_config(*sources, overrides=overrides, variant=args.variant)
        pipe, loaded = build_pipeline(args, cfg)
        out = pipe.generate(args.image, seeds=args.seed, depth_image=args.depth_image, progress=not args.no_progress)
    except MissingWeightsError as exc:
        print(f"{exc}\n  * python -m zero123plus: --weights /path/to/zero123plus-folder (and --unet FILE for "
              "instantmesh), or --config configs/zero123plus/tiny.yaml for random weights.", file=sys.stderr)
        return 2
    except (ConfigError, PreprocessError, Zero123PlusWeightsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    views = out.views[0]
    specs = zero123plus_views(cfg.pose_set)
    cams = zero123plus_cameras(cfg.pose_set, tile_px=views.cameras.width, dtype=torch.float64)
    meta = {
        "variant": cfg.variant, "pose_set": cfg.pose_set, "seed": args.seed, "input": str(args.image),
        "steps": cfg.sampling.num_inference_steps, "guidance_scale": cfg.sampling.guidance_scale,
        "timestep_spacing": cfg.sampling.timestep_spacing, "random_weights": cfg.random_weights, "weights": loaded,
        "grid": "grid.png: 3 rows x 2 columns, view k at (k // 2, k % 2)",
        "views": [
            {"name": v.name, "file": f"{v.name}.png", "polar_deg": v.polar_deg, "elevation_deg": 90.0 - v.polar_deg,
             "azimuth_deg": v.azimuth_deg, "radius": zero123plus_radius(cfg.pose_set), "c2w_opencv": c.tolist(),
             "intrinsics": k.tolist()}
            for v, c, k in zip(specs, cams.c2w, cams.intrinsics)
        ],
    }
    tiles = split_grid(out.grids[0].permute(2, 0, 1)).permute(0, 2, 3, 1).numpy()  # (6, h, w, 3) uint8
    with atomic_directory(args.out) as tmp:
        out.grid_images()[0].save(tmp / "grid.png")
        for name, tile in zip(views.names, tiles):
            Image.fromarray(tile).save(tmp / f"{name}.png")
        (tmp / "views.json").write_text(json.dumps(meta, indent=1))
        save_config(cfg, tmp / "config.yaml")
    print(f"wrote {Path(args.out) / 'grid.png'}, 6 views and views.json" + (" (RANDOM WEIGHTS)" if cfg.random_weights else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
