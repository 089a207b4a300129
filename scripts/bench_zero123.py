"""Benchmark Zero123: one full-size UNet step, batched vs one-view-at-a-time sampling, UNet evaluations per shape.

    python scripts/bench_zero123.py [--device cpu|cuda] [--dtype float32|bfloat16|float16]
                                    [--sampling-config configs/zero123/tiny.yaml] [--views 8] [--steps 10]
                                    [--out bench_zero123.json]

* "unet step": one ``UNet2DConditionModel`` forward at the full SD-1.x Zero123 size (random weights, latents
  4x32x32, 8 input channels, one context token) for a CFG batch of 2 rows (= one target view).
* "sampling": ``Zero123Pipeline.generate`` on ``--views`` targets, all in one batch vs ``batch_size=1``, same
  run, same seeds (default: the tiny config, so it runs on a CPU; pass the full config on a GPU).
* "evaluations per shape": One-2-3-45 generates 8 first-stage views with "75" steps (76 UNet calls) and 32
  nearby views with "50" (49 calls); CFG doubles every row. Compared with DPM-Solver++ at ``--fast-steps``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.io import write_text_atomic  # noqa: E402
from zero123 import Zero123Pipeline, load_zero123_config  # noqa: E402
from zero123.config import ModelConfig  # noqa: E402
from zero123.pose import relative_pose_from_degrees  # noqa: E402
from zero123.sampling import executed_steps  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_unet_step(device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    """Seconds per full-size UNet forward on a CFG batch of 2 (median over ``repeats`` after one warm-up)."""
    from diffusers import UNet2DConditionModel

    cfg = ModelConfig().unet
    unet = UNet2DConditionModel(**cfg.to_diffusers()).to(device, dtype).eval()
    params = sum(p.numel() for p in unet.parameters())
    x = torch.randn(2, 8, 32, 32, device=device, dtype=dtype)
    ctx = torch.randn(2, 1, 768, device=device, dtype=dtype)
    t = torch.tensor([500, 500], device=device)
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            unet(x, t, encoder_hidden_states=ctx)
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
    del unet
    return {"unet_parameters": params, "cfg_rows": 2, "seconds_per_step": statistics.median(times),
            "seconds_all": times}


def bench_sampling(cfg_path: str, device, dtype, views: int, steps: int) -> dict:
    """Images per second, all views in one batch vs one view per batch (same seeds, same run)."""
    cfg = load_zero123_config(cfg_path)
    cfg.sampling.max_batch_size = views
    pipe = Zero123Pipeline.from_config(cfg, device=device, dtype=dtype, seed=0)
    size = cfg.model.vae.sample_size
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).expand(views, -1, -1, -1)
    pose = relative_pose_from_degrees(torch.linspace(-20, 20, views), torch.linspace(0, 315, views))
    pipe.generate(images[:1], relative_pose_from_degrees(0.0, 90.0), num_inference_steps=2, seeds=0, progress=False)
    result = {}
    for name, bs in (("batched", views), ("one_at_a_time", 1)):
        sync(pipe.device)
        start = time.perf_counter()
        out = pipe.generate(images, pose, num_inference_steps=steps, seeds=0, batch_size=bs, progress=False)
        sync(pipe.device)
        sec = time.perf_counter() - start
        result[name] = {"batch_size": bs, "seconds": sec, "images_per_second": views / sec}
        result[name + "_output"] = out
    diff = (result.pop("batched_output") - result.pop("one_at_a_time_output")).abs().max().item()
    result["speedup_batched_vs_one"] = result["batched"]["images_per_second"] / result["one_at_a_time"]["images_per_second"]
    result["max_abs_difference_between_modes"] = diff
    result.update(config=cfg_path, views=views, steps=steps, unet_calls_per_batch=executed_steps("ddim", steps))
    return result


def evaluations_per_shape(fast_steps: int, batch: int) -> list[dict]:
    """UNet rows and batched calls to generate the 8 + 32 views of one shape."""
    plans = {
        "one2345_official (DDIM 75 / 50, CFG)": [(8, executed_steps("ddim", 75)), (32, executed_steps("ddim", 50))],
        f"dpmsolver++ ({fast_steps} / {fast_steps}, CFG)": [(8, fast_steps), (32, fast_steps)],
    }
    rows = []
    for name, stages in plans.items():
        unet_rows = sum(2 * v * s for v, s in stages)
        official_calls = sum(-(-v // 4) * s for v, s in stages)  # official: 4 views per call
        our_calls = sum(-(-v // batch) * s for v, s in stages)
        rows.append({"schedule": name, "views": 40, "unet_rows": unet_rows,
                     "calls_batch4": official_calls, f"calls_batch{batch}": our_calls})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--sampling-config", default="configs/zero123/tiny.yaml")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--fast-steps", type=int, default=20)
    p.add_argument("--unet-repeats", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="views per call for the evaluations table")
    p.add_argument("--skip-full-unet", action="store_true")
    p.add_argument("--out", type=Path, default=Path("bench_zero123.json"))
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    report = {"device": str(device), "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "platform": platform.platform()}
    if not args.skip_full_unet:
        report["unet_step_full_size"] = bench_unet_step(device, dtype, args.unet_repeats)
    report["sampling"] = bench_sampling(args.sampling_config, device, dtype, args.views, args.steps)
    report["evaluations_per_shape"] = evaluations_per_shape(args.fast_steps, args.batch)
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    if "unet_step_full_size" in report:
        per_row = report["unet_step_full_size"]["seconds_per_step"] / 2
        for row in report["evaluations_per_shape"]:
            row["est_unet_seconds_per_shape_at_measured_rate"] = row["unet_rows"] * per_row

    print(f"device {device} dtype {args.dtype} threads {report['torch_threads']} load {report['load_average_1min']:.1f}")
    if "unet_step_full_size" in report:
        u = report["unet_step_full_size"]
        print(f"\n| full-size UNet ({u['unet_parameters'] / 1e6:.1f} M params), CFG batch 2 | {u['seconds_per_step']:.3f} s/step |")
    s = report["sampling"]
    print(f"\n| sampling ({s['config']}, {s['views']} views, {s['steps']} steps) | s | images/s |\n|---|---|---|")
    for name in ("batched", "one_at_a_time"):
        print(f"| {name} (batch {s[name]['batch_size']}) | {s[name]['seconds']:.2f} | {s[name]['images_per_second']:.3f} |")
    print(f"speed-up batched / one-at-a-time: {s['speedup_batched_vs_one']:.2f}x "
          f"(max |difference| {s['max_abs_difference_between_modes']:.4f})")
    print("\n| schedule | views | UNet rows | calls (batch 4) | calls (batch "
          f"{args.batch}) | est. UNet s/shape |\n|---|---|---|---|---|---|")
    for r in report["evaluations_per_shape"]:
        est = r.get("est_unet_seconds_per_shape_at_measured_rate")
        print(f"| {r['schedule']} | {r['views']} | {r['unet_rows']} | {r['calls_batch4']} | "
              f"{r[f'calls_batch{args.batch}']} | {'' if est is None else f'{est:.0f}'} |")
    write_text_atomic(args.out, json.dumps(report, indent=1))
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
