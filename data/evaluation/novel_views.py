"""Novel-view metrics of generated views against ground-truth renders at the same relative poses.

Layout: ``<dir>/<object>/<NNN>.png`` in both folders (SyncDreamer's ``000.png``..``015.png``; RGBA composited
over white). Splits:

* ``zero123``: Zero-1-to-3's protocol as its authors describe it: the first view (``000``) is the input and is
  excluded; every other view is a target (RTMV: frame 0 input, the next 16 frames targets).
* ``all``: every view is scored (SyncDreamer's ``eval_nvs.py``, whose 16 views are all generated).

Per object: mean of per-view PSNR, SSIM (and LPIPS when available), see :mod:`data.evaluation.images`.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from data.evaluation.images import image_metrics, load_image
from data.evaluation.protocols import ProtocolConfig

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
    if pred.shape != gt.shape:
        raise ValueError(f"{pred_folder}: generated views are {tuple(pred.shape[-2:])}, GT {tuple(gt.shape[-2:])}")
    out = image_metrics(pred, gt, lpips_net)
    out["views"] = len(names)
    return out


def evaluate_view_folders(pred_dir, gt_dir, split: str = "zero123", objects=None, lpips_net=None,
                          progress: bool = True) -> list[dict]:
    """One record per object (errors recorded per object, the rest continue)."""
    from tqdm.auto import tqdm

    from data.evaluation.folders import list_objects

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
    from data.evaluation.tables import write_results

    return write_results(out_dir, records, view_protocol(split), method, dataset)
