"""Benchmark Zero-1-to-3's SJC (and the SDS option): seconds per optimisation iteration, implied time per shape.

    python scripts/bench_sjc.py [--zero123-config configs/zero123/zero123_xl.yaml configs/zero123/tiny.yaml]
                                [--grid 100] [--steps 3] [--method sjc] [--device cpu] [--out bench_sjc.json]

Each row builds the Zero123 of one config with RANDOM weights (no download; the arithmetic is that of real weights),
the official 100^3 field, and runs ``--steps`` timed iterations of the official loop (after one warm-up iteration):
4 latent renders at 32x32 (input, sampled, near view; + the input decoding through the VAE with its backward), one
guided UNet call (batch 2), Adamax. Prints a table and writes JSON; the implied time per shape is at the official
10 000 iterations. Paper figures are quoted beside it (not measured here).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.io import write_text_atomic  # noqa: E402
from sjc_pipeline import load_sjc_config, optimiser_for_image  # noqa: E402

PAPER = [
    ("Zero-1-to-3 appendix (3drec SJC, 10 000 steps)", "RTX A6000", "~30 min per shape"),
    ("One-2-3-45 Table 1, 'Zero123 + SD' baseline (implementation not stated)", "A100", "~15 min per shape"),
    ("One-2-3-45 (feed-forward, for comparison)", "A100", "~45 s per shape"),
]


def synthetic_image(size: int = 256) -> np.ndarray:
    """A red disc and a blue box on white (the kind of input the fixtures use)."""
    yy, xx = np.mgrid[:size, :size] / size
    img = np.ones((size, size, 3), np.float32)
    img[(xx - 0.45) ** 2 + (yy - 0.5) ** 2 < 0.05] = (0.9, 0.2, 0.2)
    img[(abs(xx - 0.65) < 0.1) & (abs(yy - 0.6) < 0.15)] = (0.2, 0.3, 0.9)
    return img


def bench_row(zero123_config: str, args) -> dict:
    overrides = [f"zero123_config={zero123_config}", "zero123_weights=null", f"field.grid_size={args.grid}",
                 f"n_steps={args.steps + 1}", "progress=false", f"method={args.method}", f"device={args.device}"]
    cfg = load_sjc_config(ROOT / "configs/sjc/official.yaml", overrides=overrides)
    t0 = time.perf_counter()
    opt = optimiser_for_image(cfg, synthetic_image())
    build_s = time.perf_counter() - t0
    unet_params = sum(p.numel() for p in opt.score.model.unet.parameters())
    opt.step()  # warm-up
    times = []
    for _ in range(args.steps):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    per_iter = statistics.mean(times)
    return {
        "zero123_config": zero123_config, "unet_parameters": unet_params, "grid": args.grid, "method": args.method,
        "build_s": build_s, "seconds_per_iteration": per_iter, "iteration_times": times,
        "implied_hours_at_10000_steps": per_iter * 10000 / 3600,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zero123-config", nargs="+",
                   default=["configs/zero123/zero123_xl.yaml", "configs/zero123/tiny.yaml"])
    p.add_argument("--grid", type=int, default=100)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--method", default="sjc", choices=["sjc", "sds"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench_sjc.json")
    args = p.parse_args(argv)
    rows = [bench_row(c, args) for c in args.zero123_config]
    env = {"device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_average": os.getloadavg(), "platform": platform.platform(), "torch": torch.__version__}
    print(f"\n{args.method.upper()} iteration, {args.grid}^3 field, {args.device}, {env['torch_threads']} threads, "
          f"load average {env['load_average'][0]:.1f}")
    print("| Zero123 (random weights) | UNet params | s / iteration | implied h per shape (10 000 it.) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['zero123_config']).name} | {r['unet_parameters'] / 1e6:.1f} M | "
              f"{r['seconds_per_iteration']:.2f} | {r['implied_hours_at_10000_steps']:.1f} |")
    print("\nPaper figures (quoted, not measured here):")
    for what, gpu, t in PAPER:
        print(f"  {what}: {t} on {gpu}")
    write_text_atomic(args.out, json.dumps({"rows": rows, "environment": env, "paper": PAPER}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
