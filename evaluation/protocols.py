"""Evaluation protocols (presets ``one2345``, ``syncdreamer``, ``sf3d``) and the per-object mesh evaluation.

A protocol is a typed config (:class:`ProtocolConfig`) loaded from ``configs/evaluation/<name>.yaml``; its
``definition`` text is copied into every result file so a number is never separated from its definition.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.config import ConfigError, load_config
from evaluation import alignment as al
from evaluation import syncdreamer
from evaluation.distances import compare_point_clouds
from evaluation.pointclouds import sample_surface
from evaluation.volume import occupancy_grid, volume_iou
from data.mesh import Mesh

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "evaluation"
FAMILIES = ("sampled", "syncdreamer")
ALIGNMENTS = ("none", "known", "search_icp", "auto")
NORMALISATIONS = ("bbox", "none")


@dataclass
class ProtocolConfig:
    """How one paper family measures a predicted mesh against the ground truth.

    Attributes:
        name: preset name, written into every output.
        definition: human-readable statement of every choice (written into every output).
        family: ``"sampled"`` (normalise, align, sample the surface) or ``"syncdreamer"`` (its eval_mesh.py).
        normalisation: ``"bbox"`` (centre the bounding box, longest side ``normalise_size``) or ``"none"``;
            applied to GT and prediction independently.
        alignment: ``"none"``; ``"known"`` (a given pred->GT transform, else fail); ``"search_icp"`` (rotation
            search then ICP); ``"auto"`` (known when given, else search_icp).
        rotation_search: ``"yaw"`` or ``"so3"``; rotation_steps: subdivisions of a full turn.
        search_points: points per cloud during the search; icp_iterations / icp_translation: ICP settings.
        num_points: surface samples per mesh for Chamfer / F-score; seed: sampling seed.
        fscore_thresholds: F-score thresholds in normalised units (strict ``<``).
        squared_chamfer: square distances before averaging (Chamfer only).
        volume_iou: also compute volume IoU; iou_resolution: samples per axis; iou_margin: the IoU box is the
            normalised box enlarged by this factor (keeps extreme vertices off the sample planes).
        render_metrics: also render prediction (aligned) and GT from One-2-3-45's 24 views and report PSNR /
            SSIM, plus CLIP similarity / LPIPS when a model is supplied (:mod:`evaluation.renders`);
            render_size: render resolution in pixels.
    """

    name: str = "custom"
    definition: str = ""
    family: str = "sampled"
    normalisation: str = "bbox"
    normalise_size: float = 1.0
    alignment: str = "auto"
    rotation_search: str = "yaw"
    rotation_steps: int = 24
    search_points: int = 2000
    icp_iterations: int = 50
    icp_translation: bool = True
    num_points: int = 10000
    seed: int = 0
    fscore_thresholds: list[float] = field(default_factory=lambda: [0.05])
    squared_chamfer: bool = False
    volume_iou: bool = True
    iou_resolution: int = 64
    iou_margin: float = 1.1
    render_metrics: bool = False
    render_size: int = 256

    def validate(self) -> "ProtocolConfig":
        checks = [("family", self.family, FAMILIES), ("alignment", self.alignment, ALIGNMENTS),
                  ("normalisation", self.normalisation, NORMALISATIONS),
                  ("rotation_search", self.rotation_search, ("yaw", "so3"))]
        for key, value, allowed in checks:
            if value not in allowed:
                raise ConfigError(f"protocol {self.name}: {key}={value!r} is not one of {allowed}")
        if self.num_points < 1 or self.iou_resolution < 2:
            raise ConfigError(f"protocol {self.name}: num_points and iou_resolution must be positive")
        return self


def load_protocol(name_or_path: str | Path, overrides=()) -> ProtocolConfig:
    """A preset by name (``one2345``, ``syncdreamer``, ``sf3d``) or a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown evaluation protocol {name_or_path!r}; presets: {known} (or a YAML path)")
    return load_config(ProtocolConfig, path, overrides=list(overrides)).validate()


def _normalise(vertices: np.ndarray, cfg: ProtocolConfig) -> np.ndarray:
    if cfg.normalisation == "none":
        return np.asarray(vertices, np.float64)
    return al.normalise_bbox(vertices, cfg.normalise_size)[0]


def evaluate_sampled(pred_vertices, pred_faces, gt_vertices, gt_faces, cfg: ProtocolConfig,
                     known_transform: np.ndarray | None = None) -> dict:
    """Normalise, align and compare two meshes by surface sampling (the ``sampled`` family).

    Args:
        pred_vertices, pred_faces, gt_vertices, gt_faces: the two meshes ((V, 3), (F, 3)).
        known_transform: optional (4, 4) map of the raw prediction into the raw GT frame.

    Returns:
        dict of metrics (``chamfer``, ``pred_to_gt``, ``gt_to_pred``, ``fscore@t`` per threshold,
        ``volume_iou`` when enabled) and ``alignment`` (what was done, with the final rotation).
    """
    pred_v = np.asarray(pred_vertices, np.float64)
    gt_v = _normalise(gt_vertices, cfg)
    mode = cfg.alignment
    if mode == "auto":
        mode = "known" if known_transform is not None else "search_icp"
    if mode == "known":
        if known_transform is None:
            raise ValueError(f"protocol {cfg.name} needs a known pred->GT transform for this object (none given)")
        m = np.asarray(known_transform, np.float64)
        pred_v = pred_v @ m[:3, :3].T + m[:3, 3]
    rotation, translation = np.eye(3), np.zeros(3)
    if mode == "search_icp":
        few = max(cfg.search_points, 500)
        p_s = sample_surface(pred_v, pred_faces, few, cfg.seed + 11)
        g_s = sample_surface(gt_v, gt_faces, few, cfg.seed + 12)
        rotation, _ = al.search_rotation(p_s, g_s, al.rotation_candidates(cfg.rotation_search, cfg.rotation_steps),
                                         cfg.search_points, cfg.seed)
        pred_v = pred_v @ rotation.T
    pred_v = _normalise(pred_v, cfg)
    pred_pts = sample_surface(pred_v, pred_faces, cfg.num_points, cfg.seed)
    gt_pts = sample_surface(gt_v, gt_faces, cfg.num_points, cfg.seed + 1)
    if mode == "search_icp" and cfg.icp_iterations > 0:
        rigid = al.icp(pred_pts, gt_pts, cfg.icp_iterations, cfg.icp_translation)
        pred_pts, pred_v = rigid.apply(pred_pts), rigid.apply(pred_v)
        rotation, translation = rigid.rotation @ rotation, rigid.translation
    cloud = compare_point_clouds(pred_pts, gt_pts, cfg.fscore_thresholds, squared=cfg.squared_chamfer)
    out = {"chamfer": cloud.chamfer, "pred_to_gt": cloud.pred_to_gt, "gt_to_pred": cloud.gt_to_pred}
    for t in cfg.fscore_thresholds:
        out[f"fscore@{t:g}"] = cloud.fscore[float(t)]
    if cfg.volume_iou:
        half = 0.5 * (cfg.normalise_size if cfg.normalisation == "bbox" else
                      float(np.abs(np.concatenate([pred_v, gt_v])).max()) * 2) * cfg.iou_margin
        occ_p = occupancy_grid(pred_v / half, pred_faces, cfg.iou_resolution)
        occ_g = occupancy_grid(gt_v / half, gt_faces, cfg.iou_resolution)
        out["volume_iou"] = volume_iou(occ_p, occ_g)
    out["alignment"] = {"mode": mode, "rotation": np.round(rotation, 6).tolist(),
                        "icp_translation_normalised": np.round(translation, 6).tolist()}
    out["_aligned_pred_vertices"] = pred_v
    return out


def evaluate_meshes(pred_mesh, gt_mesh, cfg: ProtocolConfig, *, object_name: str = "",
                    known_transform: np.ndarray | None = None, gt_depth_dir: str | Path | None = None,
                    clip=None, lpips_net=None) -> dict:
    """Evaluate one object under ``cfg``; ``pred_mesh``/``gt_mesh`` are :class:`data.mesh.Mesh`.

    ``known_transform`` (4, 4) maps the raw prediction into the GT frame (``syncdreamer``: applied as a frame
    change before its no-alignment protocol). ``clip`` (a :class:`evaluation.clip_similarity.ClipSimilarity`)
    and ``lpips_net`` are used only when ``cfg.render_metrics`` is on.

    Returns:
        dict of metrics plus ``seconds`` (wall time of the evaluation).
    """
    start = time.perf_counter()
    pv, pf = pred_mesh.vertices.detach().cpu().numpy(), pred_mesh.faces.cpu().numpy()
    gv, gf = gt_mesh.vertices.detach().cpu().numpy(), gt_mesh.faces.cpu().numpy()
    if cfg.family == "syncdreamer":
        if known_transform is not None:  # a frame change (e.g. pipeline world -> render frame), not a fit
            m = np.asarray(known_transform, np.float64)
            pv = pv.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
        res = syncdreamer.evaluate(pv, pf, gv, gf, object_name, gt_depth_dir)
        out = {k: v for k, v in asdict(res).items()}
        out["alignment"] = {"mode": "none"}
        aligned = pv
    else:
        out = evaluate_sampled(pv, pf, gv, gf, cfg, known_transform)
        aligned = out.pop("_aligned_pred_vertices")
    if cfg.render_metrics:
        from evaluation.renders import render_metrics

        aligned_mesh = Mesh(torch.as_tensor(aligned, dtype=torch.float32), pred_mesh.faces, pred_mesh.vertex_colors,
                            pred_mesh.uv, pred_mesh.texture)
        rendered = render_metrics(aligned_mesh, gt_mesh, size=cfg.render_size, clip=clip, lpips_net=lpips_net)
        out.update({k: v for k, v in rendered.items() if k != "per_view"})
        out["per_view"] = rendered["per_view"]
    out["seconds"] = time.perf_counter() - start
    return out
