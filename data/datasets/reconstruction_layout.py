"""The reconstruction module's training data, rendered on the inference rig (official file names, section 11.1).

Per object folder::

    view_{k}.png                   k < n main views: ground truth, RGBA (straight alpha)
    view_{k}_depth_mm.png          uint16 z-depth in millimetres, 0 = background (mask = depth > 0)
    view_{k}_{j}_10_gt.png         the 4 nearby views (+-10 deg polar / azimuth) of main view k, rendered
    view_{k}_{j}_10_gt_depth_mm.png
    view_{k}_{j}_10.png            (absent here) Zero123's prediction of the same view: written later by the
                                   reconstruction-training tools; readers fall back to ``_gt`` when asked
    pose.json                      ``data.layout.pose_json`` schema: intrinsics, near_far, c2ws (Blender c2w) keyed
                                   ``"{k}.png"`` then ``"{k}_{j}.png"`` (k-major, j-minor, the official order)
    meta.json                      object id, asset, up axis, view selection, main-view angles, seed

Cameras: :func:`data.layout.cameras_for` (radius :data:`~data.conventions.CAMERA_RADIUS`, focal
:data:`~data.conventions.FOCAL_PX` at :data:`~data.conventions.IMAGE_SIZE`) and nearby views from
:func:`data.layout.nearby_views`: the one rig definition inference uses. Objects are framed as inference frames
them (:mod:`data.assets` ``framing="rig"``): bounding sphere of radius :data:`~data.conventions.RIG_OBJECT_RADIUS`,
so every view shows the whole object within the 75 % of the image a preprocessed input fills, never cut by the
border (``tests/data/test_datasets.py`` checks every mesh of ``../shared/data``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import conventions as conv
from data import layout
from data.cameras import Cameras
from data.datasets.zero123_layout import straight_rgba
from data.render.rasterizer import RenderOutput

VIEW_SELECTIONS = ("sphere", "inference", "zero123plus")
#: Zero123++ pose set of the ``zero123plus`` selection (the table of the generators' default variant).
ZERO123PLUS_POSE_SET = "v1.2"
#: The largest millimetre depth a uint16 PNG can hold.
MAX_DEPTH_MM = 65535


@dataclass
class ReconstructionLayoutConfig:
    """How the main views are chosen (the nearby views always follow :data:`data.layout.NEARBY_DELTAS_DEG`).

    Attributes:
        num_main_views: n main (ground-truth target) views; ``inference`` selection needs 8.
        view_selection: ``"sphere"``: n directions of a Fibonacci sphere (polar clipped to
            [min_polar_deg, 180 - min_polar_deg]) turned by a random azimuth per object; ``"inference"``: the 8
            first-stage views of :func:`data.layout.first_stage_views` for an input polar drawn uniformly from
            [input_polar_min_deg, input_polar_max_deg], so the training views match inference's; ``"zero123plus"``:
            7 main views, the input view (view 0, same random polar, azimuth 30 deg: the reference frame) and the
            six Zero123++ views at the v1.2 table's angles on the rig (views 1-6), whose nearby views are the 24
            sources of the ``zero123plus_nearby`` generator (train with ``data.source_views`` = 4..27).
        min_polar_deg: keeps main views (and their +-10 deg neighbours) away from the poles.
    """

    num_main_views: int = 8
    view_selection: str = "sphere"
    min_polar_deg: float = 25.0
    input_polar_min_deg: float = 45.0
    input_polar_max_deg: float = 105.0

    def __post_init__(self) -> None:
        if self.view_selection not in VIEW_SELECTIONS:
            raise ValueError(f"view_selection must be one of {VIEW_SELECTIONS}, got {self.view_selection!r}")
        if self.view_selection == "inference" and self.num_main_views != 8:
            raise ValueError("view_selection 'inference' has exactly 8 main views")
        if self.view_selection == "zero123plus" and self.num_main_views != 7:
            raise ValueError("view_selection 'zero123plus' has exactly 7 main views (input + six Zero123++ views)")
        if self.num_main_views < 1:
            raise ValueError("num_main_views must be >= 1")


def main_views(cfg: ReconstructionLayoutConfig, rng: np.random.Generator) -> list[layout.ViewSpec]:
    """The n main views of one object (names ``"0"`` .. ``"n-1"``)."""
    if cfg.view_selection == "inference":
        polar = float(rng.uniform(cfg.input_polar_min_deg, cfg.input_polar_max_deg))
        views = layout.first_stage_views(polar)
        return [layout.ViewSpec(str(i), v.polar_deg, v.azimuth_deg, 0.0, 0.0, "object") for i, v in enumerate(views)]
    if cfg.view_selection == "zero123plus":
        polar = float(rng.uniform(cfg.input_polar_min_deg, cfg.input_polar_max_deg))
        views = layout.first_stage_views(polar)[:1] + layout.zero123plus_rig_views(ZERO123PLUS_POSE_SET)
        return [layout.ViewSpec(str(i), v.polar_deg, v.azimuth_deg, 0.0, 0.0, "object") for i, v in enumerate(views)]
    n = cfg.num_main_views
    z = 1.0 - (2.0 * np.arange(n) + 1.0) / n
    polar = np.clip(np.rad2deg(np.arccos(z)), cfg.min_polar_deg, 180.0 - cfg.min_polar_deg)
    golden = 180.0 * (3.0 - np.sqrt(5.0))
    azimuth = (float(rng.uniform(0.0, 360.0)) + golden * np.arange(n)) % 360.0
    return [layout.ViewSpec(str(i), float(p), float(a), 0.0, 0.0, "object") for i, (p, a) in
            enumerate(zip(polar, azimuth))]


def all_views(mains: list[layout.ViewSpec]) -> list[layout.ViewSpec]:
    """Main views, then the 4 nearby views of each in the official k-major order."""
    return mains + [v for m in mains for v in layout.nearby_views(m)]


def rig_cameras(views: list[layout.ViewSpec]) -> Cameras:
    """Inference-rig cameras (float64) of the views."""
    return layout.cameras_for(views, torch.float64)


def file_stem(view: layout.ViewSpec) -> str:
    """Official file stem: ``view_k`` for a main view, ``view_k_j_10_gt`` for a rendered nearby view."""
    return f"view_{view.name}" if "_" not in view.name else f"view_{view.name}_10_gt"


def depth_mm_png(depth: torch.Tensor) -> Image.Image:
    """(1, H, W) z-depth (world units = metres) -> uint16 millimetre PNG, 0 = background."""
    mm = np.rint(depth[0].double().numpy() * 1000.0)
    if mm.max() > MAX_DEPTH_MM:
        raise ValueError(f"depth {mm.max() / 1000:.1f} m does not fit a uint16 millimetre PNG")
    return Image.fromarray(mm.astype(np.uint16))


def write_reconstruction_object(folder: Path, out: RenderOutput, views: list[layout.ViewSpec], meta: dict) -> None:
    """Write one object's renders (``out`` in the order of ``views``) into an empty temporary ``folder``."""
    for i, view in enumerate(views):
        stem = file_stem(view)
        Image.fromarray(straight_rgba(out, i)).save(folder / f"{stem}.png")
        depth_mm_png(out.depth[i]).save(folder / f"{stem}_depth_mm.png")
    cams = out.cameras.to("cpu", torch.float64)
    pose = {
        "intrinsics": cams.intrinsics[0].tolist(),
        "near_far": list(conv.RIG_NEAR_FAR),
        "c2ws": {f"{v.name}.png": c.tolist() for v, c in zip(views, cams.c2w_opengl)},
    }
    (folder / "pose.json").write_text(json.dumps(pose, indent=1))
    n_main = sum("_" not in v.name for v in views)
    meta = {**meta, "layout": "reconstruction", "num_main_views": n_main, "predicted_sources": False,
            "main_views": [{"name": v.name, "polar_deg": v.polar_deg, "azimuth_deg": v.azimuth_deg}
                           for v in views[:n_main]]}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
