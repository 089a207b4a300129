"""Benchmark elevation estimation on oracle nearby views rendered from the real meshes in ../shared/data.

For each mesh and each random input view (polar P, random azimuth), the 4 nearby views of first-stage view 0 are
rendered exactly where One-2-3-45 puts them (``data.layout``), i.e. what a perfect Zero123 would produce. The object
is sized as the official preprocessing sizes the input (its longer side fills 75 % of the 256 px input view); this
is done by moving the rig cameras to radius ``1.2 / s`` instead of scaling the mesh by ``s`` (identical images).
Every matcher (``--matchers``, default SIFT, ORB, SIFT+ORB; LoFTR with ``--loftr-weights``) runs once per sample;
both solver variants (official; robust truncated with the fixed mask lookup) reuse its raw matches. Renders and raw
matches are cached (``--cache``), so reruns skip them; ``--from-json`` re-judges an earlier run's records, e.g. with
other ``--set checks.*`` thresholds. Reported per matcher x solver row, with the checks of
``elevation.reliability`` off and on: n, failures (rate) and their typed reasons, absolute polar error over the
returned estimates (median, mean, 90th percentile, max), the count of estimates more than 15 deg off (the number
that matters), times; a PNG histogram of the confidence of right (<= 5 deg) vs wrong (> 15 deg) answers; the
parity fixtures with every solver and the checks' verdict. Choose thresholds on one ``--seed`` and report another.

    python scripts/bench_elevation.py [--samples-per-mesh 4] [--seed 1] [--loftr-weights PATH] [--out bench.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial import ConvexHull

from data import conventions as conv
from data import layout
from data.assets import load_asset
from data.cameras import Cameras
from data.config import load_config
from data.device import resolve_device
from data.io import atomic_path, write_text_atomic
from elevation import ElevationConfig, ElevationError, ElevationEstimator, MatchSet
from elevation.config import ChecksConfig
from elevation.features import build_opencv_matcher
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError
from elevation.matcher import filter_raw_matches, foreground_mask, raw_nearby_matches, to_uint8_rgb
from elevation.matches import PAIRS
from elevation.reliability import Diagnostics, failure_reason

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ONE2345_SHARED", ROOT.parent / "shared"))
#: Meshes of ../shared/data/meshes (relative path, up axis of the file). glTF/GLB are +y by spec; every shared OBJ
#: but hope/bbq_sauce is +y up too (``auto`` would read OBJs as +z and render them lying on their side).
MESHES = [
    ("hope/alphabet_soup/textured.obj", "+y"), ("hope/bbq_sauce/bbq_sauce.obj", "+z"),
    ("hope/butter/butter.obj", "+y"), ("hope/chocolate_pudding/textured.obj", "+y"),
    ("hope/cream_cheese/cream_cheese.obj", "+y"), ("hope/ketchup/textured.obj", "+y"),
    ("hope/macaroni_and_cheese/textured.obj", "+y"), ("hope/milk/textured.obj", "+y"),
    ("hope/orange_juice/textured.obj", "+y"), ("hope/popcorn/popcorn.obj", "+y"),
    ("hope/salad_dressing/textured.obj", "+y"), ("hope/tomato_sauce/textured.obj", "+y"),
    ("khronos/Duck/Duck.glb", "+y"), ("khronos/BoxTextured/BoxTextured.glb", "+y"),
    ("khronos/CesiumMilkTruck/CesiumMilkTruck.glb", "+y"), ("khronos/Avocado/glTF/Avocado.gltf", "+y"),
    ("khronos/DamagedHelmet/DamagedHelmet.glb", "+y"), ("khronos/BoomBox_partial/glTF/BoomBox.gltf", "+y"),
    ("keenan/spot/spot.obj", "+y"), ("keenan/bob/bob_tri.obj", "+y"), ("keenan_cow/cow/cow.obj", "+y"),
    ("geometry_only/stanford-bunny/stanford-bunny.obj", "+y"), ("geometry_only/teapot/teapot.obj", "+y"),
    ("geometry_only/suzanne/suzanne.obj", "+y"), ("geometry_only/beetle/beetle.obj", "+y"),
    ("geometry_only/cow/cow.obj", "+y"), ("geometry_only/spot/spot.obj", "+y"),
]
#: Fraction of the input image the object's longer side fills after the official preprocessing.
INPUT_FILL = conv.INPUT_OBJECT_FILL


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


def _slug(rel: str) -> str:
    return rel.replace("/", "__").rsplit(".", 1)[0]


def sample_poses(seed: int, samples_per_mesh: int, polar_min: int = 40, polar_max: int = 130,
                 meshes=None) -> list[tuple[str, str, float, float]]:
    """(mesh, up axis, true polar, azimuth offset) for every sample; one RNG stream per seed, meshes in order."""
    rng = np.random.default_rng(seed)
    out = []
    for rel, up in (MESHES if meshes is None else meshes):
        for _ in range(samples_per_mesh):
            polar = float(rng.integers(polar_min, polar_max + 1))
            out.append((rel, up, polar, float(rng.uniform(0.0, 360.0))))
    return out


def cached_render(cache: Path | None, rel: str, up: str, polar: float, offset: float, renderers: dict):
    """(4, 3, 256, 256) float oracle views (k / 255) and the rig radius; read from / written to ``cache``."""
    file = None if cache is None else cache / f"{_slug(rel)}_{up.replace('+', 'p').replace('-', 'm')}_p{polar:.0f}_a{offset:.4f}.npz"
    if file is not None and file.is_file():
        with np.load(file) as z:
            return torch.from_numpy(z["views"].astype(np.float32) / 255.0), float(z["radius"]), 0.0
    from data.render import MeshRenderer

    if rel not in renderers:
        for r in renderers.values():
            r.close()
        renderers.clear()
        renderers[rel] = MeshRenderer(load_asset(SHARED / "data" / "meshes" / rel, up_axis=up), render_config())
    t0 = time.perf_counter()
    images, radius = oracle_nearby_views(renderers[rel], polar, offset)
    render_s = time.perf_counter() - t0
    if file is not None:
        with atomic_path(file) as tmp:
            np.savez_compressed(tmp, views=np.round(images.numpy() * 255).astype(np.uint8), radius=radius)
    return images, radius, render_s


#: Solver variants: name -> (solver.robust, matcher.fix_mask_indexing). "official" is the upstream behaviour,
#: "robust" what configs/elevation/robust.yaml selects (truncated loss, mask lookup fixed).
VARIANTS = {"official": (False, False), "robust": (True, True)}
#: Weight-free matchers compared by default (LoFTR is added with --loftr-weights).
DEFAULT_MATCHERS = "sift,orb,sift+orb"  # AKAZE: not in OpenCV 5's main modules (the venv's cv2)
#: Answers within this many degrees count as right, beyond WRONG_DEG as wrong (the number that matters).
RIGHT_DEG, WRONG_DEG = 5.0, 15.0


def build_matcher(name: str, loftr_weights: str | None):
    if name == "loftr":
        return LoFTRMatcher.from_checkpoint(loftr_weights, resolve_device("auto"))
    m = ElevationConfig().matcher
    return build_opencv_matcher(name, m.sift_ratio, m.sift_max_features, m.sift_contrast_threshold)


def cached_raw_matches(cache: Path | None, key: str, name: str, matcher, images: torch.Tensor):
    """(raw pair matches, masks, matching seconds (0 when read from the cache))."""
    cfg = ElevationConfig().matcher
    file = None if cache is None else cache / "matches" / f"{key}_{name}.npz"
    masks = [foreground_mask(im, cfg.background_threshold) for im in to_uint8_rgb(images)]
    if file is not None and file.is_file():
        with np.load(file) as z:
            return {p: (z[f"a{p[0]}{p[1]}"], z[f"b{p[0]}{p[1]}"], z[f"c{p[0]}{p[1]}"]) for p in PAIRS}, masks, 0.0
    t0 = time.perf_counter()
    raw, masks = raw_nearby_matches(images, matcher, cfg.resize_px, cfg.background_threshold)
    seconds = time.perf_counter() - t0
    if file is not None:
        arrays = {}
        for p in PAIRS:
            arrays.update({f"a{p[0]}{p[1]}": raw[p][0], f"b{p[0]}{p[1]}": raw[p][1], f"c{p[0]}{p[1]}": raw[p][2]})
        with atomic_path(file) as tmp:
            np.savez_compressed(tmp, **arrays)
    return raw, masks, seconds


class _NoMatcher:
    name = "none"

    def match_all_pairs(self, gray):
        return {}


def run_samples(args) -> list[dict]:
    """One record per (sample, matcher, variant): truth, the checks-off outcome and the diagnostics."""
    cache = Path(args.cache) if args.cache else None
    names = [n for n in args.matchers.split(",") if n]
    if args.loftr_weights:
        names.append("loftr")
    matchers = {}
    for n in names:
        try:
            matchers[n] = build_matcher(n, args.loftr_weights)
        except LoFTRWeightsError as exc:
            print(f"[bench] LoFTR not run: {exc}", file=sys.stderr)
    meshes = MESHES[: args.max_meshes] if args.max_meshes else MESHES
    poses = sample_poses(args.seed, args.samples_per_mesh, args.polar_min, args.polar_max, meshes)
    renderers: dict = {}
    records = []
    try:
        for rel, up, polar, offset in poses:
            images, radius, render_s = cached_render(cache, rel, up, polar, offset, renderers)
            key = f"{_slug(rel)}_p{polar:.0f}_a{offset:.4f}"
            for mname, matcher in matchers.items():
                raw, masks, matching_s = cached_raw_matches(cache, key, mname, matcher, images)
                for variant, (robust, fix_mask) in VARIANTS.items():
                    cfg = ElevationConfig()
                    cfg.solver.robust, cfg.matcher.fix_mask_indexing = robust, fix_mask
                    est = ElevationEstimator(cfg, matcher=_NoMatcher())
                    matches = filter_raw_matches(raw, masks, cfg.matcher.resize_px, fix_mask)
                    alternate = filter_raw_matches(raw, masks, cfg.matcher.resize_px, not fix_mask)
                    rec = {"mesh": rel, "up_axis": up, "true_polar": polar, "azimuth_offset": offset,
                           "radius": radius, "matcher": mname, "variant": variant, "render_s": render_s,
                           "matching_s": matching_s, "match_counts": matches.counts()}
                    t0 = time.perf_counter()
                    off = ElevationConfig()
                    off.solver.robust, off.checks.enabled = robust, False
                    try:  # the checks-off outcome (hard failures only), then the diagnostics the checks judge
                        e = ElevationEstimator(off, matcher=_NoMatcher()).estimate_from_matches(matches, mname)
                        diag = est.diagnose(matches, alternate)
                        rec.update(polar=e.polar_deg, abs_error=abs(e.polar_deg - polar), failed=False,
                                   curve_confidence=e.confidence, diagnostics=diag.to_dict())
                    except ElevationError as exc:
                        rec.update(polar=None, abs_error=None, failed=True, reason=exc.reason, error=str(exc)[:160])
                    rec["solver_s"] = time.perf_counter() - t0
                    records.append(rec)
                    status = "FAIL" if rec["failed"] else (
                        f"{rec['polar']:.0f} (err {rec['abs_error']:.0f}, conf {rec['diagnostics']['confidence']:.2f})")
                    print(f"[bench] {rel:45s} true {polar:5.0f}  {mname:15s} {variant:9s} -> {status}", flush=True)
    finally:
        for r in renderers.values():
            r.close()
    return records


def judge(rec: dict, checks: ChecksConfig | None) -> tuple[float | None, str | None, float | None]:
    """(returned polar or None, failure reason or None, confidence) of a record under ``checks`` (None = off).

    Applies exactly the estimator's rule (``elevation.reliability.failure_reason``) to the recorded diagnostics.
    """
    if rec["failed"]:
        return None, rec.get("reason", "error"), None
    if checks is None or not checks.enabled:
        return rec["polar"], None, rec["curve_confidence"]
    d = Diagnostics(**rec["diagnostics"])
    failed = failure_reason(d, checks.edge_margin_deg, checks.min_associations, checks.solver_agreement_deg,
                            checks.matcher_agreement_deg, checks.min_curve_confidence, checks.min_confidence)
    if failed is not None:
        return None, failed[0], d.confidence
    return d.polar_deg, None, d.confidence


def summarise(records: list[dict], checks: ChecksConfig) -> list[dict]:
    rows = []
    keys = sorted({(r["matcher"], r["variant"]) for r in records}, key=lambda k: (k[0], list(VARIANTS).index(k[1])))
    for matcher, variant in keys:
        sel = [r for r in records if r["matcher"] == matcher and r["variant"] == variant]
        for checked in (False, True):
            outcomes = [judge(r, checks if checked else None) for r in sel]
            err = np.array([abs(p - r["true_polar"]) for r, (p, _, _) in zip(sel, outcomes) if p is not None])
            reasons: dict[str, int] = {}
            for _, reason, _ in outcomes:
                if reason:
                    reasons[reason] = reasons.get(reason, 0) + 1
            n = len(sel)
            rows.append({
                "matcher": matcher, "variant": variant, "checks": checked, "n": n,
                "failures": n - int(err.size), "failure_rate": (n - int(err.size)) / n if n else None,
                "median_deg": float(np.median(err)) if err.size else None,
                "mean_deg": float(err.mean()) if err.size else None,
                "p90_deg": float(np.percentile(err, 90)) if err.size else None,
                "max_deg": float(err.max()) if err.size else None,
                "over_15deg": int((err > WRONG_DEG).sum()),
                "within_5deg": float((err <= RIGHT_DEG).mean()) if err.size else None,
                "failure_reasons": reasons,
                "matching_s": float(np.mean([r["matching_s"] for r in sel])),
                "solver_s": float(np.mean([r["solver_s"] for r in sel])),
            })
    return rows


def confidence_histogram(records: list[dict], checks: ChecksConfig, path: str) -> None:
    """PNG: confidence of right (<= 5 deg) vs wrong (> 15 deg) checks-off answers of every matcher x solver row,
    the curve confidence (the only one before the checks) vs the combined confidence, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in records if not r["failed"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    bins = np.linspace(0, 1, 21)
    for ax, key, title in ((axes[0], "curve", "curve confidence (checks off)"),
                           (axes[1], "combined", "combined confidence (elevation.reliability)")):
        for label, cond, color in (("right (<= 5 deg)", lambda e: e <= RIGHT_DEG, "tab:green"),
                                   ("wrong (> 15 deg)", lambda e: e > WRONG_DEG, "tab:red")):
            vals = [r["curve_confidence"] if key == "curve" else r["diagnostics"]["confidence"]
                    for r in sel if cond(r["abs_error"])]
            ax.hist(vals, bins=bins, alpha=0.6, color=color, label=f"{label}, n={len(vals)}")
        if key == "combined":
            ax.axvline(checks.min_confidence, color="k", ls="--", label=f"threshold {checks.min_confidence:g}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("confidence")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("estimates")
    rows = sorted({f"{r['matcher']}/{r['variant']}" for r in sel})
    fig.suptitle(f"elevation benchmark, every estimate of {', '.join(rows)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fixture_table() -> list[dict]:
    folder = SHARED / "fixtures" / "one2345_parity" / "elevation"
    rows = []
    for path in sorted(folder.glob("elev_[A-Y]_*.npz")):
        ref = dict(np.load(path))
        matches = MatchSet.from_named_arrays(ref)
        row = {"case": path.stem[5:], "true": int(ref["true_polar"]), "official_fixture": int(ref["returned_polar"])}
        for mode, robust, loss in (("official", False, "truncated"), ("robust-trimmed", True, "trimmed"),
                                   ("robust-truncated", True, "truncated")):
            cfg = ElevationConfig()
            cfg.solver.robust, cfg.solver.robust_loss, cfg.checks.enabled = robust, loss, False
            row[mode] = ElevationEstimator(cfg, matcher=_NoMatcher()).estimate_from_matches(matches).polar_deg
            cfg.checks.enabled = True
            try:
                ElevationEstimator(cfg, matcher=_NoMatcher()).estimate_from_matches(matches)
                row[f"{mode}_checks"] = "ok"
            except ElevationError as exc:
                row[f"{mode}_checks"] = exc.reason
        rows.append(row)
    return rows


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_tables(rows: list[dict], fixtures: list[dict]) -> None:
    print("\nOracle nearby views of real meshes: absolute polar error (deg) over the returned estimates")
    print(f"{'matcher':15s} {'solver':9s} {'checks':6s} {'n':>4s} {'fail':>4s} {'rate':>5s} {'median':>6s} "
          f"{'mean':>6s} {'p90':>6s} {'max':>6s} {'>15deg':>6s} {'<=5deg':>6s}  failure reasons")
    for r in rows:
        print(f"{r['matcher']:15s} {r['variant']:9s} {'on' if r['checks'] else 'off':6s} {r['n']:4d} "
              f"{r['failures']:4d} {_fmt(r['failure_rate'], '.2f'):>5s} {_fmt(r['median_deg']):>6s} "
              f"{_fmt(r['mean_deg']):>6s} {_fmt(r['p90_deg']):>6s} {_fmt(r['max_deg']):>6s} {r['over_15deg']:6d} "
              f"{_fmt(r['within_5deg'], '.2f'):>6s}  "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["failure_reasons"].items())))
    if fixtures:
        print("\nParity fixtures (synthetic matches): returned polar (deg), checks-on outcome")
        for f in fixtures:
            print(f"{f['case']:22s} true {f['true']:4d} fixture {f['official_fixture']:4d}  " + "  ".join(
                f"{m} {f[m]:.0f} ({f[m + '_checks']})" for m in ("official", "robust-trimmed", "robust-truncated")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples-per-mesh", type=int, default=3)
    p.add_argument("--max-meshes", type=int, default=0, help="only the first N meshes (0 = all)")
    p.add_argument("--polar-min", type=int, default=40)
    p.add_argument("--polar-max", type=int, default=130)
    p.add_argument("--seed", type=int, default=0, help="RNG seed of the input poses (calibrate on one, report another)")
    p.add_argument("--matchers", default=DEFAULT_MATCHERS, help="comma-separated weight-free matchers")
    p.add_argument("--loftr-weights", default=None, help="indoor_ds_new.ckpt path (LoFTR rows are skipped without it)")
    p.add_argument("--cache", default=str(ROOT / "runs" / "bench_elevation_cache"),
                   help="folder caching renders and raw matches ('' = none)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="checks.* overrides of the judged configuration, e.g. checks.min_confidence=0.4")
    p.add_argument("--histogram", default=None, help="confidence histogram PNG (default: OUT with .png)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--out", default="bench_elevation.json")
    p.add_argument("--from-json", default=None,
                   help="re-judge the records of an earlier run (e.g. other --set thresholds) without matching")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    if not (SHARED / "data" / "meshes").is_dir():
        print(f"error: needs the real meshes in {SHARED / 'data' / 'meshes'}", file=sys.stderr)
        return 2
    checks = load_config(ElevationConfig, overrides=list(args.set)).validate().checks
    t0 = time.perf_counter()
    records = json.loads(Path(args.from_json).read_text())["records"] if args.from_json else run_samples(args)
    rows = summarise(records, checks)
    fixtures = fixture_table() if (SHARED / "fixtures").is_dir() else []
    print_tables(rows, fixtures)
    if not args.loftr_weights:
        print("\nLoFTR: not run (no --loftr-weights). The default falls back to matcher.fallback_matcher.")
    weight_free = ElevationConfig().weight_free()
    print(f"Weight-free default (no LoFTR weights): matcher {weight_free.matcher.name}, "
          f"{'robust' if weight_free.solver.robust else 'official'} solver, checks on.")
    histogram = args.histogram or str(Path(args.out).with_suffix(".png"))
    confidence_histogram(records, checks, histogram)
    print(f"wrote {histogram}")
    report = {"args": vars(args), "checks": vars(checks), "summary": rows, "fixtures": fixtures, "records": records,
              "seconds_total": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}
    write_text_atomic(args.out, json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
