#!/usr/bin/env python
"""The CUDA device check: the ``cuda``-marked tests, then official-size timings with random weights; one JSON and
one Markdown table under ``--out``.

    bash scripts/cuda_check.sh [--out outputs/cuda_check]     # on a GPU machine: installs the carried wheels first
    python scripts/cuda_check.py --device cpu --quick           # dry run: same code paths, tiny sizes (CI runs it)

Steps (each recorded with its status; a failing step does not stop the others; exit 1 if any failed):

1. ``environment``: Python, torch, CUDA / cuDNN, GPU, the versions of the libraries the project uses, and every
   import the project needs (a missing one names ``make cuda-carry``).
2. ``tests``: ``pytest -m cuda`` (tests/cuda + the CUDA parameters of tests/reconstruction/test_recon_parity.py) with
   ``ONE2345_REQUIRE_CUDA=1`` (no silent skips); then the official-parity test files of the CPU code run on this
   machine's library stack (elevation search, camera layout, Zero123 schedule / tiny-model parity). In the dry run:
   the ``cuda`` tests without the slow recon parity, on the CPU (``ONE2345_CUDA_TESTS_DEVICE=cpu``).
3. ``timings`` (random weights: time does not depend on them; the infer config gives every size):
   one Zero123 UNet step at batch 2 / 8 / 16 (UNet rows, CFG included) in float16; the One-2-3-45 schedule's four
   Zero123 calls (4 + 4 + 4 + 28 views, "75" / "50" DDIM steps, CFG 3, the config's memory-budgeted batch);
   the reconstruction (fixture images and weights when the reference folder is there) at mesh resolution 256 by
   phase; the elevation search (LoFTR at 480 px on the device + the pose search on the official fixture's matches);
   the whole ``infer.py`` run with ``configs/infer/random_full.yaml`` (its result.json: seconds and peak memory per
   stage). Peak memory: CUDA allocator peak per row; on a CPU the process's peak resident set so far.

``--quick`` uses ``configs/infer/tiny.yaml`` with :data:`QUICK_OVERRIDES` (2 DDIM steps, 16^3 volume and mesh) and
batch 2 / 4 for the UNet step; on a CPU it runs everything on one thread.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Imports the project needs at run time (module -> pip name), checked before anything runs.
NEEDED_MODULES = {"torch": "torch", "numpy": "numpy", "diffusers": "diffusers", "transformers": "transformers",
                  "safetensors": "safetensors", "omegaconf": "omegaconf", "kornia": "kornia", "trimesh": "trimesh",
                  "cv2": "opencv-python-headless", "skimage": "scikit-image", "scipy": "scipy", "PIL": "Pillow",
                  "tqdm": "tqdm", "yaml": "PyYAML", "pytest": "pytest"}
VERSIONS_OF = ["torch", "numpy", "diffusers", "transformers", "kornia", "omegaconf", "trimesh", "scipy", "cv2",
               "skimage", "pyrender"]
#: Dry-run sizes: tiny random models, small enough for the 2-core CI machine.
QUICK_OVERRIDES = ["progress=false", "mesh_resolution=16", "elevation.matcher.resize_px=32",
                   "reconstruction.volume_resolution=16", "zero123.model.vae.block_out_channels=[8,8,8,8]",
                   "zero123.model.vae.norm_num_groups=4", "schedule.stage1_steps=2", "schedule.stage2_steps=2"]
#: Test files of CPU code whose official parity depends on the machine's library stack (float32 sin/cos, ...).
STACK_PARITY_TESTS = ["tests/elevation/test_elevation_parity.py", "tests/data/test_layout_parity.py",
                      "tests/zero123/test_official_parity.py", "tests/reconstruction/test_sparse_costreg_net.py"]
UPSTREAM = {  # published figures (not measured here): One-2-3-45 README and issue #1
    "zero123_schedule": "~40 s (about 1 s per generated image, 40 images; A100, upstream issue #1)",
    "reconstruction": "~5 s (A100, upstream issue #1)",
    "infer": "~45 s per shape (A100, upstream issue #1); ~40 s (A6000, upstream README)",
}


# ------------------------------------------------------------------------------------------------ measuring
class Meter:
    """Seconds and peak memory of a block: CUDA allocator peak, or on a CPU the process's peak RSS so far."""

    def __init__(self, device):
        import torch

        self.torch, self.device, self.cuda = torch, device, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def run(self, fn):
        if self.cuda:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        result = fn()
        self.sync()
        seconds = time.perf_counter() - t0
        return result, seconds, self.peak_gb()

    def peak_gb(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated(self.device) / 1024**3
        from pipeline import peak_rss_bytes

        return peak_rss_bytes() / 1024**3


def row(stage: str, seconds: float | None, peak_gb: float | None, note: str = "", **extra) -> dict:
    return {"stage": stage, "seconds": None if seconds is None else round(seconds, 4),
            "peak_memory_gb": None if peak_gb is None else round(peak_gb, 3), "note": note, **extra}


# ------------------------------------------------------------------------------------------------ steps
def environment(device) -> dict:
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "device": str(device),
           "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "versions": {}, "missing": []}
    for module, pip_name in NEEDED_MODULES.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 -- recorded
            env["missing"].append(f"{module} ({pip_name}): {type(exc).__name__}: {exc}")
    for module in VERSIONS_OF:
        try:
            env["versions"][module] = getattr(importlib.import_module(module), "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            env["versions"][module] = f"not importable ({type(exc).__name__})"
    env["cuda_available"] = torch.cuda.is_available()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 1024**3, 1),
                   multiprocessors=props.multi_processor_count, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            env["nvidia_smi"] = smi.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["nvidia_smi"] = None
    return env


def junit_summary(path: Path) -> dict:
    """Counts and failures of a pytest JUnit XML file."""
    if not path.is_file():
        return {"error": f"no {path.name} (pytest did not run)"}
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures, skips = [], set()
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            counts["failed"] += 1
            failures.append({"test": name, "message": (bad.get("message") or "")[:400]})
        elif skip is not None:
            counts["skipped"] += 1
            skips.add((skip.get("message") or "")[:200])
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures, "skip_reasons": sorted(skips),
            "seconds": round(float(root.find("testsuite").get("time", 0) if root.tag == "testsuites"
                                   else root.get("time", 0)), 1)}


def run_pytest(name: str, args: list[str], env: dict, out: Path, timeout: float) -> dict:
    """One pytest run in a subprocess (JUnit XML + log under ``out``); ``ok`` = exit 0 with >= 1 test passed."""
    xml = out / f"pytest_{name}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", f"--junitxml={xml}", *args]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True)
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-4000:]
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, tail = "timeout", f"pytest exceeded {timeout:.0f} s\n{partial[-3000:]}"
    (out / f"pytest_{name}.log").write_text(tail)
    print(tail[-1500:], flush=True)
    summary = junit_summary(xml)
    summary.update(command=" ".join(cmd[3:]), exit_code=code, wall_seconds=round(time.perf_counter() - t0, 1))
    # pytest exit 0 = all passed, 5 = nothing collected (a failure here: the check must test something)
    summary["ok"] = code == 0 and summary.get("failed", 1) == 0 and summary.get("passed", 0) > 0
    return summary


def tests(args, device, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if args.shared:
        env["ONE2345_SHARED"] = str(args.shared)
    results = {}
    if device.type == "cuda":
        env.update(ONE2345_REQUIRE_CUDA="1", ONE2345_CUDA_TESTS_DEVICE=str(device))
        if args.shared:
            env["ONE2345_REQUIRE_SHARED"] = "1"
        results["cuda"] = run_pytest("cuda", ["-m", "cuda", "tests/cuda", "tests/reconstruction/test_recon_parity.py"],
                                     env, out, pytest_timeout(args, 0.4))
        if not args.quick:
            stack_env = {k: v for k, v in env.items() if k != "ONE2345_REQUIRE_SHARED"}  # zero123_parity not carried
            results["stack_parity"] = run_pytest("stack_parity", ["-m", "not slow", *STACK_PARITY_TESTS],
                                                 stack_env, out, pytest_timeout(args, 0.2))
    else:
        env.update(ONE2345_CUDA_TESTS_DEVICE="cpu", OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        marker = "cuda and not slow" if args.quick else "cuda"
        results["cuda_on_cpu"] = run_pytest("cuda_on_cpu", ["-m", marker, "tests/cuda",
                                                            "tests/reconstruction/test_recon_parity.py"],
                                            env, out, pytest_timeout(args, 0.6))
    return results


def pytest_timeout(args, share: float) -> float:
    """``--test-timeout``, capped at ``share`` of the time budget left (at least 30 s)."""
    left = args.left() if hasattr(args, "left") else args.budget
    return max(30.0, min(args.test_timeout, share * left))


def infer_config(args) -> tuple[str, list[str]]:
    if args.quick:
        return "configs/infer/tiny.yaml", list(QUICK_OVERRIDES)
    return "configs/infer/random_full.yaml", []


def time_unet_step(args, device, cfg) -> list[dict]:
    import torch
    from diffusers import UNet2DConditionModel

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    meter = Meter(device)
    u = cfg.zero123.model.unet
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**u.to_diffusers()).to(dtype).eval()
    params = sum(p.numel() for p in unet.parameters())
    rows = []
    side, channels = u.sample_size, u.in_channels
    for batch in args.unet_batches:
        x = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
        ctx = torch.randn(batch, 1, u.cross_attention_dim, device=device, dtype=dtype)
        t = torch.full((batch,), 500, device=device)
        with torch.no_grad():
            for _ in range(args.warmup):
                unet(x, t, encoder_hidden_states=ctx)
            meter.sync()
            times, peak = [], 0.0
            for _ in range(args.repeats):
                _, sec, peak = meter.run(lambda: unet(x, t, encoder_hidden_states=ctx))
                times.append(sec)
        times.sort()
        median = times[len(times) // 2]
        views = f"{batch // 2} view{'s' if batch > 2 else ''}"
        rows.append(row(f"Zero123 UNet step, batch {batch} ({views} with CFG), {str(dtype)[6:]}", median,
                        peak, f"{params / 1e6:.0f} M parameters; median of {args.repeats}", batch=batch,
                        seconds_per_row=round(median / batch, 5)))
    del unet
    return rows


def time_zero123_schedule(args, device, cfg) -> list[dict]:
    """The four Zero123 calls of One2345Pipeline.__call__, with its seeds, hand-offs and batch sizes."""
    import torch

    from data import layout
    from pipeline import stage2_conditioning, view_seed
    from zero123 import Zero123Pipeline

    dtype = torch.float16 if (cfg.half and device.type == "cuda") else torch.float32
    meter = Meter(device)
    try:  # random init directly on the device (seconds instead of a minute for 1.2 B parameters on a CPU)
        with torch.device(device):
            pipe = Zero123Pipeline.from_config(cfg.zero123, device=device, dtype=dtype, seed=0)
    except Exception:  # noqa: BLE001 -- a library that cannot build under a device context: build on the CPU
        pipe = Zero123Pipeline.from_config(cfg.zero123, device=device, dtype=dtype, seed=0)
    s = cfg.schedule
    cond = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)).expand(4, -1, -1, -1)

    def generate(images, views, steps):
        return pipe.generate(images.to(device), layout.RelativePose.from_views(views), num_inference_steps=steps,
                             guidance_scale=s.guidance_scale, seeds=[view_seed(cfg.seed, v.name) for v in views],
                             batch_size=s.batch_size, progress=False).float().cpu()

    polar = 90.0
    specs = layout.first_stage_views(polar)
    rows, total, peak_all = [], 0.0, 0.0
    generate(cond[:1], specs[:1], 2)  # warm-up (cuDNN autotuning, allocator)
    first, sec, peak = meter.run(lambda: generate(cond, specs[:4], s.stage1_steps))
    rows.append(row(f"  stage 1, views 0-3 (4 views, \"{s.stage1_steps}\" steps)", sec, peak))
    near0 = layout.nearby_views(specs[0])
    _, sec2, peak2 = meter.run(lambda: generate(stage2_conditioning(first[:1]).expand(4, -1, -1, -1), near0,
                                                s.stage2_steps))
    rows.append(row(f"  stage 2, nearby views of view 0 (4 views, \"{s.stage2_steps}\" steps)", sec2, peak2))
    ring2, sec3, peak3 = meter.run(lambda: generate(cond, specs[4:], s.stage1_steps))
    rows.append(row("  stage 1, second ring (4 views)", sec3, peak3))
    rest = [v for parent in specs[1:] for v in layout.nearby_views(parent)]
    c_rest = stage2_conditioning(torch.cat([first, ring2])[1:]).repeat_interleave(4, dim=0)
    _, sec4, peak4 = meter.run(lambda: generate(c_rest, rest, s.stage2_steps))
    rows.append(row("  stage 2, the 28 other nearby views", sec4, peak4))
    total = sec + sec2 + sec3 + sec4
    peak_all = max(peak, peak2, peak3, peak4)
    batch = s.batch_size or pipe.auto_batch_size()
    return [row(f"Zero123, the One-2-3-45 schedule (40 views), {str(dtype)[6:]}", total, peak_all,
                f"{total / 40:.2f} s per view; {batch} views per UNet call", upstream=UPSTREAM["zero123_schedule"],
                views_per_call=batch)] + rows


def time_reconstruction(args, device, cfg) -> list[dict]:
    import numpy as np
    import torch

    from reconstruction import Reconstructor
    from reconstruction.meshing import marching_cubes
    from reconstruction.reconstructor import SceneInputs

    meter = Meter(device)
    rcfg = cfg.reconstruction
    fixture = Path(args.shared) / "fixtures/one2345_parity/recon" if args.shared else None
    if fixture is not None and (fixture / "recon_polar090.npz").is_file():
        ref = np.load(fixture / "recon_polar090.npz")
        rec = Reconstructor.from_official_checkpoint(fixture / "model_state.pth", device, rcfg)
        images = torch.from_numpy(ref["src_images_u8"]).permute(0, 3, 1, 2).float() / 255
        inputs = SceneInputs(images, torch.from_numpy(ref["in_w2cs"]), torch.from_numpy(ref["in_intrinsics"]),
                             torch.from_numpy(ref["in_affine_mats"]))
        source = "official fixture (polar 90): its 32 views and network weights"
    else:
        from data import layout
        from data.views import Views

        rec = Reconstructor.from_config(rcfg, device)
        views = Views(torch.rand(32, 3, 256, 256, generator=torch.Generator().manual_seed(0)),
                      layout.cameras_for(layout.all_nearby_views(90.0)))
        inputs = SceneInputs.from_views(views, layout.cameras_for(layout.first_stage_views(90.0)[:1]))
        source = "random views and weights (no reference folder)"
    res = cfg.mesh_resolution
    enc, s1, p1 = meter.run(lambda: rec.encode(inputs))
    volume, s2, p2 = meter.run(lambda: rec.sdf_volume(enc, res))
    (verts, faces), s3, p3 = meter.run(lambda: marching_cubes(volume))
    _, s4, p4 = meter.run(lambda: rec.colours(enc, torch.from_numpy(verts).float()))
    total = s1 + s2 + s3 + s4
    return [
        row(f"Reconstruction, mesh resolution {res}", total, max(p1, p2, p3, p4),
            f"{source}; {rcfg.volume_resolution}^3 volume, {len(verts)} vertices; sdf_grid "
            f"{getattr(rcfg, 'sdf_grid', 'dense')}", upstream=UPSTREAM["reconstruction"], vertices=int(len(verts))),
        row("  features + cost volume + sparse U-Net", s1, p1),
        row(f"  SDF grid {res}^3", s2, p2),
        row("  marching cubes (CPU)", s3, p3),
        row("  vertex colours", s4, p4),
    ]


def time_elevation(args, device, cfg) -> list[dict]:
    import numpy as np
    import torch

    from elevation import ElevationConfig, ElevationError, ElevationEstimator, MatchSet
    from pipeline import build_estimator

    meter = Meter(device)
    estimator = build_estimator(cfg.elevation, None, device)  # random LoFTR, as random_full.yaml
    gen = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(torch.rand(4, 3, 16, 16, generator=gen), size=(256, 256),
                                             mode="bicubic", align_corners=False).clamp(0, 1)
    estimator.match_both(images[:4])  # warm-up
    matches, sec, peak = meter.run(lambda: estimator.match_both(images))
    n = sum(len(m) for m in matches[0].pairs.values()) if hasattr(matches[0], "pairs") else None
    rows = [row(f"Elevation: {estimator.matcher.name} matching, 6 pairs at {cfg.elevation.matcher.resize_px} px", sec,
                peak, "random weights" + ("" if n is None else f", {n} matches"))]
    case = Path(args.shared) / "fixtures/one2345_parity/elevation/elev_A_p60_clean.npz" if args.shared else None
    if case is not None and case.is_file():
        fixture_matches = MatchSet.from_named_arrays(dict(np.load(case)))
        est = ElevationEstimator(ElevationConfig())

        def search():
            try:
                return est.estimate_from_matches(fixture_matches).polar_deg
            except ElevationError as exc:
                return f"ElevationError {exc.reason}"

        polar, sec2, peak2 = meter.run(search)
        rows.append(row("Elevation: pose search + checks (CPU by design)", sec2, peak2,
                        f"official fixture A's matches (polar 60): {polar}"))
    return rows


def time_infer(args, device, cfg_path: str, overrides: list[str], out: Path) -> list[dict]:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[:256, :256]
    img = np.zeros((256, 256, 4), np.uint8)
    inside = (yy - 128) ** 2 + (xx - 120) ** 2 < 80 ** 2
    img[inside] = (200, 90, 40, 255)
    img[inside & (xx > 120)] = (40, 90, 200, 255)
    image = out / "input_disc.png"
    Image.fromarray(img).save(image)
    cmd = [sys.executable, str(REPO / "infer.py"), str(image), "--config", cfg_path, "--output", str(out / "infer"),
           "--device", str(device)] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if device.type == "cpu":
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.infer_timeout)
    wall = time.perf_counter() - t0
    (out / "infer.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"infer.py exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
    result = json.loads((out / "infer" / "input_disc" / "result.json").read_text())
    timings, peaks = result["timings_s"], result.get("peak_memory_gb", {})
    per_image = sum(v for k, v in timings.items() if k != "load_models")
    rows = [row(f"infer.py, one image ({Path(cfg_path).name}), {result['ran']['zero123_dtype']}", per_image,
                max(peaks.values()) if peaks else None,
                f"model building {timings.get('load_models', 0):.1f} s more; process wall {wall:.1f} s (imports, "
                f"building, outputs); {result['mesh']['vertices']} vertices; polar {result['polar_source']}",
                upstream=UPSTREAM["infer"], result_json=result)]
    for stage, seconds in timings.items():
        if stage != "load_models":
            rows.append(row(f"  {stage}", seconds, peaks.get(stage)))
    return rows


# ------------------------------------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    env = report["environment"]
    dev = env.get("gpu", "CPU") + (f" ({env['gpu_memory_gb']} GiB)" if "gpu_memory_gb" in env else "")
    lines = [f"# CUDA check ({'dry run, ' if report['device'] == 'cpu' else ''}{'quick' if report['quick'] else 'full'})",
             "", f"device {report['device']}: {dev}; torch {env['versions'].get('torch')}, CUDA {env.get('cuda')}, "
             f"cuDNN {env.get('cudnn')}; Python {env['python']}; {report['started']}; total {report['total_seconds']:.0f} s",
             "", "| tests | passed | failed | skipped | s |", "|---|---|---|---|---|"]
    for name, t in report.get("tests", {}).items():
        lines.append(f"| {name} | {t.get('passed', '-')} | {t.get('failed', '-')} | {t.get('skipped', '-')} | "
                     f"{t.get('wall_seconds', '-')} |")
    failures = [f for t in report.get("tests", {}).values() for f in t.get("failures", [])]
    for f in failures:
        lines.append(f"\nFAILED {f['test']}: {f['message'][:300]}")
    lines += ["", "| stage (random weights) | seconds | peak memory GiB | note | upstream (published) |",
              "|---|---|---|---|---|"]
    for r in report.get("timings", []):
        sec = "-" if r["seconds"] is None else f"{r['seconds']:.3f}"
        mem = "-" if r["peak_memory_gb"] is None else f"{r['peak_memory_gb']:.2f}"
        lines.append(f"| {r['stage']} | {sec} | {mem} | {r.get('note', '')} | {r.get('upstream', '')} |")
    lines += ["", "Peak memory: " + ("CUDA allocator peak per row." if report["device"] != "cpu"
                                     else "process peak resident set so far (a CPU keeps no per-stage figure).")]
    for name, step in report["steps"].items():
        if step["status"] != "ok":
            lines.append(f"\nstep {name}: {step['status'].upper()}: {step.get('error', '')[:600]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (CUDA when available) | cuda | cuda:N | cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the CPU dry run)")
    p.add_argument("--out", type=Path, default=REPO / "outputs" / "cuda_check")
    default_shared = REPO / ".cuda_carry" / "shared"
    if not default_shared.is_dir():
        default_shared = Path(os.environ.get("ONE2345_SHARED", REPO.parent / "shared"))
    p.add_argument("--shared", type=Path, default=default_shared if default_shared.is_dir() else None,
                   help="reference folder (default: .cuda_carry/shared, else ../shared)")
    p.add_argument("--skip", nargs="*", default=[], choices=["tests", "unet", "schedule", "reconstruction",
                                                             "elevation", "infer"])
    p.add_argument("--threads", type=int, default=1, help="CPU threads in the dry run")
    p.add_argument("--test-timeout", type=float, default=300, help="seconds per pytest run")
    p.add_argument("--infer-timeout", type=float, default=300, help="seconds for the infer.py run")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds (default 540 on CUDA, 1800 on a CPU): a step that would start later is recorded as skipped, and the pytest / infer.py "
                        "timeouts shrink to what is left (the device tool stops a command at 600 s; the JSON and "
                        "table are rewritten after every step, so a stopped run still leaves them)")
    args = p.parse_args(argv)
    import torch

    from data.device import resolve_device

    device = resolve_device(args.device)
    if args.budget is None:
        args.budget = 540.0 if device.type == "cuda" else 1800.0
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    args.unet_batches = [2, 4] if args.quick else [2, 8, 16]
    args.warmup, args.repeats = (1, 2) if args.quick else (3, 10)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_start = time.perf_counter()
    report = {"device": str(device), "quick": args.quick, "started": started, "shared": str(args.shared),
              "steps": {}, "timings": []}
    left = lambda: args.budget - (time.perf_counter() - t_start)  # noqa: E731

    def save() -> str:
        report["total_seconds"] = round(time.perf_counter() - t_start, 1)
        table = markdown(report)
        (out / "cuda_check.json").write_text(json.dumps(report, indent=1, default=str))
        (out / "cuda_check.md").write_text(table)
        return table

    report["environment"] = env = environment(device)
    print(f"device {device} ({env.get('gpu', 'CPU')}), torch {env['versions']['torch']}, {torch.get_num_threads()} "
          f"threads; reference folder {args.shared}", flush=True)
    if env["missing"]:
        report["steps"]["environment"] = {"status": "failed", "error": "missing imports: " + "; ".join(env["missing"])
                                          + " (make cuda-carry here, then bash scripts/cuda_check.sh there)"}
    else:
        report["steps"]["environment"] = {"status": "ok"}
        if "tests" not in args.skip:
            args.left = left
            report["tests"] = tests(args, device, out)
            ok = all(t.get("ok") for t in report["tests"].values())
            report["steps"]["tests"] = {"status": "ok" if ok else "failed"}
            save()
        from pipeline import load_pipeline_config

        cfg_path, overrides = infer_config(args)
        cfg = load_pipeline_config(cfg_path, overrides=overrides)
        steps = [("unet", lambda: time_unet_step(args, device, cfg)),
                 ("schedule", lambda: time_zero123_schedule(args, device, cfg)),
                 ("reconstruction", lambda: time_reconstruction(args, device, cfg)),
                 ("elevation", lambda: time_elevation(args, device, cfg)),
                 ("infer", lambda: time_infer(args, device, cfg_path, overrides, out))]
        for name, fn in steps:
            if name in args.skip:
                continue
            if left() < 20:
                report["steps"][name] = {"status": "skipped", "error": f"time budget of {args.budget:.0f} s spent"}
                continue
            args.infer_timeout = max(30.0, min(args.infer_timeout, left()))
            print(f"\n[{name}]", flush=True)
            t0 = time.perf_counter()
            try:
                rows = fn()
                report["timings"] += rows
                report["steps"][name] = {"status": "ok", "seconds": round(time.perf_counter() - t0, 1)}
                for r in rows:
                    mem = "" if r["peak_memory_gb"] is None else f"{r['peak_memory_gb']:8.2f} GiB"
                    print(f"  {r['stage']:<72} {r['seconds'] or 0:9.3f} s {mem}", flush=True)
            except Exception as exc:  # noqa: BLE001 -- recorded, the other steps still run
                traceback.print_exc()
                report["steps"][name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                         "traceback": traceback.format_exc()[-3000:]}
            if device.type == "cuda":
                torch.cuda.empty_cache()
            save()
    table = save()
    print("\n" + table)
    print(f"saved {out / 'cuda_check.json'} and {out / 'cuda_check.md'}")
    return 0 if all(s["status"] == "ok" for s in report["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
