"""score_distillation stage package (imports only `data`): the per-shape field of Zero-1-to-3's own 3D
reconstruction (official ``3drec``, Score Jacobian Chaining): a latent-feature voxel grid, its latent-space volume
renderer, the official camera sampler, the loss terms that act on renders, and the mesh export rule.

The Zero123 score lives in :mod:`zero123.score`; the optimisation loop composing both is ``sjc_pipeline.py``.
"""
from score_distillation.cameras import (
    CameraSampler, look_at_pose, near_eye, render_cameras, spiral_poses, train_eyes,
)
from score_distillation.config import CameraConfig, ExportConfig, FieldConfig
from score_distillation.export import DensityMesh, export_density_mesh
from score_distillation.field import VoxelField
from score_distillation.losses import depth_smoothness, emptiness, near_view_loss
from score_distillation.render import LatentRender, RenderError, box_intersect, camera_rays, render_latent

__all__ = [
    "CameraConfig", "CameraSampler", "DensityMesh", "ExportConfig", "FieldConfig", "LatentRender", "RenderError",
    "VoxelField", "box_intersect", "camera_rays", "depth_smoothness", "emptiness", "export_density_mesh",
    "look_at_pose", "near_eye", "near_view_loss", "render_cameras", "render_latent", "spiral_poses", "train_eyes",
]
