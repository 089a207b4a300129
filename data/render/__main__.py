"""``python -m data.render MESH --polar DEG ... --azimuth DEG ... --out DIR``: render a mesh from given views.

Polar / azimuth / radius lists are paired element-wise (a single value is repeated); ``--grid`` takes every
polar x azimuth combination instead. Writes the render folder described in :mod:`data.render.io`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data import conventions as conv
from data.assets import load_asset_with_info
from data.cameras import Cameras
from data.config import ConfigError, load_config
from data.mesh import MeshError
from data.render.config import RenderConfig
from data.render.io import save_render
from data.render.rasterizer import render_mesh


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m data.render", description=__doc__.splitlines()[0])
    p.add_argument("mesh", type=Path, help="asset file: .obj (+mtl, textures), .glb, .gltf, .ply, ...")
    p.add_argument("--polar", type=float, nargs="+", default=[90.0 - 30.0],
                   help="polar angle(s) from +z in degrees (90 = horizon); default 60")
    p.add_argument("--azimuth", type=float, nargs="+", default=[0.0, 90.0, 180.0, 270.0],
                   help="azimuth(s) in degrees, 0 = camera on -y, increasing towards +x")
    p.add_argument("--radius", type=float, nargs="+", default=[conv.CAMERA_RADIUS], help="camera distance(s)")
    p.add_argument("--grid", action="store_true", help="every polar x azimuth pair instead of element-wise")
    p.add_argument("--size", type=int, default=conv.IMAGE_SIZE, help="image side in pixels")
    p.add_argument("--focal", type=float, default=None,
                   help=f"focal length in pixels at --size (default {conv.FOCAL_PX:g} px at 256 px, scaled)")
    p.add_argument("--fov", type=float, default=None, help="field of view in degrees (instead of --focal)")
    p.add_argument("--up-axis", default="auto",
                   help="the file's up axis: auto (glTF/GLB +y by specification, other formats +z) or +x..-z. "
                        "OBJ files from many scanners and tools are +y up and render lying on their side under "
                        "auto: pass --up-axis +y for them, e.g. the shared HOPE and Keenan Crane OBJs (every OBJ "
                        "of ../shared/data/meshes except hope/bbq_sauce, which is +z up)")
    p.add_argument("--framing", choices=("rig", "bbox"), default="rig",
                   help="object scale: 'rig' (default) = the framing of a preprocessed input on the inference rig "
                        "(bounding sphere of radius data.conventions.RIG_OBJECT_RADIUS ~0.389: at most 75%% of the "
                        "image from every camera at radius 1.2); 'bbox' = longest side 1 (the Zero123 layout's "
                        "scale, which fills up to 1.6x the image at radius 1.2: use a larger --radius)")
    p.add_argument("--config", type=Path, default=None, help="RenderConfig YAML")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="RenderConfig overrides, e.g. shading=flat supersample=1")
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced whole)")
    return p.parse_args(argv)


def view_angles(polar: list[float], azimuth: list[float], radius: list[float], grid: bool):
    """(polar, azimuth, radius) arrays of equal length from the CLI lists."""
    if grid:
        p, a = np.meshgrid(polar, azimuth, indexing="ij")
        polar, azimuth = p.ravel().tolist(), a.ravel().tolist()
    n = max(len(polar), len(azimuth), len(radius))
    for name, values in (("--polar", polar), ("--azimuth", azimuth), ("--radius", radius)):
        if len(values) not in (1, n):
            raise SystemExit(f"error: {name} has {len(values)} values but another list has {n}; give 1 or {n}")
    return [np.broadcast_to(np.asarray(v, np.float64), (n,)).copy() for v in (polar, azimuth, radius)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(RenderConfig, *([args.config] if args.config else []), overrides=args.overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: render config: {exc}", file=sys.stderr)
        return 2
    if args.fov is not None and args.focal is not None:
        print("error: give --focal or --fov, not both", file=sys.stderr)
        return 2
    focal = args.focal if args.focal is not None else (
        conv.fov_to_focal(args.fov, args.size) if args.fov is not None else conv.FOCAL_PX * args.size / conv.IMAGE_SIZE
    )
    polar, azimuth, radius = view_angles(args.polar, args.azimuth, args.radius, args.grid)
    if np.any((polar % 180.0) == 0.0):
        print("error: polar 0 or 180 puts the camera on the z axis, where look-at is undefined", file=sys.stderr)
        return 2
    try:
        mesh, info = load_asset_with_info(args.mesh, up_axis=args.up_axis, framing=args.framing)
    except (MeshError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cameras = Cameras.from_spherical(polar, azimuth, radius, focal_px=focal, size_px=args.size, dtype=torch.float64)
    start = time.perf_counter()
    out = render_mesh(mesh, cameras, cfg)
    seconds = time.perf_counter() - start
    save_render(out, args.out, mesh=str(args.mesh), up_axis=info.up_axis, config=cfg,
                to_world=info.to_world.tolist(), framing=args.framing)
    print(f"rendered {len(cameras)} views of {args.mesh} ({mesh.num_faces} faces) in {seconds:.2f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
