"""The official ``export_mesh`` rule of ``3drec`` on a :class:`VoxelField`'s density.

1. raw density upsampled x``upsample`` (trilinear, ``align_corners=False``); 2. density activation; 3. average
pooling (window k, stride 1, zero padding counted); 4. threshold = ``threshold_mult`` x mean (unless given);
5. grey erosion (window e); 6. marching cubes at the threshold (scikit-image here; the official code uses
PyMCubes; scikit-image's classic ``lorensen`` variant places the same vertices on the same cube edges, with its
own vertex order and triangulation of ambiguous cubes).

Frames: :attr:`DensityMesh.official_vertices` is the official output (``index / (N * m) - 0.5``, columns
``(x, z, -y)``: half scale, y up, no half-voxel offset). :meth:`DensityMesh.world_mesh` gives the mesh in the
field's world frame (+z up, ``data.conventions``), vertices at the voxel-centre positions of the box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.mesh import Mesh
from score_distillation.config import ExportConfig
from score_distillation.field import VoxelField


@dataclass
class DensityMesh:
    """Marching-cubes result of the density export.

    Attributes:
        index_vertices: (V, 3) float64 vertices in index coordinates of the processed (z, y, x) array.
        faces: (F, 3) int64.
        threshold: the density level used.
        resolution: side of the processed array (grid size x upsampling).
        bbox_len: half side of the field's box.
    """

    index_vertices: np.ndarray
    faces: np.ndarray
    threshold: float
    resolution: int
    bbox_len: float

    @property
    def official_vertices(self) -> np.ndarray:
        v = self.index_vertices / self.resolution - 0.5
        v = v[:, [2, 0, 1]]
        v[:, 2] = -v[:, 2]
        return v

    def world_vertices(self) -> np.ndarray:
        """(V, 3) world (x, y, z): index (z, y, x) -> voxel centre ``-L + (2 i + 1) L / R``."""
        xyz = self.index_vertices[:, ::-1]
        return -self.bbox_len + (2 * xyz + 1) * self.bbox_len / self.resolution

    def world_mesh(self, scale: float = 1.0) -> Mesh:
        """:class:`data.mesh.Mesh` in the world frame (times ``scale``), faces counter-clockwise seen from
        outside (outward normals)."""
        # scikit-image orients faces towards increasing values (inwards for a density); the (z,y,x) -> (x,y,z)
        # axis reversal is a reflection, which turns them outwards again: the faces are kept as they are.
        return Mesh(torch.from_numpy(self.world_vertices() * scale).float(), torch.from_numpy(self.faces).long())


def processed_density(field: VoxelField, cfg: ExportConfig) -> tuple[np.ndarray, float]:
    """Steps 1-5: the (R, R, R) float32 array (z, y, x) and the threshold."""
    with torch.no_grad():
        raw = field.density.detach().float().cpu()
        if cfg.upsample is not None and cfg.upsample != 1:
            raw = F.interpolate(raw, scale_factor=cfg.upsample, mode="trilinear", align_corners=False)
        sigma = F.softplus(raw * torch.exp(field.d_scale.detach().float().cpu()) + field.cfg.density_shift)
        if cfg.kernel_size > 1:
            sigma = F.avg_pool3d(sigma, cfg.kernel_size, 1, cfg.kernel_size // 2)
        sigma = sigma[0, 0]
        threshold = cfg.threshold if cfg.threshold is not None else float(sigma.mean()) * cfg.threshold_mult
        sigma = sigma.numpy()
    if cfg.erosion_size > 1:
        from scipy.ndimage import grey_erosion

        sigma = grey_erosion(sigma, size=(cfg.erosion_size,) * 3)
    return sigma, float(threshold)


def export_density_mesh(field: VoxelField, cfg: ExportConfig | None = None) -> DensityMesh:
    """The official export of ``field``; an empty mesh when the threshold is not crossed."""
    from skimage import measure

    cfg = cfg or ExportConfig()
    sigma, threshold = processed_density(field, cfg)
    res = sigma.shape[0]
    if not (sigma.min() < threshold < sigma.max()):
        verts, faces = np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    else:
        verts, faces, _, _ = measure.marching_cubes(sigma, level=threshold, method="lorensen")
    return DensityMesh(verts.astype(np.float64), faces.astype(np.int64), threshold, res, float(field.cfg.bbox_len))
