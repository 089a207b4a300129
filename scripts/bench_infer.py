"""Time the whole chain per stage (the pipeline/ package, the config's generator) and print a table; saves JSON.

    python scripts/bench_infer.py IMAGE [--config configs/infer/tiny.yaml] [--runs 2] [--polar-deg DEG]
                                  [--output outputs/bench_infer.json]

Model loading is timed once; every run re-does preprocessing, the 40 Zero123 views, elevation (unless
``--polar-deg``) and reconstruction. Wall seconds scale with the machine's load (reported); process CPU seconds
(all threads) much less so. On CUDA the peak allocated memory is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.io import write_text_atomic  # noqa: E402
from pipeline import build_pipeline, load_pipeline_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--config", default="configs/infer/tiny.yaml")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--polar-deg", type=float)
    p.add_argument("--output", default="outputs/bench_infer.json")
    args = p.parse_args(argv)

    overrides = ["progress=false"] + ([f"elevation_policy.polar_deg={args.polar_deg}"] if args.polar_deg else [])
    cfg = load_pipeline_config(args.config, overrides=overrides)
    load_avg_start = os.getloadavg()[0]
    pipe = build_pipeline(cfg)
    if pipe.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(pipe.device)
    runs = []
    for _ in range(args.runs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            out = pipe(args.image)
            wall = time.perf_counter() - t0
        timings = {k: v for k, v in out.timings.items() if k != "load_models"}
        runs.append({"timings_s": timings, "cpu_s": dict(out.cpu_timings), "wall_s": wall,
                     "polar_source": out.polar_source, "vertices": out.mesh.num_vertices})
    stages = list(runs[0]["timings_s"])
    table = {s: [r["timings_s"][s] for r in runs] for s in stages}
    table["total (one image)"] = [r["wall_s"] for r in runs]
    cpu = {s: [r["cpu_s"][s] for r in runs] for s in stages}
    cpu["total (one image)"] = [sum(r["cpu_s"].values()) for r in runs]
    print(f"config {args.config} on {pipe.device} ({torch.get_num_threads()} threads), {args.runs} run(s), "
          f"load average {load_avg_start:.1f} -> {os.getloadavg()[0]:.1f}; model loading {pipe.load_seconds:.2f} s")
    print(f"| {'stage':34s} | wall s (median) | CPU s (median) |")
    print(f"|{'-' * 36}|-----------------|----------------|")
    for stage, values in table.items():
        print(f"| {stage:34s} | {statistics.median(values):15.2f} | {statistics.median(cpu[stage]):14.2f} |")
    report = {
        "config": args.config, "image": args.image, "device": str(pipe.device), "runs": runs,
        "median_wall_s": {k: statistics.median(v) for k, v in table.items()},
        "median_cpu_s": {k: statistics.median(v) for k, v in cpu.items()}, "load_models_s": pipe.load_seconds,
        "load_average": [load_avg_start, os.getloadavg()[0]], "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    if pipe.device.type == "cuda":
        report["peak_memory_gb"] = torch.cuda.max_memory_allocated(pipe.device) / 1024**3
        print(f"peak CUDA memory {report['peak_memory_gb']:.2f} GB")
    write_text_atomic(args.output, json.dumps(report, indent=1))
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
