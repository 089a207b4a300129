"""Run One-2-3-45 on a dataset's input images, then evaluate the meshes; sharded and resumable.

    python scripts/run_benchmark.py --images DIR --gt DIR --out DIR [--protocol one2345|syncdreamer|sf3d]
        [--objects LIST.txt] [--shard I --num-shards N] [--config configs/infer/default.yaml] [--set k=v ...]
        [--polar-deg DEG] [--input-azimuth-deg DEG] [--gt-depth DIR] [--clip-model PATH] [--device cpu|cuda]
        [--skip-inference] [--skip-evaluation] [--merge]

* Inputs: ``DIR/<object>.png`` or ``DIR/<object>/{input,000}.png`` (SyncDreamer's GSO renders: 000.png).
* Each shard (round robin over the sorted objects) predicts only its objects; finished objects
  (``<out>/predictions/<object>/mesh.ply + result.json``, written atomically) are skipped on re-runs, and finished
  per-object evaluations (``<out>/evaluation/<protocol>/<object>.json``) are reused.
* ``--novel-views --views DIR``: Zero-1-to-3's novel-view protocol on render folders (``DIR/<object>/cameras.json``
  + ``000.png``...): view 000 conditions Zero123, every other view is generated at the same relative pose, then
  PSNR / SSIM (/ LPIPS with ``--lpips``) against the renders. ``--zero123 PATH`` (weights) or ``--zero123-config
  YAML`` (random weights, labelled as such).
* ``--merge`` (after all shards finished) writes the tables of every object into ``<out>/evaluation/<protocol>``.
* ``--input-azimuth-deg``: azimuth (project convention, 0 on -y towards +x) of the input camera in the GT frame;
  the prediction (input camera at azimuth 30) is turned about +z into the GT frame (a known alignment).
  SyncDreamer's GSO renders: 90 (their azimuth 0 is on +x). ``--polar-deg`` skips elevation estimation
  (SyncDreamer's inputs: 60).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.config import ConfigError  # noqa: E402
from evaluation import benchmark as bm  # noqa: E402

DEFAULT_PIPELINE_CONFIG = REPO / "configs" / "infer" / "default.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Benchmark One-2-3-45: predict meshes for a dataset, then evaluate.")
    p.add_argument("--images", help="folder of input images (one per object)")
    p.add_argument("--gt", help="folder of ground-truth meshes (mesh benchmark)")
    p.add_argument("--out", required=True, help="benchmark folder (predictions/ and evaluation/ inside)")
    p.add_argument("--protocol", default="one2345")
    p.add_argument("--objects", help="text file listing the objects (default: everything in --images, or --gt)")
    p.add_argument("--shard", type=int, default=0, help="this shard's index (0-based)")
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--config", default=None,
                   help="pipeline YAML (as infer.py; default configs/infer/default.yaml), or with --method sjc|sds "
                        "an SJC YAML (default configs/sjc/official.yaml)")
    p.add_argument("--method", default="one2345", choices=["one2345", "sjc", "sds"],
                   help="one2345 (feed-forward) or Zero-1-to-3's per-shape optimisation (sjc_pipeline.py): "
                        "sjc (official 3drec score) or sds (threestudio-style SDS)")
    p.add_argument("--generator", help="method one2345: the view generator (one2345 | zero123plus | "
                                       "zero123plus_nearby; default: the config's), so generators compare on one "
                                       "benchmark")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pipeline config override")
    p.add_argument("--eval-set", action="append", default=[], metavar="KEY=VALUE", help="protocol override")
    p.add_argument("--polar-deg", type=float, help="known input polar angle (deg from +z); skips estimation")
    p.add_argument("--input-azimuth-deg", type=float, help="GT-frame azimuth of the input camera (known frame)")
    p.add_argument("--gt-depth", help="syncdreamer: folder with <object>/000-depth.png..015-depth.png")
    p.add_argument("--clip-model", help="transformers CLIPModel folder / cached hub id for CLIP similarity")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-inference", action="store_true", help="only evaluate existing predictions")
    p.add_argument("--skip-evaluation", action="store_true", help="only predict")
    p.add_argument("--merge", action="store_true", help="merge every shard's per-object records into one table")
    p.add_argument("--novel-views", action="store_true", help="novel-view benchmark on render folders (--views)")
    p.add_argument("--views", help="novel views: folder of <object>/cameras.json + NNN.png renders")
    p.add_argument("--zero123", help="novel views: Zero123 weights (folder / checkpoint / hub id)")
    p.add_argument("--zero123-config", help="novel views: Zero123 YAML for RANDOM weights (smoke runs)")
    p.add_argument("--steps", type=int, help="novel views: sampler steps (default: the Zero123 config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lpips", action="store_true", help="novel views: LPIPS (optional extra)")
    p.add_argument("--no-progress", action="store_true")
    return p


def make_view_generator(args):
    """``generate(cond, relative_pose) -> views`` backed by ``zero123.Zero123Pipeline``, and its label."""
    import torch

    from zero123 import Zero123Pipeline

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.zero123:
        pipe, label = Zero123Pipeline.from_pretrained(args.zero123, device=device), "zero123"
    elif args.zero123_config:
        pipe = Zero123Pipeline.from_config(args.zero123_config, device=device)
        label = "zero123 (RANDOM WEIGHTS; numbers meaningless)"
    else:
        raise ValueError("--novel-views needs --zero123 PATH (weights) or --zero123-config YAML (random weights)")

    def generate(cond, relative_pose):
        return pipe.generate(cond, relative_pose, num_inference_steps=args.steps, seeds=args.seed,
                             progress=not args.no_progress)

    return generate, label


def run_novel_views(args) -> int:
    from evaluation.folders import list_objects
    from evaluation.novel_views import evaluate_view_folders, generate_views, write_view_results

    if not args.views:
        raise ValueError("--novel-views needs --views DIR (render folders with cameras.json)")
    objects = bm.shard(list_objects(args.views, args.objects), args.shard, args.num_shards)
    generated = Path(args.out) / "novel_views"
    todo = [n for n in objects if not (generated / n / "generation.json").is_file()]
    generator, label = make_view_generator(args) if todo else (None, "zero123")
    if not todo:  # resumed run: recover the label from an earlier run
        label_file = Path(args.out) / "novel_views_label.txt"
        label = label_file.read_text().strip() if label_file.is_file() else label
    else:
        from data.io import write_text_atomic

        write_text_atomic(Path(args.out) / "novel_views_label.txt", label)
    for s in generate_views(objects, args.views, generated, generator, progress=not args.no_progress):
        if s["status"] == "error":
            print(f"GENERATION FAILED {s['object']}: {s['error']}", file=sys.stderr)
    lpips_net = None
    if args.lpips:
        from evaluation.images import lpips_model

        lpips_net = lpips_model("cpu")
    records = evaluate_view_folders(generated, args.views, "zero123", objects=objects, lpips_net=lpips_net,
                                    progress=not args.no_progress)
    out_dir = Path(args.out) / "evaluation" / "novel_views_zero123" / f"shard_{args.shard}_of_{args.num_shards}"
    summary = write_view_results(out_dir, records, split="zero123", method=label,
                                 dataset=Path(args.views).resolve().name)
    print((out_dir / "results.md").read_text())
    return 0 if summary["objects_ok"] == summary["objects_total"] else 3


def make_sjc_predictor(method: str, config: str | None, overrides: list[str], device: str,
                       polar_deg: float | None):
    """``predict(image_path, object_name) -> (Mesh, info)`` backed by ``sjc_pipeline`` (Zero123 built once)."""
    from sjc_pipeline import build_zero123, load_sjc_config, predict_mesh

    cfg = load_sjc_config(config or REPO / "configs" / "sjc" / "official.yaml",
                          overrides=list(overrides) + [f"method={method}", f"device={device}"])
    pipe = build_zero123(cfg)

    def predict(image_path: Path, name: str):
        return predict_mesh(cfg, image_path, pipe, polar_deg=polar_deg, progress=False)

    return predict


def make_predictor(config: str | None, overrides: list[str], device: str, polar_deg: float | None,
                   method: str = "one2345"):
    """``predict(image_path, object_name) -> (Mesh, info)`` backed by the configured generator of ``pipeline``
    (or, for ``method`` sjc / sds, by ``sjc_pipeline``)."""
    if method != "one2345":
        return make_sjc_predictor(method, config, overrides, device, polar_deg)
    from pipeline import build_pipeline, load_pipeline_config  # composed here, never inside data/

    config = config or str(DEFAULT_PIPELINE_CONFIG)

    cfg = load_pipeline_config(config, overrides=list(overrides) + [f"device={device}"])
    pipe = build_pipeline(cfg)

    def predict(image_path: Path, name: str):
        out = pipe(image_path, polar_deg=polar_deg, source_name=name)
        info = {"generator": out.generator, "polar_deg": out.polar_deg, "polar_source": out.polar_source,
                "timings": out.timings,
                "seed": out.seed, "warnings": out.warnings, "random_weight_stages": list(out.random_weight_stages),
                "mesh_frame": "pose.json world frame (input camera at azimuth 30 deg)"}
        return out.mesh, info

    return predict


def object_list(args) -> list[str]:
    from evaluation.folders import list_objects

    if args.objects:
        return list_objects(args.gt, args.objects)
    if args.images:
        return bm.list_dataset_objects(args.images)
    return list_objects(args.gt)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.novel_views:
            return run_novel_views(args)
        if not args.gt:
            raise ValueError("--gt is required for the mesh benchmark")
        from evaluation.protocols import load_protocol
        from evaluation.tables import write_results

        cfg = load_protocol(args.protocol, args.eval_set)
        all_objects = object_list(args)
        mine = bm.shard(all_objects, args.shard, args.num_shards)
        method, dataset = args.method, Path(args.gt).resolve().name
        transforms = None
        if args.input_azimuth_deg is not None:
            from data.conventions import INPUT_AZIMUTH_DEG

            transforms = bm.yaw_transforms(all_objects, args.input_azimuth_deg, INPUT_AZIMUTH_DEG)
        if args.merge:
            records = bm.merged_records(args.out, cfg.name, all_objects)
            summary = write_results(Path(args.out) / "evaluation" / cfg.name, records, cfg,
                                    bm.method_label(records, method), dataset)
            print(json.dumps(summary, indent=1))
            return 0 if summary["objects_ok"] == summary["objects_total"] else 3
        statuses = []
        if not args.skip_inference:
            if not args.images:
                raise ValueError("--images is required unless --skip-inference")
            todo = [n for n in mine if not bm.is_predicted(args.out, n)]
            sets = list(args.set) + ([f"generator={args.generator}"] if args.generator else [])
            predictor = make_predictor(args.config, sets, args.device, args.polar_deg,
                                       args.method) if todo else None
            statuses = bm.run_predictions(mine, args.images, args.out, predictor, progress=not args.no_progress)
            for s in statuses:
                if s["status"] == "error":
                    print(f"PREDICTION FAILED {s['object']}: {s['error']}", file=sys.stderr)
        if args.skip_evaluation:
            return 0 if all(s["status"] != "error" for s in statuses) else 3
        clip = None
        if args.clip_model and cfg.render_metrics:
            from evaluation.clip_similarity import ClipSimilarity

            clip = ClipSimilarity.from_pretrained(args.clip_model, "cpu" if args.device == "auto" else args.device)
        done = [n for n in mine if bm.is_predicted(args.out, n)]
        records = bm.evaluate_predictions(done, args.out, args.gt, cfg, gt_depth_root=args.gt_depth,
                                          transforms=transforms, clip=clip, progress=not args.no_progress)
        failed = [{"object": n, "status": "error", "error": "no prediction"} for n in mine if n not in done]
        shard_dir = Path(args.out) / "evaluation" / cfg.name / f"shard_{args.shard}_of_{args.num_shards}"
        summary = write_results(shard_dir, records + failed, cfg, bm.method_label(records, method), dataset,
                                extra={"shard": args.shard, "num_shards": args.num_shards})
        print((shard_dir / "results.md").read_text())
        return 0 if summary["objects_ok"] == summary["objects_total"] else 3
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
