#!/usr/bin/env python
"""Proof that reconstruction training learns, on CPU: train a reduced config on ground-truth renders of the real
meshes in ../shared/data/meshes, then reconstruct held-out objects and compare with the untrained network and a
visual hull carved from the same views' masks.

    python scripts/bench_train_reconstruction.py --config configs/train/reconstruction_cpu.yaml \
        --output outputs/bench_train_reconstruction [key=value ...]
    python scripts/bench_train_reconstruction.py --layout zero123plus|zero123plus_nearby --output DIR [key=value ...]

``--layout`` picks the views (the generators of ``pipeline/``): One-2-3-45's 32 nearby views (default), the 24
nearby views of ``zero123plus_nearby``, or the six Zero123++ views of ``zero123plus`` (v1.2 table, FOV and radius);
the same meshes, split and budget otherwise. The last checkpoint (``<output>/train/checkpoints/last.ckpt``, official
key layout) of a ``zero123plus`` run is what ``weights.reconstruction_zero123plus`` takes.

Objects are rendered on the inference rig with the inference framing (``data.assets`` ``framing="rig"``: bounding
sphere of radius ``data.conventions.RIG_OBJECT_RADIUS``, never cut by the image border). Per held-out object:
F-score at 0.05 and Chamfer distance (mean of the two directional means, Euclidean) between 10k surface samples of
the reconstruction and of the ground-truth mesh, both scaled so that the ground truth has a unit bounding box
(longest side 1, centred), so the threshold is 5 % of the object's size whatever the render scale. Prints a table, saves
``results.json``, ``loss_curve.png``, the meshes, and the training outputs (checkpoints, logs) under --output.
Rendered views are cached under ``<output>/renders`` so re-runs skip rendering.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data import layout  # noqa: E402
from data.assets import load_asset  # noqa: E402
from data.cameras import Cameras  # noqa: E402
from data.datasets.one2345_official import TrainingObject  # noqa: E402
from evaluation.distances import compare_point_clouds  # noqa: E402
from evaluation.pointclouds import sample_surface  # noqa: E402
from data.io import write_text_atomic  # noqa: E402
from data.mesh import Mesh  # noqa: E402
from data.reconstruction_frame import ReconstructionFrame  # noqa: E402
from data.views import Views  # noqa: E402
from reconstruction.model import ReconstructionModel  # noqa: E402
from reconstruction.reconstructor import ReconstructionError, Reconstructor  # noqa: E402
from reconstruction.training.fit import fit, fresh_model, load_training_config  # noqa: E402
from reconstruction.training.samples import select_sources  # noqa: E402
from reconstruction.visual_hull import visual_hull  # noqa: E402

#: (path under the meshes folder, up axis of the file). OBJ files here are +Y up; glTF is +Y by specification.
TRAIN_MESHES = [
    ("hope/alphabet_soup/textured.obj", "+y"), ("hope/bbq_sauce/bbq_sauce.obj", "+y"),
    ("hope/butter/butter.obj", "+y"), ("hope/chocolate_pudding/textured.obj", "+y"),
    ("hope/cream_cheese/cream_cheese.obj", "+y"), ("hope/macaroni_and_cheese/textured.obj", "+y"),
    ("hope/milk/textured.obj", "+y"), ("hope/orange_juice/textured.obj", "+y"),
    ("hope/popcorn/popcorn.obj", "+y"), ("hope/salad_dressing/textured.obj", "+y"),
    ("hope/tomato_sauce/textured.obj", "+y"),
    ("khronos/BoxTextured/BoxTextured.glb", "auto"), ("khronos/CesiumMilkTruck/CesiumMilkTruck.glb", "auto"),
    ("khronos/Avocado/glTF/Avocado.gltf", "auto"), ("khronos/DamagedHelmet/DamagedHelmet.glb", "auto"),
    ("khronos/BoomBox_partial/glTF/BoomBox.gltf", "auto"),
    ("keenan/bob/bob_tri.obj", "+y"),
    ("geometry_only/stanford-bunny/stanford-bunny.obj", "+y"), ("geometry_only/suzanne/suzanne.obj", "+y"),
    ("geometry_only/beetle/beetle.obj", "+y"), ("geometry_only/cow/cow.obj", "+y"),
]
#: Held out: never seen in training (Spot's other copies, keenan_cow/cow and geometry_only/spot, are excluded).
HELD_OUT_MESHES = [
    ("khronos/Duck/Duck.glb", "auto"), ("hope/ketchup/textured.obj", "+y"),
    ("keenan/spot/spot.obj", "+y"), ("geometry_only/teapot/teapot.obj", "+y"),
]
FSCORE_THRESHOLD = 0.05
#: Object scale of the renders: the inference rig's framing of a preprocessed input (data/conventions.py).
FRAMING = "rig"
SURFACE_SAMPLES = 10_000


#: Training / held-out view layouts (``--layout``): the views the reconstruction gets at inference per generator.
LAYOUTS = ("one2345", "zero123plus_nearby", "zero123plus")
#: Zero123++ pose set of the six-view layouts (the generators' default variant, instantmesh, uses v1.2's table).
POSE_SET = "v1.2"


def _resized(cams: Cameras, size: int) -> Cameras:
    k = cams.intrinsics.clone()
    k[:, :2] *= size / cams.width
    return Cameras(cams.c2w, k, size, size)


def rig_cameras(polar_deg: float, size: int) -> Cameras:
    """The 40 official views (8 main + 32 nearby) at ``size`` px."""
    return _resized(layout.cameras_for(layout.schedule(polar_deg)), size)


def layout_views(name: str, polar_deg: float, size: int) -> tuple[Cameras, tuple[str, ...], Cameras, tuple[str, ...]]:
    """(main cameras, main names, source cameras, source names) of a layout at ``size`` px.

    ``one2345``: the 8 first-stage views (view 0 = the input, polar ``polar_deg``) and their 32 nearby views.
    ``zero123plus_nearby``: the input view and the six Zero123++ views on the rig (main), their 24 nearby views.
    ``zero123plus``: the input view (rig) and the six Zero123++ views at their own cameras (v1.2 FOV and radius),
    which are also the sources. Main view 0 is the input: the held-out reconstructions use it as reference.
    """
    if name == "one2345":
        specs = layout.schedule(polar_deg)
        return (rig_cameras(polar_deg, size)[torch.arange(8)], tuple(v.name for v in specs[:8]),
                rig_cameras(polar_deg, size)[torch.arange(8, 40)], tuple(v.name for v in specs[8:]))
    inp = layout.first_stage_views(polar_deg)[:1]
    if name == "zero123plus_nearby":
        six = layout.zero123plus_rig_views(POSE_SET)
        near = layout.zero123plus_nearby_views(POSE_SET)
        main = _resized(layout.cameras_for(inp + six), size)
        return main, ("input", *(f"zp{v.name}" for v in six)), _resized(layout.cameras_for(near), size), tuple(
            v.name for v in near)
    if name == "zero123plus":
        six = layout.zero123plus_cameras(POSE_SET, tile_px=size)
        main = Cameras.cat([_resized(layout.cameras_for(inp), size), six])
        names = tuple(f"zp{k}" for k in range(6))
        return main, ("input", *names), six, names
    raise ValueError(f"unknown layout {name!r}; known: {LAYOUTS}")


def render_object(mesh: Mesh, uid: str, polar_deg: float, size: int, layout_name: str = "one2345") -> TrainingObject:
    """Ground-truth renders of the layout's main views (targets, masks, depths) and source views."""
    from data.render import MeshRenderer, RenderConfig

    main, main_names, src, src_names = layout_views(layout_name, polar_deg, size)
    with MeshRenderer(mesh, RenderConfig(normals=False)) as renderer:
        out = renderer.render(Cameras.cat([main, src]))
    masks = (out.alpha > 0.5).float()
    m, n = len(main), len(main) + len(src)
    targets = Views(out.rgb[:m], main, masks[:m], main_names, "render")
    sources = Views(out.rgb[m:n], src, masks[m:n], src_names, "render")
    return TrainingObject(uid, targets, out.depth[:m] * masks[:m], sources)


def cached_object(mesh_root: Path, cache: Path, rel: str, up: str, polar: float, size: int,
                  layout_name: str = "one2345") -> TrainingObject:
    uid = rel.split("/")[-2] if rel.count("/") >= 1 else rel
    tag = "" if layout_name == "one2345" else f"_{layout_name}"
    path = cache / f"{rel.replace('/', '__')}_p{polar:g}_s{size}_{FRAMING}{tag}.pt"
    if path.is_file():
        d = torch.load(path, weights_only=False)
        return TrainingObject(d["uid"], d["targets"], d["depths"], d["sources"])
    obj = render_object(load_asset(mesh_root / rel, up_axis=up, framing=FRAMING), uid, polar, size, layout_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"uid": obj.uid, "targets": obj.targets, "depths": obj.target_depths, "sources": obj.sources}, path)
    return obj


class InMemoryReader:
    """An :class:`~reconstruction.training.samples.ObjectReader` over rendered objects (ground-truth sources
    only: ``source_kind`` is accepted and ignored)."""

    def __init__(self, objects: list[TrainingObject]):
        self.objects = objects

    def __len__(self) -> int:
        return len(self.objects)

    def load(self, index: int, source_kind: str = "gt") -> TrainingObject:
        return self.objects[index]


def surface_metrics(pred: Mesh | None, gt: Mesh) -> dict:
    """F-score@0.05 and Chamfer of a predicted mesh against the ground truth (zero F / inf Chamfer if None), both
    scaled by 1 / (the ground truth's longest bounding-box side): the unit-box frame whatever the render scale."""
    if pred is None or pred.num_faces == 0:
        return {"fscore": 0.0, "chamfer": math.inf, "precision": 0.0, "recall": 0.0, "faces": 0}
    v = gt.vertices.double()
    unit = 1.0 / float((v.max(0).values - v.min(0).values).max())
    p = sample_surface(pred.vertices.double().numpy() * unit, pred.faces.numpy(), SURFACE_SAMPLES, seed=1)
    g = sample_surface(v.numpy() * unit, gt.faces.numpy(), SURFACE_SAMPLES, seed=2)
    m = compare_point_clouds(p, g, (FSCORE_THRESHOLD,))
    return {"fscore": m.fscore[FSCORE_THRESHOLD], "chamfer": m.chamfer, "precision": m.precision[FSCORE_THRESHOLD],
            "recall": m.recall[FSCORE_THRESHOLD], "faces": int(pred.num_faces)}


def reconstruct(model: ReconstructionModel, cfg, obj: TrainingObject, resolution: int) -> Mesh | None:
    """The inference path (Reconstructor.reconstruct) on the object's source views, reference = main view 0."""
    import dataclasses

    rec = Reconstructor(model, dataclasses.replace(cfg.model, mesh_resolution=resolution, device="cpu"), "cpu")
    try:
        return rec.reconstruct(obj.sources, obj.targets.cameras[0]).mesh
    except ReconstructionError:
        return None


def plot_loss_curve(metrics_csvs: list[Path], out_png: Path) -> None:
    """Loss terms per step from Lightning CSV logs (several files = a resumed run, concatenated)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for path in metrics_csvs for r in csv.DictReader(Path(path).open())]
    keys = ("train/total", "train/color", "train/eikonal", "train/foreground_mask")
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        if not pts:
            continue
        steps, vals = map(np.asarray, zip(*pts))
        ax.plot(steps, vals, alpha=0.3, lw=0.8)
        win = max(1, len(vals) // 20)
        smooth = np.convolve(vals, np.ones(win) / win, mode="valid")
        ax.plot(steps[win - 1:], smooth, lw=2, label=f"{key} (moving mean {win})", color=ax.lines[-1].get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("reconstruction training (reduced CPU config)")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="training YAML (default: configs/train/reconstruction_cpu.yaml, "
                                                 "for --layout zero123plus* reconstruction_zero123plus_cpu.yaml)")
    p.add_argument("--layout", choices=LAYOUTS, default="one2345",
                   help="views of training and held-out reconstruction: One-2-3-45's 8 + 32 nearby, "
                        "zero123plus_nearby (input + 6 Zero123++ views, 24 nearby sources) or zero123plus (input + "
                        "the 6 Zero123++ views at their own cameras, also the sources)")
    p.add_argument("--output", default=str(REPO / "outputs/bench_train_reconstruction"))
    p.add_argument("--meshes", default=str(REPO.parent / "shared/data/meshes"))
    p.add_argument("--renders", default=None, help="render cache folder (default <output>/renders)")
    p.add_argument("--train-polars", default="60,85", help="polar angles (deg) of the training rigs")
    p.add_argument("--eval-polar", type=float, default=72.0, help="polar angle (deg) of the held-out rigs")
    p.add_argument("--max-train-objects", type=int, default=0, help="0 = all training meshes")
    p.add_argument("--mesh-resolution", type=int, default=96,
                   help="marching-cubes grid (normalised [-1, 1]^3) of the evaluated network meshes")
    p.add_argument("--hull-resolution", type=int, default=96, help="carving grid of the visual hull (same box)")
    p.add_argument("--previous-metrics", action="append", default=[], type=Path,
                   help="metrics.csv of the run a resumed run continues (prepended to the loss curve); repeat the "
                        "option for several files")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is ~10x faster than 2 on a machine shared by many processes)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = p.parse_args(argv)
    if args.config is None:
        args.config = str(REPO / "configs/train" / ("reconstruction_cpu.yaml" if args.layout == "one2345"
                                                    else "reconstruction_zero123plus_cpu.yaml"))
    torch.set_num_threads(args.threads)
    mesh_root, out = Path(args.meshes), Path(args.output)
    if not mesh_root.is_dir():
        print(f"meshes folder not found: {mesh_root} (the ../shared reference folder)", file=sys.stderr)
        return 2
    overrides = [f"trainer.output_dir={out / 'train'}", *args.overrides]
    cfg = load_training_config(args.config, overrides)
    size = cfg.data.image_size
    cache = Path(args.renders) if args.renders else out / "renders"

    t0 = time.time()
    train_specs = TRAIN_MESHES[: args.max_train_objects or None]
    polars = [float(x) for x in args.train_polars.split(",")]
    train_objs = [cached_object(mesh_root, cache, rel, up, pol, size, args.layout)
                  for rel, up in train_specs for pol in polars]
    held = [(rel, up, cached_object(mesh_root, cache, rel, up, args.eval_polar, size, args.layout))
            for rel, up in HELD_OUT_MESHES]
    if len(train_objs[0].targets) != cfg.data.num_main_views:
        print(f"layout {args.layout} has {len(train_objs[0].targets)} main views but data.num_main_views is "
              f"{cfg.data.num_main_views}: pass data.num_main_views={len(train_objs[0].targets)}", file=sys.stderr)
        return 2
    t_render = time.time() - t0
    print(f"rendered/cached {len(train_objs)} training rigs and {len(held)} held-out rigs in {t_render:.0f} s")

    torch.manual_seed(cfg.trainer.seed)
    untrained = fresh_model(cfg)
    untrained_state = {k: v.clone() for k, v in untrained.state_dict().items()}
    t1 = time.time()
    val_reader = InMemoryReader([h[2] for h in held[:1]])
    module, trainer = fit(cfg, readers=(InMemoryReader(train_objs), val_reader), model=untrained)
    t_train = time.time() - t1
    trained = module.model.cpu()
    untrained = ReconstructionModel()
    untrained.load_state_dict(untrained_state)

    res = args.mesh_resolution
    rows = []
    for rel, up, obj in held:
        if cfg.data.source_views:
            obj = select_sources(obj, cfg.data.source_views)
        gt = load_asset(mesh_root / rel, up_axis=up, framing=FRAMING)
        frame = ReconstructionFrame.from_cameras(obj.targets.cameras[0], obj.sources.cameras)
        meshes = {
            "trained": reconstruct(trained, cfg, obj, res),
            "untrained": reconstruct(untrained, cfg, obj, res),
            "visual_hull": visual_hull(obj.sources, frame, resolution=args.hull_resolution),
        }
        row = {"object": rel}
        for name, mesh in meshes.items():
            row[name] = surface_metrics(mesh, gt)
            if mesh is not None:
                mesh.export(out / "meshes" / f"{rel.split('/')[-2]}_{name}.ply")
        rows.append(row)

    names = ("trained", "untrained", "visual_hull")
    mean = {n: {"fscore": float(np.mean([r[n]["fscore"] for r in rows])),
                "chamfer": float(np.mean([r[n]["chamfer"] for r in rows]))} for n in names}
    metrics_csv = Path(trainer.loggers[0].log_dir) / "metrics.csv"
    if metrics_csv.is_file():
        plot_loss_curve([*args.previous_metrics, metrics_csv], out / "loss_curve.png")
    result = {
        "config": str(args.config), "layout": args.layout, "overrides": overrides, "image_size": size,
        "volume_resolution": cfg.model.volume_resolution,
        "mesh_resolution": res, "hull_resolution": args.hull_resolution, "steps": int(trainer.global_step),
        "train_objects": [r for r, _ in train_specs], "train_polars": polars, "eval_polar": args.eval_polar,
        "framing": FRAMING, "source_views": cfg.data.source_views or list(range(len(held[0][2].sources))), "held_out": rows, "mean": mean, "fscore_threshold": FSCORE_THRESHOLD, "surface_samples": SURFACE_SAMPLES,
        "seconds": {"render": t_render, "train": t_train, "evaluate": time.time() - t1 - t_train},
        "torch_threads": args.threads,
    }
    write_text_atomic(out / "results.json", json.dumps(result, indent=1))

    print(f"\ntrained {trainer.global_step} steps in {t_train / 60:.1f} min; held-out objects at polar {args.eval_polar}")
    print(f"{'object':42s} " + " ".join(f"{n + ' F@0.05':>19s} {n + ' CD':>15s}" for n in names))
    for r in rows:
        print(f"{r['object']:42s} " + " ".join(f"{r[n]['fscore']:19.3f} {r[n]['chamfer']:15.4f}" for n in names))
    print(f"{'MEAN':42s} " + " ".join(f"{mean[n]['fscore']:19.3f} {mean[n]['chamfer']:15.4f}" for n in names))
    print(f"results: {out / 'results.json'}  loss curve: {out / 'loss_curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
