"""Evaluate predicted meshes against ground truth under a named protocol; write JSON / CSV / Markdown / PNG.

    python scripts/evaluate.py --pred DIR --gt DIR --protocol one2345|syncdreamer|sf3d|FILE.yaml --out DIR
        [--objects LIST.txt] [--gt-depth DIR] [--transforms FILE.json] [--method NAME] [--dataset NAME]
        [--clip-model PATH_OR_HUB_ID] [--lpips] [--no-render] [--device cpu|cuda] [--set key=value ...]
    python scripts/evaluate.py --compare RUN1/results.json RUN2/results.json ... --out DIR
    python scripts/evaluate.py --novel-views --pred DIR --gt DIR --out DIR [--split zero123|all] [--lpips]

Meshes: ``DIR/<object>.{ply,obj,glb}`` or ``DIR/<object>/{mesh,model,meshes/model}.*`` (pipeline outputs and the
GSO layout both work). A missing or unreadable mesh is reported for that object; the others still evaluate.
Exit status: 0 all objects evaluated, 3 some failed (see results.md), 2 bad command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.config import ConfigError  # noqa: E402
from data.io import write_text_atomic  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate predicted meshes (or generated views) against ground truth.")
    p.add_argument("--pred", help="folder of predicted meshes (or generated views with --novel-views)")
    p.add_argument("--gt", help="folder of ground-truth meshes (or views)")
    p.add_argument("--protocol", default="one2345", help="preset name (one2345, syncdreamer, sf3d) or a YAML file")
    p.add_argument("--out", required=True, help="output folder for results.{json,csv,md,png}")
    p.add_argument("--objects", help="text file listing the objects (default: everything in --gt)")
    p.add_argument("--gt-depth", help="syncdreamer: folder with <object>/000-depth.png..015-depth.png")
    p.add_argument("--transforms", help="JSON {object: 4x4} mapping each prediction into its GT frame")
    p.add_argument("--method", help="method name for the tables (default: the --pred folder name)")
    p.add_argument("--dataset", help="dataset name for the tables (default: the --gt folder name)")
    p.add_argument("--clip-model", help="transformers CLIPModel folder or cached hub id (enables CLIP similarity)")
    p.add_argument("--lpips", action="store_true", help="also LPIPS (optional extra: lpips + torchvision + weights)")
    p.add_argument("--no-render", action="store_true", help="skip render metrics (PSNR/SSIM/CLIP)")
    p.add_argument("--device", default="cpu", help="device for CLIP / LPIPS")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a protocol field")
    p.add_argument("--compare", nargs="+", metavar="RESULTS_JSON", help="combine finished runs into one table")
    p.add_argument("--novel-views", action="store_true", help="PSNR/SSIM/LPIPS of generated vs GT views")
    p.add_argument("--split", default="zero123", choices=("zero123", "all"),
                   help="novel views: zero123 = view 000 is the input and is excluded; all = every view")
    p.add_argument("--no-progress", action="store_true")
    return p


def _optional_lpips(enabled: bool, device: str):
    if not enabled:
        return None
    from evaluation.images import lpips_model

    return lpips_model(device)


def run_compare(args) -> int:
    from evaluation.tables import comparison_tables

    md, csv_text, payload = comparison_tables(args.compare)
    out = Path(args.out)
    write_text_atomic(out / "comparison.md", md)
    write_text_atomic(out / "comparison.csv", csv_text)
    write_text_atomic(out / "comparison.json", json.dumps(payload, indent=1))
    print(md)
    return 0


def run_novel_views(args) -> int:
    from evaluation.novel_views import evaluate_view_folders, write_view_results

    lpips_net = _optional_lpips(args.lpips, args.device)
    records = evaluate_view_folders(args.pred, args.gt, split=args.split, objects=args.objects,
                                    lpips_net=lpips_net, progress=not args.no_progress)
    summary = write_view_results(args.out, records, split=args.split, method=args.method or Path(args.pred).name,
                                 dataset=args.dataset or Path(args.gt).name)
    print(json.dumps(summary, indent=1))
    return 0 if all(r["status"] == "ok" for r in records) else 3


def run_meshes(args) -> int:
    from evaluation.folders import evaluate_folders, load_transforms
    from evaluation.protocols import load_protocol
    from evaluation.tables import write_results

    overrides = list(args.set) + (["render_metrics=false"] if args.no_render else [])
    cfg = load_protocol(args.protocol, overrides)
    clip = None
    if args.clip_model and cfg.render_metrics:
        from evaluation.clip_similarity import ClipSimilarity

        clip = ClipSimilarity.from_pretrained(args.clip_model, args.device)
    records = evaluate_folders(args.pred, args.gt, cfg, args.objects, gt_depth_root=args.gt_depth,
                               transforms=load_transforms(args.transforms), clip=clip,
                               lpips_net=_optional_lpips(args.lpips, args.device), progress=not args.no_progress)
    method, dataset = args.method or Path(args.pred).resolve().name, args.dataset or Path(args.gt).resolve().name
    summary = write_results(args.out, records, cfg, method, dataset,
                            extra={"clip_model": args.clip_model, "pred_dir": str(args.pred), "gt_dir": str(args.gt)})
    for r in records:
        if r["status"] != "ok":
            print(f"FAILED {r['object']}: {r['error']}", file=sys.stderr)
    print((Path(args.out) / "results.md").read_text())
    return 0 if summary["objects_ok"] == summary["objects_total"] else 3


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.compare:
            return run_compare(args)
        if not args.pred or not args.gt:
            parser.error("--pred and --gt are required (or use --compare)")
        for flag, path in (("--pred", args.pred), ("--gt", args.gt)):
            if not Path(path).is_dir():
                parser.error(f"{flag} {path} is not a folder")
        return run_novel_views(args) if args.novel_views else run_meshes(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:  # incl. LpipsUnavailable
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
