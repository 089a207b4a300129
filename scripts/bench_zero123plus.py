"""Benchmark Zero123++: one full-size UNet evaluation (random weights), UNet evaluations per shape, images/s.

    python scripts/bench_zero123plus.py [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--rows 1]
                                        [--tiny-config configs/zero123plus/tiny.yaml] [--skip-full-unet]
                                        [--out bench_zero123plus.json]

* "full-size UNet": the SD2-geometry ``UNet2DConditionModel`` of Zero123++ (865.9 M parameters, random weights,
  reference attention installed) at the real sizes: the **write pass** on the 64x64 reference latent (4,096
  tokens at the top level) and the **read pass** on the 120x80 latent of the 960x640 grid (9,600 queries against
  9,600 + 4,096 keys), context 77 x 1024, ``--rows`` batch rows (a CFG step has 2 rows in each pass).
* "Zero123 row": one row of One-2-3-45's Zero123 UNet (SD-1 geometry, 8 channels, 32x32 latent) for comparison.
* "evaluations per shape": UNet evaluations (batch rows x passes) to get one shape's views. One-2-3-45: 8
  first-stage views x 76 DDIM calls + 32 nearby views x 49 calls, CFG 2 rows = 4,352 evaluations at 32x32
  (SD-1 size). Zero123++: steps x 2 CFG rows x 2 passes (write 64x64 + read 120x80), six views at once.
* "sampling": ``Zero123PlusPipeline.generate`` of the tiny random-weight config (end to end: preprocessing, VAE,
  both passes, decoding) in views per second on this machine.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.io import write_text_atomic  # noqa: E402
from zero123plus import Zero123PlusPipeline, load_zero123plus_config  # noqa: E402
from zero123plus.config import UNetConfig  # noqa: E402
from zero123plus.model import ReferenceUNet  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ONE2345_EVALUATIONS = 2 * (8 * 76 + 32 * 49)  # 4,352 (zero123/sampling.executed_steps: "75" -> 76, "50" -> 49)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cast(module, device, dtype):
    module = module.to(device)
    return module if dtype == torch.float32 else module.to(dtype=dtype)


def timed(fn, device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench_full_unet(device: torch.device, dtype: torch.dtype, rows: int, repeats: int) -> dict:
    """Seconds of one write pass (64x64) and one read pass (120x80) of the full-size UNet, ``rows`` rows each."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    start = time.perf_counter()
    unet = ReferenceUNet(_cast(UNet2DConditionModel(**UNetConfig().to_diffusers()), device, dtype)).eval()
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in unet.parameters())
    ctx = torch.randn(rows, 77, 1024, device=device, dtype=dtype)
    ref = torch.randn(rows, 4, 64, 64, device=device, dtype=dtype)
    x = torch.randn(rows, 4, 120, 80, device=device, dtype=dtype)
    t = torch.tensor(500.0, device=device)
    store: dict = {}

    def write():
        store.clear()
        unet.unet(ref, t, ctx, cross_attention_kwargs=dict(mode="w", ref_dict=store), return_dict=False)

    def read():
        unet.unet(x, t, ctx, cross_attention_kwargs=dict(mode="m", ref_dict=store), return_dict=False)

    with torch.no_grad():
        write_s = timed(write, device, repeats)
        read_s = timed(read, device, repeats)
    del unet
    w, r = statistics.median(write_s), statistics.median(read_s)
    return {"unet_parameters": params, "rows": rows, "build_seconds": build_s, "write_pass_seconds": w,
            "read_pass_seconds": r, "seconds_per_row_write": w / rows, "seconds_per_row_read": r / rows,
            "write_all": write_s, "read_all": read_s,
            "latent_write": [4, 64, 64], "latent_read": [4, 120, 80]}


def bench_zero123_row(device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    """Seconds of one row of One-2-3-45's Zero123 UNet (SD-1 geometry, 8 input channels, 32x32, one token)."""
    from diffusers import UNet2DConditionModel

    from zero123.config import ModelConfig

    torch.manual_seed(0)
    unet = _cast(UNet2DConditionModel(**ModelConfig().unet.to_diffusers()), device, dtype).eval()
    x = torch.randn(1, 8, 32, 32, device=device, dtype=dtype)
    ctx = torch.randn(1, 1, 768, device=device, dtype=dtype)
    t = torch.tensor([500], device=device)
    with torch.no_grad():
        times = timed(lambda: unet(x, t, encoder_hidden_states=ctx), device, repeats)
    params = sum(p.numel() for p in unet.parameters())
    del unet
    return {"unet_parameters": params, "seconds_per_row": statistics.median(times), "all": times}


def evaluations_per_shape(rates: dict | None, zero123: dict | None = None) -> list[dict]:
    """UNet evaluations to produce one shape's views, with the measured per-row rates when given."""
    rows = [{"method": "One-2-3-45 (Zero123 DDIM 75/50, CFG, 40 views)", "views": 40,
             "unet_evaluations": ONE2345_EVALUATIONS, "at_latent": "32x32 (SD-1 UNet)"}]
    if zero123 is not None:
        sec = ONE2345_EVALUATIONS * zero123["seconds_per_row"]
        rows[0].update(est_unet_seconds_per_shape=sec, est_views_per_second=40 / sec)
    for name, steps, cfg in (("Zero123++ v1.2/v1.1 default (28 steps, CFG 4)", 28, True),
                             ("Zero123++ README example (75 steps, CFG 4)", 75, True),
                             ("InstantMesh (75 steps, CFG 4)", 75, True),
                             ("Zero123++ 28 steps, no CFG", 28, False)):
        n = steps * (2 if cfg else 1)
        row = {"method": name, "views": 6, "unet_evaluations": 2 * n, "write_64x64": n, "read_120x80": n,
               "at_latent": "64x64 write + 120x80 read (SD-2 UNet)",
               "fraction_of_one2345": 2 * n / ONE2345_EVALUATIONS}
        if rates is not None:
            sec = n * (rates["seconds_per_row_write"] + rates["seconds_per_row_read"])
            row["est_unet_seconds_per_shape"] = sec
            row["est_views_per_second"] = 6 / sec
        rows.append(row)
    return rows


def bench_sampling(cfg_path: str, device, dtype, steps: int) -> dict:
    """Views per second of the whole tiny pipeline (one input -> six views)."""
    cfg = load_zero123plus_config(cfg_path)
    pipe = Zero123PlusPipeline.from_config(cfg, device=device, dtype=dtype, seed=0)
    yy, xx = np.mgrid[:256, :256]
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[(yy - 128) ** 2 + (xx - 128) ** 2 < 80**2] = (200, 60, 30, 255)
    from PIL import Image

    image = Image.fromarray(rgba, "RGBA")
    pipe.generate(image, seeds=0, num_inference_steps=1, progress=False)  # warm-up
    times = timed(lambda: pipe.generate(image, seeds=0, num_inference_steps=steps, progress=False), device, 2)
    sec = statistics.median(times)
    return {"config": cfg_path, "steps": steps, "guidance_scale": cfg.sampling.guidance_scale,
            "grid": [cfg.sampling.height, cfg.sampling.width], "seconds_per_input": sec, "views_per_second": 6 / sec,
            "unet_evaluations": pipe.unet_evaluations(steps)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--rows", type=int, default=1, help="batch rows per full-size pass (CFG steps have 2)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tiny-config", default="configs/zero123plus/tiny.yaml")
    p.add_argument("--tiny-steps", type=int, default=4)
    p.add_argument("--skip-full-unet", action="store_true")
    p.add_argument("--skip-zero123", action="store_true", help="do not time One-2-3-45's Zero123 UNet row")
    p.add_argument("--out", type=Path, default=Path("bench_zero123plus.json"))
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    report = {"device": str(device), "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_average_1min_start": os.getloadavg()[0],
              "platform": platform.platform()}
    rates = zero123 = None
    if not args.skip_full_unet:
        rates = report["full_size_unet"] = bench_full_unet(device, dtype, args.rows, args.repeats)
        if not args.skip_zero123:
            zero123 = report["zero123_unet_row"] = bench_zero123_row(device, dtype, max(args.repeats, 2))
    report["evaluations_per_shape"] = evaluations_per_shape(rates, zero123)
    report["sampling_tiny"] = bench_sampling(args.tiny_config, device, dtype, args.tiny_steps)
    report["load_average_1min_end"] = os.getloadavg()[0]
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    print(f"device {device} dtype {args.dtype} threads {report['torch_threads']} "
          f"load {report['load_average_1min_start']:.1f} -> {report['load_average_1min_end']:.1f}")
    if rates is not None:
        print(f"\n| full-size UNet ({rates['unet_parameters'] / 1e6:.1f} M params), {rates['rows']} row(s) | seconds |"
              f"\n|---|---|\n| write pass, 64x64 reference latent | {rates['write_pass_seconds']:.2f} |"
              f"\n| read pass, 120x80 latent (+ 4,096 reference tokens) | {rates['read_pass_seconds']:.2f} |"
              f"\n| one CFG step (2 rows x both passes, estimated) | "
              f"{2 * (rates['seconds_per_row_write'] + rates['seconds_per_row_read']):.2f} |")
    if zero123 is not None:
        print(f"| One-2-3-45's Zero123 UNet ({zero123['unet_parameters'] / 1e6:.1f} M params), 1 row at 32x32 | "
              f"{zero123['seconds_per_row']:.2f} |")
    print("\n| method | views | UNet evaluations | vs One-2-3-45 | est. UNet s / shape | est. views/s |\n|---|---|---|---|---|---|")
    for r in report["evaluations_per_shape"]:
        est, frac, vps = (r.get(k) for k in ("est_unet_seconds_per_shape", "fraction_of_one2345", "est_views_per_second"))
        frac_s = "1" if frac is None else f"{frac:.3f}"
        est_s = "-" if est is None else f"{est:.0f}"
        vps_s = "-" if vps is None else f"{vps:.4f}"
        print(f"| {r['method']} | {r['views']} | {r['unet_evaluations']:,} | {frac_s} | {est_s} | {vps_s} |")
    s = report["sampling_tiny"]
    print(f"\ntiny pipeline ({s['config']}, grid {s['grid'][0]}x{s['grid'][1]}, {s['steps']} steps, CFG "
          f"{s['guidance_scale']}): {s['seconds_per_input']:.2f} s per input, {s['views_per_second']:.2f} views/s, "
          f"{s['unet_evaluations']} UNet evaluations")
    write_text_atomic(args.out, json.dumps(report, indent=1))
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
