"""Exact per-pixel depth and normals by ray casting (trimesh with the embree backend when installed)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.cameras import Cameras
from data.mesh import Mesh
from data.render.normals import corner_normals


@dataclass(frozen=True)
class RaycastResult:
    """First hits of one ray per pixel.

    Attributes:
        depth: (N, P) z along each camera's optical axis (world units), 0 where the ray misses.
        hit: (N, P) bool.
        normals: (N, P, 3) unit world-frame normals (interpolated vertex normals), 0 where missed.
        face: (N, P) int64 hit triangle, -1 where missed.
    """

    depth: torch.Tensor
    hit: torch.Tensor
    normals: torch.Tensor
    face: torch.Tensor


def pixel_centers(width: int, height: int) -> torch.Tensor:
    """(H * W, 2) continuous (u, v) of every pixel centre, row-major: pixel (i, j) is sampled at (i + .5, j + .5)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    return torch.stack([u.reshape(-1) + 0.5, v.reshape(-1) + 0.5], -1)


class RayCaster:
    """Casts camera rays against one mesh (world frame)."""

    def __init__(self, mesh: Mesh, crease_deg: float = 60.0):
        import trimesh

        verts = mesh.vertices.detach().cpu().double().numpy()
        faces = mesh.faces.cpu().numpy()
        self._mesh = trimesh.Trimesh(verts, faces, process=False)
        self._crease_deg = crease_deg
        self._corner_normals = None
        try:
            from trimesh.ray.ray_pyembree import RayMeshIntersector
        except ImportError:  # embreex missing: pure-numpy fallback (slow but exact)
            from trimesh.ray.ray_triangle import RayMeshIntersector
        self._intersector = RayMeshIntersector(self._mesh)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First hits of R rays: (R, 3) origins and directions -> hit mask (R,), points (R, 3), faces (R,)."""
        tri, ray, loc = self._intersector.intersects_id(
            origins, directions, multiple_hits=False, return_locations=True
        )
        hit = np.zeros(len(origins), bool)
        points = np.zeros((len(origins), 3))
        faces = np.full(len(origins), -1, np.int64)
        hit[ray], points[ray], faces[ray] = True, loc, tri
        return hit, points, faces

    def smooth_normals(self, points: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """(R, 3) barycentric interpolation of the corner normals (:func:`corner_normals`) at surface ``points``."""
        import trimesh

        if self._corner_normals is None:
            self._corner_normals = corner_normals(self._mesh.vertices, self._mesh.faces, self._crease_deg)
        tris = self._mesh.triangles[faces]
        bary = trimesh.triangles.points_to_barycentric(tris, points)
        n = (self._corner_normals[faces] * bary[:, :, None]).sum(1)
        bad = ~np.isfinite(n).all(1) | (np.linalg.norm(n, axis=1) < 1e-12)
        n[bad] = self._mesh.face_normals[faces[bad]]
        return n / np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)

    def render(self, cameras: Cameras, pixels: torch.Tensor | None = None) -> RaycastResult:
        """Cast one ray per pixel and camera.

        Args:
            cameras: N cameras (world frame, OpenCV).
            pixels: (N, P, 2) or (P, 2) continuous (u, v); default every pixel centre (P = H * W, row-major).
        """
        n = len(cameras)
        if pixels is None:
            pixels = pixel_centers(cameras.width, cameras.height)
        if pixels.ndim == 2:
            pixels = pixels.expand(n, *pixels.shape)
        cams = cameras.to("cpu", torch.float64)
        origins, dirs = cams.pixel_rays(pixels)
        p = pixels.shape[1]
        o, d = origins.reshape(-1, 3).numpy(), dirs.reshape(-1, 3).numpy()
        hit, points, faces = self.cast(o, d / np.linalg.norm(d, axis=1, keepdims=True))
        forward = np.repeat(cams.c2w[:, :3, 2].numpy(), p, axis=0)
        depth = np.where(hit, ((points - o) * forward).sum(1), 0.0)
        normals = np.zeros_like(points)
        if hit.any():
            normals[hit] = self.smooth_normals(points[hit], faces[hit])
        return RaycastResult(
            torch.from_numpy(depth).reshape(n, p),
            torch.from_numpy(hit).reshape(n, p),
            torch.from_numpy(normals).reshape(n, p, 3),
            torch.from_numpy(faces).reshape(n, p),
        )
