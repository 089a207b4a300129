"""Benchmark bookkeeping: which objects a shard owns, which are already done, and resumable evaluation.

The pipeline itself is *injected* (a ``predict(image_path, object_name) -> (Mesh, info dict)`` callable built by
``scripts/run_benchmark.py``), so this module stays in the bottom layer and is testable on existing folders.

Output layout under ``<out>``::

    predictions/<object>/mesh.ply        the prediction, written whole with result.json (one atomic folder)
    predictions/<object>/result.json     timings and run info (its presence marks the object as done)
    evaluation/<protocol>/<object>.json  per-object metric record (reused on resume)
    evaluation/<protocol>/results.*      tables and plot of the shard or of the merged run
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from evaluation.alignment import rotation_about_z
from data.io import atomic_directory, write_text_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: Names tried for an object's input image inside ``<images>/<object>/`` (SyncDreamer GSO: 000.png is the input).
INPUT_NAMES = ("input", "000", "0")


def shard(objects: list[str], index: int, count: int) -> list[str]:
    """Objects of shard ``index`` out of ``count`` (round robin over the sorted list; shards are disjoint)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must satisfy 0 <= index < num_shards, got {index} of {count}")
    return sorted(objects)[index::count]


def find_input_image(images_dir: str | Path, name: str) -> Path:
    """``images/<name>.<ext>`` or ``images/<name>/{input,000,0}.<ext>``; FileNotFoundError otherwise."""
    root = Path(images_dir)
    candidates = [root / f"{name}{ext}" for ext in IMAGE_SUFFIXES]
    candidates += [root / name / f"{stem}{ext}" for stem in INPUT_NAMES for ext in IMAGE_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no input image for {name!r} under {root} (looked for {name}.png and "
                            f"{name}/input.png, {name}/000.png)")


def list_dataset_objects(images_dir: str | Path) -> list[str]:
    """Object names of an image folder: image file stems and sub-folders."""
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    names = {p.stem for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    names |= {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(names)


def prediction_dir(out: str | Path, name: str) -> Path:
    return Path(out) / "predictions" / name


def is_predicted(out: str | Path, name: str) -> bool:
    """True when the object's prediction folder is complete (mesh + result.json)."""
    folder = prediction_dir(out, name)
    return (folder / "result.json").is_file() and any((folder / f"mesh{e}").is_file() for e in (".ply", ".obj", ".glb"))


def run_predictions(objects: list[str], images_dir, out, predict: Callable | None, *, progress: bool = True,
                    mesh_format: str = "ply") -> list[dict]:
    """Predict every object not yet done; each prediction folder is written atomically.

    Args:
        predict: ``(image_path, object_name) -> (Mesh, info dict)``; may be None when nothing is left to do
            (a resumed run), otherwise a clear error is raised.

    Returns:
        one status dict per object: ``{"object", "status": "done"|"skipped"|"error", "seconds", "error"}``.
    """
    from tqdm.auto import tqdm

    todo = [n for n in objects if not is_predicted(out, n)]
    statuses = [{"object": n, "status": "skipped", "seconds": 0.0, "error": None} for n in objects
                if n not in todo]
    if todo and predict is None:
        raise RuntimeError(f"{len(todo)} objects still need a prediction but no pipeline was given")
    for name in tqdm(todo, desc="predict", disable=not progress, unit="obj"):
        start = time.perf_counter()
        status = {"object": name, "status": "error", "error": None}
        try:
            image = find_input_image(images_dir, name)
            mesh, info = predict(image, name)
            with atomic_directory(prediction_dir(out, name)) as tmp:
                mesh.export(tmp / f"mesh.{mesh_format}")
                info = {"object": name, "input_image": str(image), "seconds": time.perf_counter() - start, **info}
                (tmp / "result.json").write_text(json.dumps(info, indent=1, default=str))
            status["status"] = "done"
        except Exception as exc:  # one object's failure never stops the benchmark
            status["error"] = f"{type(exc).__name__}: {exc}"
        status["seconds"] = time.perf_counter() - start
        statuses.append(status)
    return statuses


def yaw_transforms(objects: list[str], input_azimuth_deg: float, pipeline_input_azimuth_deg: float) -> dict:
    """Known pred->GT transforms when the GT frame's input camera azimuth is known (project convention).

    The pipeline puts the input camera at ``pipeline_input_azimuth_deg``; turning the mesh about +z by the
    difference puts it where the GT renderer's input camera saw the object.
    """
    m = np.eye(4)
    m[:3, :3] = rotation_about_z(input_azimuth_deg - pipeline_input_azimuth_deg)
    return {name: m.copy() for name in objects}


def evaluate_predictions(objects: list[str], out, gt_dir, cfg, *, gt_depth_root=None, transforms=None,
                         clip=None, lpips_net=None, progress: bool = True) -> list[dict]:
    """Evaluate predicted objects, reusing per-object records saved by an earlier (interrupted) run."""
    from tqdm.auto import tqdm

    from evaluation.folders import evaluate_object

    record_dir = Path(out) / "evaluation" / cfg.name
    records = []
    for name in tqdm(objects, desc=f"evaluate ({cfg.name})", disable=not progress, unit="obj"):
        cached = record_dir / f"{name}.json"
        if cached.is_file():
            records.append(json.loads(cached.read_text()))
            continue
        rec = evaluate_object(name, Path(out) / "predictions", Path(gt_dir), cfg, gt_depth_root=gt_depth_root,
                              transforms=transforms, clip=clip, lpips_net=lpips_net)
        pred_json = prediction_dir(out, name) / "result.json"
        if pred_json.is_file():
            info = json.loads(pred_json.read_text())
            rec["pipeline_seconds"] = info.get("seconds")
            if info.get("random_weight_stages"):
                rec["random_weight_stages"] = info["random_weight_stages"]
        if rec["status"] == "ok":  # errors are retried on the next run
            from evaluation.tables import _jsonable

            write_text_atomic(cached, json.dumps(_jsonable(rec), indent=1))
        records.append(rec)
    return records


def method_label(records: list[dict], base: str = "one2345") -> str:
    """The method name for the tables; says so loudly when any prediction came from random weights."""
    random = sorted({s for r in records for s in r.get("random_weight_stages", [])})
    return f"{base} (RANDOM WEIGHTS: {', '.join(random)}; numbers meaningless)" if random else base


def merged_records(out, protocol: str, objects: list[str]) -> list[dict]:
    """Per-object records of every shard (objects without a record are reported as not evaluated)."""
    record_dir = Path(out) / "evaluation" / protocol
    records = []
    for name in sorted(objects):
        path = record_dir / f"{name}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
        else:
            records.append({"object": name, "status": "error", "error": "not evaluated (prediction missing or failed)"})
    return records
