"""Render training data for Zero123 or the reconstruction module from a folder, glob or list of 3D assets.

Examples::

    python scripts/render_dataset.py objaverse_glbs/ --out renders/zero123 --layout zero123 --backend blender
    python scripts/render_dataset.py assets.txt --out renders/recon --layout reconstruction --backend cpu \\
        --shard $SLURM_ARRAY_TASK_ID --num-shards 64
    python scripts/render_dataset.py objaverse_glbs/ --out renders/zp --layout zero123plus --views 2 \\
        --set zero123plus.pose_set=v1.2 zero123plus.background=255   # Zero123++ grids (InstantMesh recipe)

Objects already complete in --out are skipped (a killed run resumes); each object is written to a temporary
folder and renamed when whole; a JSONL manifest records every object (ok / skipped / failed, seconds, error).
Beside ``valid_paths.json`` (every complete object) it writes the split lists ``train.txt`` / ``val.txt``
(``--val-fraction`` of the objects, at least one when there are two or more; a function of --seed and the objects).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.config import ConfigError, load_config, save_config  # noqa: E402
from data.datasets.generate import AssetListError, DatasetRenderConfig, generate, list_assets  # noqa: E402
from data.datasets.splits import DEFAULT_VAL_FRACTION, write_split_lists  # noqa: E402
from data.render.backends import BackendUnavailableError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("assets", help="folder (searched recursively), glob pattern (quote it) or list file")
    p.add_argument("--out", type=Path, required=True, help="dataset root: one folder per object")
    p.add_argument("--layout", choices=["zero123", "reconstruction", "zero123plus"], default=None)
    p.add_argument("--backend", choices=["cpu", "blender"], default=None)
    p.add_argument("--shard", type=int, default=0, help="this worker's index, 0-based")
    p.add_argument("--num-shards", type=int, default=1, help="number of workers splitting the asset list")
    p.add_argument("--views", type=int, default=None, help="views per object (zero123) / main views (reconstruction) "
                                                           "/ conditioning samples, each with its 6-view grid (zero123plus)")
    p.add_argument("--size", type=int, default=None, help="zero123 image size (default 512) / zero123plus tile (320)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--up-axis", default=None,
                   help="the up axis of every asset: auto (glTF/GLB +y, other formats +z) or +x..-z. OBJ files "
                        "from many scanners and tools are +y up and render lying on their side under auto: pass "
                        "--up-axis +y for them, e.g. the shared HOPE and Keenan Crane OBJs (glTF is +y anyway, so "
                        "+y suits every mesh of ../shared/data/meshes except hope/bbq_sauce, which is +z up); "
                        "render assets of different up axes in separate runs (a list file per axis)")
    p.add_argument("--blender", default=None, help="blender binary or python with bpy (default: .venv-blender)")
    p.add_argument("--config", type=Path, default=None, help="DatasetRenderConfig YAML")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. backend.blender.samples=32 backend.cpu.supersample=1")
    p.add_argument("--manifest", type=Path, default=None, help="JSONL manifest (default OUT/manifest-SHARD-of-N.jsonl)")
    p.add_argument("--limit", type=int, default=None, help="only the first N assets of the list (before sharding)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help=f"share of the objects listed in val.txt, in [0, 1) (default {DEFAULT_VAL_FRACTION})")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> DatasetRenderConfig:
    overrides = list(args.overrides)
    layout = args.layout or "zero123"
    size_key = "zero123plus.tile_size" if layout == "zero123plus" else "zero123.image_size"
    for flag, key in ((args.layout, "layout"), (args.backend, "backend.name"), (args.seed, "seed"),
                      (args.up_axis, "up_axis"), (args.size, size_key),
                      (args.blender, "backend.blender.executable")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.views is not None:
        views_key = {"zero123": "zero123.num_views", "reconstruction": "reconstruction.num_main_views",
                     "zero123plus": "zero123plus.num_samples"}[layout]
        overrides.append(f"{views_key}={args.views}")
    return load_config(DatasetRenderConfig, *([args.config] if args.config else []), overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        assets = list_assets(args.assets)
    except (ConfigError, ValueError, AssetListError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0.0 <= args.val_fraction < 1.0:
        print(f"error: --val-fraction must be in [0, 1), got {args.val_fraction}", file=sys.stderr)
        return 2
    if args.limit is not None:
        assets = assets[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, args.out / f"config-{args.shard:04d}-of-{args.num_shards:04d}.yaml")
    try:
        records = generate(assets, args.out, cfg, args.shard, args.num_shards, args.manifest,
                           progress=not args.no_progress)
    except (BackendUnavailableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "skipped", "failed")}
    train, val = write_split_lists(args.out, args.val_fraction, cfg.seed)
    print(f"{len(records)} objects: {counts['ok']} rendered, {counts['skipped']} already complete, "
          f"{counts['failed']} failed -> {args.out} (split lists: {len(train)} train / {len(val)} val)")
    for r in records:
        if r["status"] == "failed":
            print(f"  failed {r['object_id']}: {r['error']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
