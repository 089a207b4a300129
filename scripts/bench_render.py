#!/usr/bin/env python
"""Rendering speed on this machine: the CPU renderer on real meshes, and objects per minute of each dataset
backend in each layout. Prints tables and saves JSON.

    python scripts/bench_render.py [--output outputs/bench_render.json] [--objects 2] [--skip-blender]

1. ``views``: time to render 32 views at 256 x 256 (the inference rig) of real meshes, for several CPU settings
   (supersampling 1 / 3, normals, ray-cast depth). The EGL context set-up is timed separately.
2. ``datasets``: ``scripts/render_dataset.py``'s per-object cost (load, render, write) for each backend and layout,
   as objects per minute. Blender defaults to reduced settings (flagged in the table) because Cycles at 512 px /
   128 samples takes minutes per view on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import torch  # noqa: E402

from data import layout  # noqa: E402
from data.assets import load_asset  # noqa: E402
from data.datasets.generate import DatasetRenderConfig, generate  # noqa: E402
from data.datasets.reconstruction_layout import ReconstructionLayoutConfig  # noqa: E402
from data.datasets.zero123_layout import Zero123LayoutConfig  # noqa: E402
from data.io import write_text_atomic  # noqa: E402
from data.render import MeshRenderer, RenderConfig  # noqa: E402
from data.render.backends import BackendConfig, BackendUnavailableError, BlenderConfig, find_blender  # noqa: E402

MESHES = REPO.parent / "shared" / "data" / "meshes"
VIEW_MESHES = ["geometry_only/stanford-bunny/stanford-bunny.obj", "hope/tomato_sauce/textured.obj"]
DATASET_MESHES = ["khronos/Duck/Duck.glb", "hope/bbq_sauce/bbq_sauce.obj", "keenan/spot/spot.obj"]
VIEW_SETTINGS = {
    "flat s1": RenderConfig(shading="flat", supersample=1, normals=False),
    "lit s1": RenderConfig(supersample=1, normals=False),
    "lit s1 +normals": RenderConfig(supersample=1, normals=True),
    "lit s3 (default)": RenderConfig(),
    "lit s1 raycast depth": RenderConfig(supersample=1, normals=False, depth_source="raycast"),
}


def bench_views(repeats: int) -> list[dict]:
    cams = layout.cameras_for(layout.all_nearby_views(60.0))  # 32 views, 256 px
    rows = []
    for rel in VIEW_MESHES:
        mesh = load_asset(MESHES / rel)
        for name, cfg in VIEW_SETTINGS.items():
            start = time.perf_counter()
            renderer = MeshRenderer(mesh, cfg)
            renderer.render(cams[:1])
            setup = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                renderer.render(cams)
                times.append(time.perf_counter() - start)
            renderer.close()
            rows.append({"mesh": rel, "faces": mesh.num_faces, "setting": name, "views": len(cams),
                         "size": cams.width, "setup_s": round(setup, 2), "render_s": round(min(times), 2),
                         "ms_per_view": round(1000 * min(times) / len(cams), 1)})
            print(f"  {rel:55s} {name:22s} {rows[-1]['render_s']:7.2f} s", flush=True)
    return rows


def bench_datasets(objects: int, skip_blender: bool, blender_samples: int, blender_size: int) -> list[dict]:
    assets = [MESHES / m for m in DATASET_MESHES[:objects]]
    cases = [
        ("cpu", "zero123", "12 views 512 px, s3", DatasetRenderConfig(layout="zero123")),
        ("cpu", "reconstruction", "40 views 256 px, s3", DatasetRenderConfig(layout="reconstruction")),
        ("cpu", "reconstruction", "40 views 256 px, s1", DatasetRenderConfig(
            layout="reconstruction", backend=BackendConfig("cpu", RenderConfig(light="world", normals=False,
                                                                                supersample=1)))),
    ]
    if not skip_blender:
        try:
            find_blender()
            reduced = BlenderConfig(samples=blender_samples)
            cases += [
                ("blender", "zero123", f"12 views {blender_size} px, {blender_samples} spp (reduced)",
                 DatasetRenderConfig(layout="zero123", zero123=Zero123LayoutConfig(image_size=blender_size),
                                     backend=BackendConfig("blender", blender=reduced))),
                ("blender", "reconstruction", f"40 views 256 px, {blender_samples} spp",
                 DatasetRenderConfig(layout="reconstruction", reconstruction=ReconstructionLayoutConfig(),
                                     backend=BackendConfig("blender", blender=reduced))),
            ]
        except BackendUnavailableError as exc:
            print(f"  blender skipped: {exc}")
    rows = []
    for backend, layout_name, settings, cfg in cases:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            records = generate(assets, tmp, cfg, progress=False)
            total = time.perf_counter() - start
        ok = [r for r in records if r["status"] == "ok"]
        failed = [r for r in records if r["status"] != "ok"]
        per_object = total / max(len(ok), 1)
        rows.append({"backend": backend, "layout": layout_name, "settings": settings, "objects": len(ok),
                     "failed": len(failed), "seconds": round(total, 1), "s_per_object": round(per_object, 1),
                     "objects_per_minute": round(60.0 / per_object, 2) if ok else 0.0,
                     "errors": [r["error"] for r in failed]})
        print(f"  {backend:8s} {layout_name:15s} {settings:38s} {rows[-1]['objects_per_minute']:6.2f} obj/min",
              flush=True)
    return rows


def table(rows: list[dict], keys: list[str]) -> str:
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    lines = [" | ".join(k.ljust(w) for k, w in zip(keys, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(r[k]).ljust(w) for k, w in zip(keys, widths)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=REPO / "outputs" / "bench_render.json")
    p.add_argument("--objects", type=int, default=2, help="assets per dataset case")
    p.add_argument("--repeats", type=int, default=2, help="timed repeats of each 32-view render (best kept)")
    p.add_argument("--skip-blender", action="store_true")
    p.add_argument("--blender-samples", type=int, default=16)
    p.add_argument("--blender-size", type=int, default=256)
    p.add_argument("--skip-views", action="store_true")
    args = p.parse_args(argv)
    if not MESHES.is_dir():
        print(f"error: needs the real meshes in {MESHES}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "load_average_at_start": os.getloadavg(), "torch_threads": torch.get_num_threads()}
    print(f"machine: {env}")
    result = {"environment": env}
    if not args.skip_views:
        print("32 views at 256 x 256:")
        result["views"] = bench_views(args.repeats)
    print("dataset generation:")
    result["datasets"] = bench_datasets(args.objects, args.skip_blender, args.blender_samples, args.blender_size)
    result["environment"]["load_average_at_end"] = os.getloadavg()
    if "views" in result:
        print("\n" + table(result["views"], ["mesh", "faces", "setting", "setup_s", "render_s", "ms_per_view"]))
    print("\n" + table(result["datasets"], ["backend", "layout", "settings", "objects", "failed", "s_per_object",
                                            "objects_per_minute"]))
    write_text_atomic(args.output, json.dumps(result, indent=1))
    print(f"\nsaved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
