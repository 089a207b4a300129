"""Evaluate folders of predicted and ground-truth meshes object by object; a bad object never stops the rest."""
from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from evaluation.protocols import ProtocolConfig, evaluate_meshes
from data.mesh import MESH_FORMATS, Mesh

#: File names tried inside ``<root>/<object>/`` (pipeline output, GSO layout), in order.
MESH_NAMES = ("mesh", "model", "meshes/model")


def find_mesh(root: str | Path, name: str) -> Path:
    """The mesh of object ``name`` under ``root``.

    Tried in order: ``root/name.{ply,obj,glb}``; ``root/name/{mesh,model,meshes/model}.{ply,obj,glb}``; the
    only mesh file anywhere under ``root/name/``. Raises FileNotFoundError listing what was looked for.
    """
    root = Path(root)
    candidates = [root / f"{name}{ext}" for ext in MESH_FORMATS]
    candidates += [root / name / f"{stem}{ext}" for stem in MESH_NAMES for ext in MESH_FORMATS]
    for path in candidates:
        if path.is_file():
            return path
    folder = root / name
    if folder.is_dir():
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MESH_FORMATS)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise FileNotFoundError(f"{folder} holds {len(found)} meshes; name one mesh.<ext> or model.<ext>")
    raise FileNotFoundError(f"no mesh for object {name!r} under {root} (looked for {name}.ply/.obj/.glb and "
                            f"{name}/mesh.*, {name}/model.*, {name}/meshes/model.*)")


def list_objects(gt_dir: str | Path, objects: str | Path | Iterable[str] | None = None) -> list[str]:
    """Object names: from ``objects`` (a text file, one per line, ``#`` comments, or a list), else every mesh
    file stem and sub-folder of ``gt_dir`` (sorted)."""
    if objects is not None:
        if isinstance(objects, (str, Path)):
            path = Path(objects)
            if not path.is_file():
                raise FileNotFoundError(f"object list not found: {path}")
            lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
            names = [ln for ln in lines if ln]
        else:
            names = list(objects)
        if not names:
            raise ValueError("the object list is empty")
        return names
    gt = Path(gt_dir)
    if not gt.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt}")
    names = {p.stem for p in gt.iterdir() if p.is_file() and p.suffix.lower() in MESH_FORMATS}
    names |= {p.name for p in gt.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not names:
        raise ValueError(f"no meshes found in {gt}")
    return sorted(names)


def load_transforms(path: str | Path | None) -> dict[str, np.ndarray]:
    """Known pred->GT transforms: a JSON object ``{object: 4x4 nested list}`` (or None -> empty)."""
    if path is None:
        return {}
    data = json.loads(Path(path).read_text())
    out = {}
    for name, m in data.items():
        arr = np.asarray(m, np.float64)
        if arr.shape != (4, 4):
            raise ValueError(f"{path}: transform of {name!r} must be 4x4, got {arr.shape}")
        out[name] = arr
    return out


def evaluate_object(name: str, pred_dir: Path, gt_dir: Path, cfg: ProtocolConfig, *, gt_depth_root=None,
                    transforms=None, clip=None, lpips_net=None) -> dict:
    """One object's record: ``{"object", "status": "ok"|"error", "error", metrics..., "seconds"}``."""
    record = {"object": name, "status": "error", "error": None}
    start = time.perf_counter()
    try:
        pred_path, gt_path = find_mesh(pred_dir, name), find_mesh(gt_dir, name)
        record.update(pred_path=str(pred_path), gt_path=str(gt_path))
        pred, gt = Mesh.load(pred_path), Mesh.load(gt_path)
        depth_dir = None
        if gt_depth_root is not None and (Path(gt_depth_root) / name).is_dir():
            depth_dir = Path(gt_depth_root) / name
        metrics = evaluate_meshes(pred, gt, cfg, object_name=name, known_transform=(transforms or {}).get(name),
                                  gt_depth_dir=depth_dir, clip=clip, lpips_net=lpips_net)
        record.update(metrics)
        record["status"] = "ok"
    except Exception as exc:  # reported per object; the rest still evaluate
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=3)
    record["seconds"] = time.perf_counter() - start
    return record


def evaluate_folders(pred_dir, gt_dir, cfg: ProtocolConfig, objects=None, *, gt_depth_root=None, transforms=None,
                     clip=None, lpips_net=None, progress: bool = True,
                     on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Evaluate every object; returns one record per object (errors included, in object order)."""
    from tqdm.auto import tqdm

    names = list_objects(gt_dir, objects)
    records = []
    bar = tqdm(names, desc=f"evaluate ({cfg.name})", disable=not progress, unit="obj")
    for name in bar:
        rec = evaluate_object(name, Path(pred_dir), Path(gt_dir), cfg, gt_depth_root=gt_depth_root,
                              transforms=transforms, clip=clip, lpips_net=lpips_net)
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    return records
