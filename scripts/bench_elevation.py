"""Benchmark elevation estimation on oracle nearby views rendered from the real meshes in ../shared/data.

For each mesh and each random input view (polar P, random azimuth), the 4 nearby views of first-stage view 0 are
rendered exactly where One-2-3-45 puts them (``data.layout``), i.e. what a perfect Zero123 would produce. The object
is sized as the official preprocessing sizes the input (its longer side fills 75 % of the 256 px input view); this
is done by moving the rig cameras to radius ``1.2 / s`` instead of scaling the mesh by ``s`` (identical images).
Every matcher is run once per sample; every solver mode reuses those matches. Reported: absolute polar error
(median, mean, 90th percentile, max), failures (``ElevationError``), time per estimate (matching vs solver), and
the official vs robust solver on the parity fixtures.

    python scripts/bench_elevation.py [--samples-per-mesh 3] [--loftr-weights PATH] [--out bench_elevation.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import ConvexHull

from data import conventions as conv
from data import layout
from data.assets import load_asset
from data.cameras import Cameras
from data.io import write_text_atomic
from elevation import ElevationConfig, ElevationError, ElevationEstimator, MatchSet
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError
from elevation.sift import SiftMatcher

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ONE2345_SHARED", ROOT.parent / "shared"))
#: Meshes of ../shared/data/meshes (relative path, declared up axis "auto": glTF +y, others +z).
MESHES = [
    "hope/alphabet_soup/textured.obj", "hope/bbq_sauce/bbq_sauce.obj", "hope/butter/butter.obj",
    "hope/chocolate_pudding/textured.obj", "hope/cream_cheese/cream_cheese.obj", "hope/ketchup/textured.obj",
    "hope/macaroni_and_cheese/textured.obj", "hope/milk/textured.obj", "hope/orange_juice/textured.obj",
    "hope/popcorn/popcorn.obj", "hope/salad_dressing/textured.obj", "hope/tomato_sauce/textured.obj",
    "khronos/Duck/Duck.glb", "khronos/BoxTextured/BoxTextured.glb", "khronos/CesiumMilkTruck/CesiumMilkTruck.glb",
    "khronos/Avocado/glTF/Avocado.gltf", "khronos/DamagedHelmet/DamagedHelmet.glb",
    "khronos/BoomBox_partial/glTF/BoomBox.gltf", "keenan/spot/spot.obj", "keenan/bob/bob_tri.obj",
    "geometry_only/stanford-bunny/stanford-bunny.obj", "geometry_only/teapot/teapot.obj",
    "geometry_only/suzanne/suzanne.obj", "geometry_only/beetle/beetle.obj",
]
#: Modes shown on the parity fixtures (the min-8 variants equal their base there: every pair has > 290 matches).
FIXTURE_MODES = ("official", "robust-trimmed", "robust-truncated")
#: Fraction of the input image the object's longer side fills after the official preprocessing.
INPUT_FILL = 0.75
#: Solver modes compared (name -> config overrides of the solver section).
MODES = {
    "official": {"robust": False},
    "robust-trimmed": {"robust": True, "robust_loss": "trimmed"},
    "robust-truncated": {"robust": True, "robust_loss": "truncated"},
    "official-min8": {"robust": False, "min_matches_per_pair": 8},
    "truncated-min8": {"robust": True, "robust_loss": "truncated", "min_matches_per_pair": 8},
}


def render_config():
    """View-consistent shading (a fixed world light), as an ideal multi-view generator would keep it."""
    from data.render import RenderConfig

    return RenderConfig(light="world")


def _projected_box(vertices: torch.Tensor, camera: Cameras) -> tuple[float, float, float]:
    """(longer side px, centre u, centre v) of the bounding box of the projected vertices.

    The silhouette of a mesh is the union of its projected triangles, so its bounding box is the projected
    vertices' bounding box (all vertices are in front of the rig cameras here).
    """
    uv, _ = camera.project(vertices.to(camera.c2w.dtype))
    lo, hi = uv[0].min(0).values, uv[0].max(0).values
    return float((hi - lo).max()), float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2


def _shifted(cams: Cameras, shift: torch.Tensor) -> Cameras:
    """The same rig translated by ``shift`` (world units): equivalent to moving the object by ``-shift``."""
    c2w = cams.c2w.clone()
    c2w[:, :3, 3] += shift.to(c2w.dtype)
    return Cameras(c2w, cams.intrinsics, cams.width, cams.height)


def _centred_rig(vertices, polar_deg, azimuth_deg, radius, shift=None) -> tuple[torch.Tensor, float]:
    """Rig translation (perpendicular to the input's optical axis) centring the silhouette box; its side (px)."""
    shift = torch.zeros(3, dtype=torch.float64) if shift is None else shift
    base = Cameras.from_spherical([polar_deg], [azimuth_deg], radius, dtype=torch.float64)
    axes = base.c2w[0, :3, :2]  # camera right / down in the world
    gain = torch.ones(2, dtype=torch.float64)  # observed px per predicted px (near parts move more)
    previous = None
    for _ in range(60):
        side, u, v = _projected_box(vertices, _shifted(base, shift))
        error = torch.tensor([u - 128.0, v - 128.0], dtype=torch.float64)
        if error.abs().max() < 0.2:
            break
        if previous is not None:  # secant update of the per-axis gain
            moved, predicted = previous[0] - error, previous[1]
            ok = predicted.abs() > 1e-6
            gain[ok] = (moved[ok] / predicted[ok]).clamp(0.3, 5.0)
        step = error / gain
        shift = shift + axes @ (step / conv.FOCAL_PX * radius)
        previous = (error, step)
    return shift, side


def oracle_nearby_views(renderer, polar_deg: float, azimuth_offset_deg: float, fill: float = INPUT_FILL):
    """Render the 4 nearby views around an input at (polar, 30 + offset) deg, the object framed like the input.

    The official preprocessing centres the object's bounding box in the input and scales its longer side to 75 %
    of the image; a perfect Zero123 keeps that framing. Here the rig radius (bisection) and a rig translation
    perpendicular to the input's optical axis are chosen so that the input view shows the object that way; the
    nearby views are then rendered with the same rig at the official layout (``data.layout``).

    Returns:
        (4, 3, 256, 256) float images quantised to 8 bit (k / 255), and the rig radius used (world units of the
        unit-normalised mesh; ``1.2 / radius`` is the equivalent object scale).
    """
    target = fill * conv.IMAGE_SIZE
    azimuth = conv.INPUT_AZIMUTH_DEG + azimuth_offset_deg
    vertices = renderer.mesh.vertices.double()
    vertices = vertices[ConvexHull(vertices.numpy()).vertices]  # same projected box, far fewer points
    low, high = 0.4, 20.0  # bracket of the rig radius: the box shrinks as the rig grows
    radius, shift = conv.CAMERA_RADIUS, None
    for _ in range(40):
        shift, side = _centred_rig(vertices, polar_deg, azimuth, radius, shift)
        if abs(side - target) < 0.5:
            break
        low, high = (radius, high) if side > target else (low, radius)
        proposal = radius * side / target  # size ~ 1 / distance; bisect when that leaves the bracket
        radius = proposal if low < proposal < high else float(np.sqrt(low * high))
    views = layout.nearby_views(layout.first_stage_views(polar_deg)[0])
    cams = Cameras.from_spherical(
        [v.polar_deg for v in views], [v.azimuth_deg + azimuth_offset_deg for v in views], radius,
        dtype=torch.float64,
    )
    rgb = renderer.render(_shifted(cams, shift)).rgb
    return torch.round(rgb * 255.0) / 255.0, radius


def build_matchers(loftr_weights: str | None) -> dict:
    """name -> (matcher, fix_mask_indexing): each matcher with the upstream mask lookup and with the fix."""
    base = {"sift": SiftMatcher()}
    if loftr_weights:
        try:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            base["loftr"] = LoFTRMatcher.from_checkpoint(loftr_weights, device)
        except LoFTRWeightsError as exc:
            print(f"[bench] LoFTR not run: {exc}", file=sys.stderr)
    out = {}
    for name, matcher in base.items():
        out[name] = (matcher, False)
        out[f"{name}+maskfix"] = (matcher, True)
    return out


def estimators() -> dict[str, ElevationEstimator]:
    out = {}
    for name, solver in MODES.items():
        cfg = ElevationConfig()
        for key, value in solver.items():
            setattr(cfg.solver, key, value)
        out[name] = ElevationEstimator(cfg, matcher=SiftMatcher())  # matcher unused: matches are given
    return out


def run_renders(args) -> list[dict]:
    from data.render import MeshRenderer

    rng = np.random.default_rng(args.seed)
    solvers = estimators()
    matchers = build_matchers(args.loftr_weights)
    records = []
    meshes = MESHES[: args.max_meshes] if args.max_meshes else MESHES
    for rel in meshes:
        path = SHARED / "data" / "meshes" / rel
        mesh = load_asset(path)
        with MeshRenderer(mesh, render_config()) as renderer:
            for _ in range(args.samples_per_mesh):
                polar = float(rng.integers(args.polar_min, args.polar_max + 1))
                offset = float(rng.uniform(0.0, 360.0))
                t0 = time.perf_counter()
                images, radius = oracle_nearby_views(renderer, polar, offset)
                render_s = time.perf_counter() - t0
                for mname, (matcher, fix_mask) in matchers.items():
                    cfg = ElevationConfig()
                    cfg.matcher.fix_mask_indexing = fix_mask
                    probe = ElevationEstimator(cfg, matcher=matcher)
                    t0 = time.perf_counter()
                    matches = probe.match(images)
                    matching_s = time.perf_counter() - t0
                    for mode, est in solvers.items():
                        rec = {"mesh": rel, "true_polar": polar, "azimuth_offset": offset, "radius": radius,
                               "matcher": mname, "mode": mode, "render_s": render_s, "matching_s": matching_s,
                               "match_counts": matches.counts()}
                        try:
                            e = est.estimate_from_matches(matches, mname, matching_s)
                            rec.update(polar=e.polar_deg, abs_error=abs(e.polar_deg - polar), confidence=e.confidence,
                                       solver_s=e.timings_s["solver"], failed=False)
                        except ElevationError as exc:
                            rec.update(polar=None, abs_error=None, failed=True, error=str(exc)[:160])
                        records.append(rec)
                        status = "FAIL" if rec["failed"] else f"{rec['polar']:.0f} (err {rec['abs_error']:.0f})"
                        print(f"[bench] {rel:45s} true {polar:5.0f}  {mname:12s} {mode:16s} -> {status}", flush=True)
    return records


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(records: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["matcher"], r["mode"]) for r in records}, key=lambda k: (k[0], list(MODES).index(k[1])))
    for matcher, mode in keys:
        sel = [r for r in records if r["matcher"] == matcher and r["mode"] == mode]
        ok = np.array([r["abs_error"] for r in sel if not r["failed"]], dtype=float)
        solver_s = [r["solver_s"] for r in sel if not r["failed"]]
        rows.append({
            "matcher": matcher, "mode": mode, "n": len(sel), "failures": sum(r["failed"] for r in sel),
            "median_deg": float(np.median(ok)) if ok.size else None,
            "mean_deg": float(ok.mean()) if ok.size else None,
            "p90_deg": float(np.percentile(ok, 90)) if ok.size else None,
            "max_deg": float(ok.max()) if ok.size else None,
            "within_5deg": float((ok <= 5).mean()) if ok.size else None,
            "confidence_good": _mean([r["confidence"] for r in sel if not r["failed"] and r["abs_error"] <= 5]),
            "confidence_bad": _mean([r["confidence"] for r in sel if not r["failed"] and r["abs_error"] > 5]),
            "matching_s": float(np.mean([r["matching_s"] for r in sel])),
            "solver_s": float(np.mean(solver_s)) if solver_s else None,
        })
    return rows


def fixture_table() -> list[dict]:
    folder = SHARED / "fixtures" / "one2345_parity" / "elevation"
    rows = []
    for path in sorted(folder.glob("elev_[A-Y]_*.npz")):
        ref = dict(np.load(path))
        matches = MatchSet.from_named_arrays(ref)
        row = {"case": path.stem[5:], "true": int(ref["true_polar"]), "official_fixture": int(ref["returned_polar"])}
        for mode, est in estimators().items():
            if mode not in FIXTURE_MODES:
                continue
            t0 = time.perf_counter()
            row[mode] = est.estimate_from_matches(matches).polar_deg
            row[f"{mode}_s"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_tables(rows: list[dict], fixtures: list[dict]) -> None:
    print("\nOracle nearby views of real meshes: absolute polar error (deg)")
    print(f"{'matcher':13s} {'mode':17s} {'n':>4s} {'fail':>4s} {'median':>7s} {'mean':>6s} {'p90':>6s} {'max':>6s} "
          f"{'<=5deg':>6s} {'conf ok':>7s} {'conf bad':>8s} {'match s':>8s} {'solve s':>8s}")
    for r in rows:
        print(f"{r['matcher']:13s} {r['mode']:17s} {r['n']:4d} {r['failures']:4d} {_fmt(r['median_deg']):>7s} "
              f"{_fmt(r['mean_deg']):>6s} {_fmt(r['p90_deg']):>6s} {_fmt(r['max_deg']):>6s} "
              f"{_fmt(r['within_5deg'], '.2f'):>6s} {_fmt(r['confidence_good'], '.2f'):>7s} "
              f"{_fmt(r['confidence_bad'], '.2f'):>8s} {_fmt(r['matching_s'], '.2f'):>8s} {_fmt(r['solver_s'], '.2f'):>8s}")
    if fixtures:
        print("\nParity fixtures (synthetic matches): returned polar (deg)")
        print(f"{'case':22s} {'true':>5s} {'fixture':>8s} " + " ".join(f"{m:>16s}" for m in FIXTURE_MODES))
        for f in fixtures:
            print(f"{f['case']:22s} {f['true']:5d} {f['official_fixture']:8d} "
                  + " ".join(f"{f[m]:16.0f}" for m in FIXTURE_MODES))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples-per-mesh", type=int, default=3)
    p.add_argument("--max-meshes", type=int, default=0, help="only the first N meshes (0 = all)")
    p.add_argument("--polar-min", type=int, default=40)
    p.add_argument("--polar-max", type=int, default=130)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loftr-weights", default=None, help="indoor_ds_new.ckpt path (LoFTR rows are skipped without it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--out", default="bench_elevation.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    if not (SHARED / "data" / "meshes").is_dir():
        print(f"error: needs the real meshes in {SHARED / 'data' / 'meshes'}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    records = run_renders(args)
    rows = summarise(records)
    fixtures = fixture_table() if (SHARED / "fixtures").is_dir() else []
    print_tables(rows, fixtures)
    if not args.loftr_weights:
        print("\nLoFTR: not run (no --loftr-weights; no hub access here). SIFT is the weight-free fallback.")
    report = {"args": vars(args), "summary": rows, "fixtures": fixtures, "records": records,
              "seconds_total": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}
    write_text_atomic(args.out, json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
