"""Evaluation metrics shared by ``scripts/evaluate.py``, the benchmark runner and reconstruction training.

Bottom layer (imports only ``data``): point sampling, Chamfer / F-score (KD-tree), volume IoU, alignment,
protocol presets (``one2345``, ``syncdreamer``, ``sf3d``), image metrics and result tables.
"""
from evaluation.distances import PointCloudMetrics, compare_point_clouds, nearest_distances
from evaluation.pointclouds import sample_surface, voxel_downsample
from evaluation.protocols import ProtocolConfig, evaluate_meshes, load_protocol
from evaluation.volume import occupancy_grid, volume_iou

__all__ = [
    "PointCloudMetrics",
    "ProtocolConfig",
    "compare_point_clouds",
    "evaluate_meshes",
    "load_protocol",
    "nearest_distances",
    "occupancy_grid",
    "sample_surface",
    "volume_iou",
    "voxel_downsample",
]
