"""SyncDreamer's mesh evaluation (``eval_mesh.py``): Chamfer distance and volume IoU, quirks included.

Steps (each reproduced here; checked against the recorded outputs of the published script):

1. The GT mesh is scaled so its bounding box's longest side is 1, the box centred at the origin, then turned
   about +z by minus a per-object angle (:data:`GT_YAW_DEG`, keyed by object name).
2. The prediction is used **as given**: no normalisation, no alignment.
3. 16 cameras at 30 deg elevation, distance 1.5, azimuth 0..337.5 deg from +x towards +y, 256 px, f = 280 px.
4. Predicted points: per view a depth map rasterised with depth **linear in screen space** (clip w = 1),
   nearest surface, no culling, pixel centres sampled; covered pixels back-projected at their **integer**
   (col, row) index (a half-pixel shift shared with the GT side).
5. GT points: from 16-bit GT depth PNGs (depth = code / 65535 * 1.8 + 0.6, used if 0.63 < depth < 2.37).
6. Both clouds voxel-downsampled at 0.01 (cell means, grid anchored at each cloud's own minimum).
7. Chamfer = mean of the two directional mean Euclidean nearest distances.
8. Volume IoU of ``sdf < 0`` occupancies on the 64^3 ``mesh2sdf`` grid (:mod:`evaluation.volume`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data.cameras import Cameras
from evaluation.distances import compare_point_clouds
from evaluation.pointclouds import backproject_depth, voxel_downsample
from evaluation.rasterize import rasterize_depth
from evaluation.volume import occupancy_grid, volume_iou

NUM_VIEWS = 16
IMAGE_SIZE = 256
FOCAL_PX = 280.0
CAMERA_DISTANCE = 1.5
ELEVATION_DEG = 30.0
#: SyncDreamer measures azimuth from +x towards +y; :mod:`data.conventions` from -y towards +x (both
#: counter-clockwise about +z), so ours = theirs + 90.
AZIMUTH_OFFSET_TO_PROJECT_DEG = 90.0
#: 16-bit depth PNG encoding of the GT renders.
DEPTH_PNG_MIN, DEPTH_PNG_MAX = 0.6, 2.4
DEPTH_VALID_MIN, DEPTH_VALID_MAX = 0.63, 2.37
#: Clip-space near/far of the script's rasteriser set-up (depth -> z_ndc linear map).
RASTER_NEAR, RASTER_FAR = 0.5, 100.0
VOXEL_SIZE = 0.01
IOU_RESOLUTION = 64

#: Yaw (deg) subtracted from each GT object of SyncDreamer's 30-object GSO set (others: 0).
GT_YAW_DEG: dict[str, float] = {
    "sofa": -90.0,
    **{name: 270.0 for name in ("blocks", "alarm", "backpack", "chicken", "soap", "grandfather", "grandmother",
                                "lion", "lunch_bag", "mario", "oil")},
    "elephant": 180.0,
    "school_bus1": 180.0,
    **{name: 225.0 for name in ("school_bus2", "shoe", "train", "turtle")},
    "sorter": 112.5,
}


def cameras() -> Cameras:
    """The 16 evaluation cameras (float64), in the project's conventions."""
    azimuth = np.arange(NUM_VIEWS) * (360.0 / NUM_VIEWS) + AZIMUTH_OFFSET_TO_PROJECT_DEG
    polar = np.full(NUM_VIEWS, 90.0 - ELEVATION_DEG)
    return Cameras.from_spherical(polar, azimuth, CAMERA_DISTANCE, FOCAL_PX, IMAGE_SIZE, dtype=torch.float64)


def normalise_gt(vertices: np.ndarray, object_name: str) -> np.ndarray:
    """Step 1: unit bounding box (longest side 1), box centre at the origin, then yaw by -GT_YAW_DEG[name]."""
    v = np.asarray(vertices, np.float64)
    v = v * (1.0 / np.max(v.max(0) - v.min(0)))
    v = v - (v.max(0) + v.min(0)) / 2.0
    angle = -np.deg2rad(GT_YAW_DEG.get(object_name, 0.0))
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return v @ rotation.T


def read_depth_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 depth and bool mask of one 16-bit GT depth PNG."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GT depth map not found: {path} (expected 000-depth.png .. 015-depth.png)")
    code = np.asarray(Image.open(path))
    if code.dtype != np.uint16 and code.max() <= 255:
        raise ValueError(f"{path} is not a 16-bit depth PNG (dtype {code.dtype})")
    depth = code.astype(np.float32) / 65535 * np.float32(DEPTH_PNG_MAX - DEPTH_PNG_MIN) + np.float32(DEPTH_PNG_MIN)
    return depth, (depth > DEPTH_VALID_MIN) & (depth < DEPTH_VALID_MAX)


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """Inverse of :func:`read_depth_png`: floor-quantised uint16 codes, background (inf/out of range) 65535."""
    code = np.floor((np.asarray(depth, np.float64) - DEPTH_PNG_MIN) / (DEPTH_PNG_MAX - DEPTH_PNG_MIN) * 65535)
    code = np.where(np.isfinite(code), code, 65535)
    return np.clip(code, 0, 65535).astype(np.uint16)


def render_depth_maps(vertices, faces, *, screen_linear: bool = True) -> np.ndarray:
    """(16, 256, 256) depth maps of a mesh from the evaluation cameras (``inf`` = background).

    ``screen_linear=True`` is the script's set-up for predictions (z_ndc interpolated linearly in screen space,
    held in float32 as the GPU rasteriser does); ``False`` gives perspective-correct planar depth (GT renders).
    """
    cams = cameras()
    pixels, depth = cams.project(torch.as_tensor(np.asarray(vertices, np.float32), dtype=torch.float64))
    pixels, depth = pixels.numpy(), depth.numpy()
    out = np.empty((NUM_VIEWS, IMAGE_SIZE, IMAGE_SIZE))
    near, far = RASTER_NEAR, RASTER_FAR
    for n in range(NUM_VIEWS):
        # the script hands float32 clip coordinates to the rasteriser
        pix = pixels[n].astype(np.float32).astype(np.float64)
        if screen_linear:
            z_ndc = ((depth[n] - near) / (far - near) * 2 - 1).astype(np.float32)
            zmap = rasterize_depth(pix, z_ndc, faces, IMAGE_SIZE, IMAGE_SIZE, depth_range=(-1.0, 1.0))
            zmap = zmap.astype(np.float32)
            out[n] = np.where(np.isfinite(zmap), (zmap + 1) / 2 * np.float32(far - near) + np.float32(near), np.inf)
        else:
            out[n] = rasterize_depth(pix, depth[n], faces, IMAGE_SIZE, IMAGE_SIZE, perspective_correct=True,
                                     depth_range=(near, far))
    return out


def points_from_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Back-project 16 depth maps with the script's integer-pixel convention, then voxel-downsample."""
    points = backproject_depth(depth, mask, cameras(), pixel_offset=0.0).astype(np.float32)
    return voxel_downsample(points, VOXEL_SIZE).astype(np.float32)


def pred_points(vertices, faces) -> np.ndarray:
    """Step 4 + 6: downsampled points of a predicted mesh (float32, as the script keeps them)."""
    depth = render_depth_maps(vertices, faces, screen_linear=True)
    return points_from_depth(depth, np.isfinite(depth))


def gt_points_from_pngs(depth_dir: str | Path) -> np.ndarray:
    """Step 5 + 6: downsampled GT points from ``depth_dir/000-depth.png .. 015-depth.png``."""
    pairs = [read_depth_png(Path(depth_dir) / f"{k:03d}-depth.png") for k in range(NUM_VIEWS)]
    return points_from_depth(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def gt_points_from_mesh(vertices, faces) -> np.ndarray:
    """GT points when no GT depth PNGs exist: render them (perspective-correct, 16-bit quantised) first.

    This reproduces the PNG format of SyncDreamer's GT renders (floor-quantised planar depth at pixel centres);
    the published numbers used Blender renders, so expect differences of about one depth code.
    """
    depth = render_depth_maps(vertices, faces, screen_linear=False)
    code = encode_depth_png(depth)
    decoded = code.astype(np.float32) / 65535 * np.float32(DEPTH_PNG_MAX - DEPTH_PNG_MIN) + np.float32(DEPTH_PNG_MIN)
    return points_from_depth(decoded, (decoded > DEPTH_VALID_MIN) & (decoded < DEPTH_VALID_MAX))


@dataclass(frozen=True)
class SyncDreamerResult:
    """One object's result: Chamfer distance (mean of directional means, Euclidean) and volume IoU."""

    chamfer: float
    volume_iou: float
    pred_to_gt: float
    gt_to_pred: float
    num_pred_points: int
    num_gt_points: int
    voxels_pred: int
    voxels_gt: int
    voxels_intersection: int
    voxels_union: int
    gt_points_source: str


def evaluate(pred_vertices, pred_faces, gt_vertices, gt_faces, object_name: str,
             gt_depth_dir: str | Path | None = None) -> SyncDreamerResult:
    """Run the whole SyncDreamer mesh protocol on one object.

    Args:
        pred_vertices, pred_faces: the predicted mesh, already in the render frame (+z up, ~unit size).
        gt_vertices, gt_faces: the raw GT mesh (normalised and turned here by :func:`normalise_gt`).
        object_name: GT object name (selects the yaw).
        gt_depth_dir: folder of the 16 GT depth PNGs; ``None`` renders them from the normalised GT mesh.
    """
    gt_v = normalise_gt(gt_vertices, object_name)
    if gt_depth_dir is not None:
        gt_pts, source = gt_points_from_pngs(gt_depth_dir), f"depth PNGs {gt_depth_dir}"
    else:
        gt_pts, source = gt_points_from_mesh(gt_v, gt_faces), "rendered from the GT mesh (16-bit quantised)"
    pr_pts = pred_points(pred_vertices, pred_faces)
    cloud = compare_point_clouds(pr_pts, gt_pts)
    occ_pred = occupancy_grid(pred_vertices, pred_faces, IOU_RESOLUTION)
    occ_gt = occupancy_grid(gt_v, gt_faces, IOU_RESOLUTION)
    return SyncDreamerResult(
        chamfer=cloud.chamfer,
        volume_iou=volume_iou(occ_pred, occ_gt),
        pred_to_gt=cloud.pred_to_gt,
        gt_to_pred=cloud.gt_to_pred,
        num_pred_points=len(pr_pts),
        num_gt_points=len(gt_pts),
        voxels_pred=int(occ_pred.sum()),
        voxels_gt=int(occ_gt.sum()),
        voxels_intersection=int((occ_pred & occ_gt).sum()),
        voxels_union=int((occ_pred | occ_gt).sum()),
        gt_points_source=source,
    )
