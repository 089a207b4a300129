"""Typed settings of the score-distillation stage (official ``3drec`` values are the defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FieldConfig:
    """The ``V_SD`` voxel grid.

    Attributes:
        grid_size: voxels per axis (official 100).
        bbox_len: the box is ``bbox_len * [-1, 1]^3`` (official 1.0).
        channels: feature channels per voxel = Zero123 latent channels (4).
        step_ratio: ray-marching step as a fraction of the voxel size (official 0.5 -> 0.01 at 100^3).
        density_shift: added before the softplus (official -1: initial density softplus(-1) = 0.313).
        weight_threshold: features are evaluated only where a sample's compositing weight exceeds this (1e-4).
        bg_texture_hw: side of the (unused) learned background texture, kept for the official parameter set.
        background_depth: expected depth assigned to the transparent remainder of a ray (official 10).
    """

    grid_size: int = 100
    bbox_len: float = 1.0
    channels: int = 4
    step_ratio: float = 0.5
    density_shift: float = -1.0
    weight_threshold: float = 1e-4
    bg_texture_hw: int = 4
    background_depth: float = 10.0


@dataclass
class CameraConfig:
    """Render cameras (official ``PoseConfig(rend_hw=32, FoV=49.1, R=2.0)`` and ``sample_spherical`` bounds).

    Attributes:
        render_size: rendered latent side in pixels (32 = Zero123's latent size at 256 px).
        fov_deg: horizontal = vertical field of view of every view, the input's included (deg).
        radius: distance of the input camera from the origin (its pose is rescaled to it).
        radius_range: training-view radii are uniform in this range.
        z_range: a training eye is accepted when ``z_range[0] < z < z_range[1]`` (world +z up).
        near_distance: the near view's eye lies this far from the sampled eye.
    """

    render_size: int = 32
    fov_deg: float = 49.1
    radius: float = 2.0
    radius_range: list[float] = field(default_factory=lambda: [1.8, 2.2])
    z_range: list[float] = field(default_factory=lambda: [-0.5, 2.2])
    near_distance: float = 0.05


@dataclass
class ExportConfig:
    """The official ``export_mesh`` rule.

    Attributes:
        upsample: trilinear upsampling factor of the raw density before activation (official 2; null = none).
        threshold: absolute density level; null = ``threshold_mult`` x mean of the pooled density.
        threshold_mult: official 8.
        kernel_size: average-pooling window (official 7; 1 = none).
        erosion_size: grey-erosion window (official 5; 1 = none).
    """

    upsample: int | None = 2
    threshold: float | None = None
    threshold_mult: float = 8.0
    kernel_size: int = 7
    erosion_size: int = 5
