#!/usr/bin/env python
"""Zero123 predictions of the nearby views of a rendered reconstruction dataset (training sources, spec 11.1).

For every object folder of a ``reconstruction``-layout dataset (``scripts/render_dataset.py --layout
reconstruction``), each ground-truth main view ``view_k.png`` conditions Zero123 on its 4 nearby views (+-10 deg
polar / azimuth, official order j = 0..3); the predictions are written beside the rendered ones as
``view_k_j_10.png`` (the rendered ground truth stays in ``view_k_j_10_gt.png``). The training reader then uses
predicted or ground-truth sources per sample (``data.gt_source_probability``).

    python scripts/predict_nearby_views.py DATASET --weights zero123-xl [--shard 0 --num-shards 4]
    python scripts/predict_nearby_views.py DATASET --zero123-config configs/zero123/tiny.yaml   # random weights

Resumable: objects whose predictions all exist are skipped; each file is written whole. Sharded like the render
CLI (object i goes to shard i mod num_shards, objects sorted by name). Seeds: ``--seed`` + object index * 1000
+ 4 k + j, so a view's prediction does not depend on sharding or batching.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data import layout  # noqa: E402
from data.datasets.one2345_official import read_rgb_on_white  # noqa: E402
from data.datasets.rendered import complete_objects  # noqa: E402
from data.device import resolve_device  # noqa: E402
from data.io import atomic_path, write_text_atomic  # noqa: E402
from data.layout import RelativePose  # noqa: E402


def main_view_specs(folder: Path) -> list[layout.ViewSpec]:
    """The main views of an object from its meta.json (names ``"0"``..), as schedule entries."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} missing: not a complete reconstruction-layout object folder")
    meta = json.loads(meta_path.read_text())
    if "main_views" not in meta:
        raise ValueError(f"{meta_path} has no 'main_views': render the dataset with --layout reconstruction")
    return [layout.ViewSpec(str(v["name"]), float(v["polar_deg"]), float(v["azimuth_deg"]), 0.0, 0.0, "object")
            for v in meta["main_views"]]


def prediction_path(folder: Path, nearby: layout.ViewSpec) -> Path:
    return folder / f"view_{nearby.name}_10.png"


def is_done(folder: Path, mains: list[layout.ViewSpec]) -> bool:
    return all(prediction_path(folder, v).is_file() for m in mains for v in layout.nearby_views(m))


def predict_object(pipe, folder: Path, object_index: int, seed: int, steps: int | None, guidance: float | None,
                   batch_size: int | None) -> int:
    """Predict and write the 4 nearby views of every main view of one object; returns the number written."""
    mains = main_view_specs(folder)
    size = pipe.cfg.model.vae.sample_size
    conds, poses, targets, seeds = [], [], [], []
    for k, main in enumerate(mains):
        img = read_rgb_on_white(folder / f"view_{main.name}.png")
        stored = img.shape[-1]
        if img.shape[-1] != size:
            img = F.interpolate(img[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
        nearby = layout.nearby_views(main)
        conds += [img] * len(nearby)
        poses += nearby
        targets += [prediction_path(folder, v) for v in nearby]
        seeds += [seed + object_index * 1000 + 4 * k + j for j in range(len(nearby))]
    rel = RelativePose.from_views(poses)
    out = pipe.generate(torch.stack(conds), rel, num_inference_steps=steps, guidance_scale=guidance, seeds=seeds,
                        batch_size=batch_size, progress=False)
    if out.shape[-1] != stored:
        out = F.interpolate(out, size=(stored, stored), mode="area")
    for path, img in zip(targets, out):
        arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        with atomic_path(path) as tmp:
            Image.fromarray(arr).save(tmp)
    return len(targets)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="root of a reconstruction-layout dataset")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="Zero123 weights: local path or hub id (Zero123Pipeline.from_pretrained)")
    src.add_argument("--zero123-config", type=Path, help="random-weight Zero123 from a config (tests, smoke runs)")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the Zero123 config's)")
    p.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the config's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, default=None, help="only the first N objects (before sharding)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not 0 <= args.shard < args.num_shards:
        print(f"error: --shard must be in [0, {args.num_shards}), got {args.shard}", file=sys.stderr)
        return 2
    try:
        ids = complete_objects(args.dataset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ids = ids[: args.limit] if args.limit is not None else ids
    mine = [(i, name) for i, name in enumerate(ids) if i % args.num_shards == args.shard]
    todo = [(i, n) for i, n in mine if not is_done(args.dataset / n, main_view_specs(args.dataset / n))]
    print(f"{len(mine)} objects in shard {args.shard}/{args.num_shards}: {len(mine) - len(todo)} already done")
    if not todo:
        return 0
    from zero123 import Zero123Pipeline

    device = resolve_device(args.device)
    pipe = (Zero123Pipeline.from_pretrained(args.weights, device=device) if args.weights
            else Zero123Pipeline.from_config(args.zero123_config, device=device))
    written, t0 = 0, time.time()
    for i, name in todo:
        written += predict_object(pipe, args.dataset / name, i, args.seed, args.steps, args.guidance,
                                  args.batch_size)
        print(f"  {name}: done ({written} views, {time.time() - t0:.0f} s)", flush=True)
    record = {"weights": args.weights or str(args.zero123_config), "steps": args.steps, "guidance": args.guidance,
              "seed": args.seed, "objects": [n for _, n in todo]}
    write_text_atomic(args.dataset / f"predictions-{args.shard:04d}-of-{args.num_shards:04d}.json",
                      json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
