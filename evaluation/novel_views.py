"""Novel-view metrics of generated views against ground-truth renders at the same relative poses.

Layout: ``<dir>/<object>/<NNN>.png`` in both folders (SyncDreamer's ``000.png``..``015.png``; RGBA composited
over white). Splits:

* ``zero123``: Zero-1-to-3's protocol as its authors describe it: the first view (``000``) is the input and is
  excluded; every other view is a target (RTMV: frame 0 input, the next 16 frames targets).
* ``all``: every view is scored (SyncDreamer's ``eval_nvs.py``, whose 16 views are all generated).

Per object: mean of per-view PSNR, SSIM (and LPIPS when available), see :mod:`evaluation.images`. When
generated and GT views differ in size (e.g. 256 px generations against 512 px renders), the GT is resized to the
generated size (area filter) first: Zero-1-to-3 reports its metrics at 256 px.

:func:`generate_views` produces the generated side from a GT render folder (``cameras.json`` as written by
:mod:`data.render.io`): view 000 conditions, every other view is a target at the same relative pose
(:meth:`data.layout.RelativePose.between`). The generator is injected (Zero123 lives above this layer).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from evaluation.images import image_metrics, load_image
from evaluation.protocols import ProtocolConfig
from data.io import atomic_directory
from data.layout import RelativePose

#: Conditioning / generation size of Zero123.
GENERATION_SIZE = 256

SPLITS = {
    "zero123": "view 000 is the input and excluded; all other views are targets (Zero-1-to-3 authors)",
    "all": "every view is a target (SyncDreamer eval_nvs.py)",
}


def view_protocol(split: str) -> ProtocolConfig:
    """A :class:`ProtocolConfig` carrying the name and definition of a novel-view run (for the tables)."""
    if split not in SPLITS:
        raise ValueError(f"unknown novel-view split {split!r}; use one of {sorted(SPLITS)}")
    return ProtocolConfig(
        name=f"novel_views_{split}",
        definition=(f"novel views, split {split}: {SPLITS[split]}. Images composited over white; PSNR = mean of "
                    "per-view 10 log10(1/MSE); SSIM = torchmetrics defaults (Gaussian sigma 1.5, data range "
                    "from the images); LPIPS VGG v0.1 when installed."),
        volume_iou=False, render_metrics=False)


def target_views(gt_folder: Path, split: str) -> list[str]:
    """Sorted view file names of one object, minus the input view for the ``zero123`` split."""
    names = sorted(p.name for p in gt_folder.iterdir() if p.suffix.lower() == ".png" and p.stem.isdigit())
    if not names:
        raise FileNotFoundError(f"no numbered views (000.png, 001.png, ...) in {gt_folder}")
    if split == "zero123":
        names = [n for n in names if int(Path(n).stem) != 0]
    if not names:
        raise ValueError(f"{gt_folder}: no target views left after removing the input view")
    return names


def evaluate_object_views(pred_folder: Path, gt_folder: Path, split: str, lpips_net=None) -> dict:
    names = target_views(gt_folder, split)
    missing = [n for n in names if not (pred_folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{pred_folder} lacks generated views {missing[:5]}{'...' if len(missing) > 5 else ''}")
    gt = torch.stack([load_image(gt_folder / n) for n in names])
    pred = torch.stack([load_image(pred_folder / n) for n in names])
    if pred.shape[:2] != gt.shape[:2]:
        raise ValueError(f"{pred_folder}: {tuple(pred.shape)} generated vs {tuple(gt.shape)} GT views")
    if pred.shape[-2:] != gt.shape[-2:]:
        gt = torch.nn.functional.interpolate(gt, size=pred.shape[-2:], mode="area")
    out = image_metrics(pred, gt, lpips_net)
    out["views"] = len(names)
    return out


def evaluate_view_folders(pred_dir, gt_dir, split: str = "zero123", objects=None, lpips_net=None,
                          progress: bool = True) -> list[dict]:
    """One record per object (errors recorded per object, the rest continue)."""
    from tqdm.auto import tqdm

    from evaluation.folders import list_objects

    names = list_objects(gt_dir, objects)
    records = []
    for name in tqdm(names, desc=f"novel views ({split})", disable=not progress, unit="obj"):
        rec = {"object": name, "status": "error", "error": None}
        start = time.perf_counter()
        try:
            rec.update(evaluate_object_views(Path(pred_dir) / name, Path(gt_dir) / name, split, lpips_net))
            rec["status"] = "ok"
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["seconds"] = time.perf_counter() - start
        records.append(rec)
    return records


def write_view_results(out_dir, records, *, split: str, method: str, dataset: str) -> dict:
    """Tables and plot of a novel-view run (same files as a mesh run)."""
    from evaluation.tables import write_results

    return write_results(out_dir, records, view_protocol(split), method, dataset)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-2:] == (size, size):
        return image
    arr = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    resized = Image.fromarray(arr).resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(resized, np.float32) / 255.0).permute(2, 0, 1)


def generate_views(objects: list[str], gt_dir, out_dir, generate: Callable | None, *, progress: bool = True) -> list[dict]:
    """Generate every target view of every object not done yet (folders written atomically).

    Args:
        objects: object names (sub-folders of ``gt_dir`` holding ``cameras.json`` and the view PNGs).
        generate: ``(cond (N, 3, 256, 256) in [0, 1], RelativePose with N entries) -> (N, 3, 256, 256)``.

    Returns:
        one status dict per object (``done`` / ``skipped`` / ``error``).
    """
    from tqdm.auto import tqdm

    from data.render.io import load_cameras

    statuses = []
    todo = [n for n in objects if not (Path(out_dir) / n / "generation.json").is_file()]
    statuses += [{"object": n, "status": "skipped", "error": None} for n in objects if n not in todo]
    if todo and generate is None:
        raise RuntimeError(f"{len(todo)} objects still need generated views but no generator was given")
    for name in tqdm(todo, desc="generate views", disable=not progress, unit="obj"):
        status = {"object": name, "status": "error", "error": None}
        start = time.perf_counter()
        try:
            folder = Path(gt_dir) / name
            cams, names = load_cameras(folder)
            if len(names) < 2:
                raise ValueError(f"{folder}: needs an input view and at least one target view")
            cond = _resize(load_image(folder / f"{names[0]}.png"), GENERATION_SIZE)
            targets = list(range(1, len(names)))
            rel = RelativePose.between(cams[[0] * len(targets)], cams[targets])
            images = generate(cond[None].expand(len(targets), -1, -1, -1).contiguous(), rel)
            with atomic_directory(Path(out_dir) / name) as tmp:
                for i, image in zip(targets, images):
                    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                    Image.fromarray(arr).save(tmp / f"{names[i]}.png")
                info = {"object": name, "input_view": names[0], "targets": [names[i] for i in targets],
                        "delta_polar_deg": rel.delta_polar_deg.tolist(),
                        "delta_azimuth_deg": rel.delta_azimuth_deg.tolist(),
                        "delta_radius": rel.delta_radius.tolist(), "seconds": time.perf_counter() - start}
                (tmp / "generation.json").write_text(json.dumps(info, indent=1))
            status["status"] = "done"
        except Exception as exc:
            status["error"] = f"{type(exc).__name__}: {exc}"
        status["seconds"] = time.perf_counter() - start
        statuses.append(status)
    return statuses
