"""`Cameras`: a batch of pinhole cameras in the OpenCV convention (see :mod:`data.conventions`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from data import conventions as conv


@dataclass(frozen=True)
class Cameras:
    """A batch of N pinhole cameras.

    Attributes:
        c2w: (N, 4, 4) camera-to-world, **OpenCV axes** (x right, y down, z forward), world units.
        intrinsics: (N, 3, 3) pixel-space K (fx, fy, cx, cy); pixel (u, v) = (fx X/Z + cx, fy Y/Z + cy).
        width, height: image size in pixels (shared by the batch).
    """

    c2w: torch.Tensor
    intrinsics: torch.Tensor
    width: int = conv.IMAGE_SIZE
    height: int = conv.IMAGE_SIZE

    def __post_init__(self) -> None:
        if self.c2w.ndim != 3 or self.c2w.shape[-2:] != (4, 4):
            raise ValueError(f"Cameras.c2w must be (N, 4, 4), got {tuple(self.c2w.shape)}")
        if self.intrinsics.shape != (self.c2w.shape[0], 3, 3):
            raise ValueError(
                f"Cameras.intrinsics must be ({self.c2w.shape[0]}, 3, 3), got {tuple(self.intrinsics.shape)}"
            )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_spherical(
        cls,
        polar_deg,
        azimuth_deg,
        radius=conv.CAMERA_RADIUS,
        focal_px: float = conv.FOCAL_PX,
        size_px: int = conv.IMAGE_SIZE,
        dtype: torch.dtype = torch.float32,
        compute_dtype: torch.dtype = torch.float64,
    ) -> "Cameras":
        """Look-at cameras around the origin (world +z up) from spherical parameters.

        Args:
            polar_deg, azimuth_deg: (N,) or scalars, degrees (conventions in :mod:`data.conventions`).
            radius: (N,) or scalar, world units.
            focal_px: focal length in pixels at ``size_px``; square images.
            dtype: dtype of the stored matrices.
            compute_dtype: precision of the pose computation (float32 reproduces the official float32
                ``calc_pose`` bit for bit; float64, the default, is the more accurate one).
        """
        c2w_gl = conv.spherical_to_c2w_opengl(polar_deg, azimuth_deg, radius, compute_dtype).reshape(-1, 4, 4)
        return cls.from_opengl(c2w_gl.to(dtype), conv.intrinsics_matrix(focal_px, size_px).to(dtype), size_px, size_px)

    @classmethod
    def from_opengl(cls, c2w_opengl, intrinsics, width: int = conv.IMAGE_SIZE, height: int = conv.IMAGE_SIZE):
        """Build from OpenGL/Blender c2w (N, 4, 4); ``intrinsics`` (3, 3) is shared or (N, 3, 3)."""
        c2w = conv.opengl_to_opencv(torch.as_tensor(c2w_opengl))
        k = torch.as_tensor(intrinsics, dtype=c2w.dtype)
        if k.ndim == 2:
            k = k.expand(c2w.shape[0], 3, 3).clone()
        return cls(c2w, k, width, height)

    @classmethod
    def cat(cls, cameras: list["Cameras"]) -> "Cameras":
        """Concatenate batches with the same image size."""
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cannot concatenate cameras of different image sizes {sizes}")
        w, h = sizes.pop()
        return cls(torch.cat([c.c2w for c in cameras]), torch.cat([c.intrinsics for c in cameras]), w, h)

    # ------------------------------------------------------------------ views of the data
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Cameras(self.c2w[index], self.intrinsics[index], self.width, self.height)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Cameras":
        return Cameras(self.c2w.to(device, dtype), self.intrinsics.to(device, dtype), self.width, self.height)

    @property
    def w2c(self) -> torch.Tensor:
        """(N, 4, 4) world-to-camera (OpenCV)."""
        return torch.linalg.inv(self.c2w)

    @property
    def centers(self) -> torch.Tensor:
        """(N, 3) camera centres in world units."""
        return self.c2w[:, :3, 3]

    @property
    def c2w_opengl(self) -> torch.Tensor:
        """(N, 4, 4) camera-to-world in OpenGL/Blender axes."""
        return conv.opencv_to_opengl(self.c2w)

    @property
    def projection(self) -> torch.Tensor:
        """(N, 3, 4) full projection ``K [R | t]`` (world -> homogeneous pixels)."""
        return self.intrinsics @ self.w2c[:, :3, :]

    # ------------------------------------------------------------------ geometry
    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points into every camera.

        Args:
            points: (P, 3) shared by all cameras, or (N, P, 3) per camera; world units.

        Returns:
            pixels (N, P, 2) as (u, v) and depth (N, P): z along each camera's optical axis (world units).
        """
        pts = points.to(self.c2w.dtype)
        if pts.ndim == 2:
            pts = pts.expand(len(self), *pts.shape)
        w2c = self.w2c
        cam = pts @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
        depth = cam[..., 2]
        uv = cam[..., :2] / depth[..., None]
        fx, fy = self.intrinsics[:, 0, 0, None], self.intrinsics[:, 1, 1, None]
        cx, cy = self.intrinsics[:, 0, 2, None], self.intrinsics[:, 1, 2, None]
        return torch.stack([uv[..., 0] * fx + cx, uv[..., 1] * fy + cy], -1), depth

    def pixel_rays(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through pixels.

        Args:
            pixels: (N, P, 2) (u, v) per camera.

        Returns:
            origins (N, P, 3) and directions (N, P, 3), world frame; directions have unit **z-depth** in the
            camera (not unit length), so ``origin + depth * direction`` is the point at that depth.
        """
        pix = pixels.to(self.c2w.dtype)
        fx, fy = self.intrinsics[:, 0, 0, None], self.intrinsics[:, 1, 1, None]
        cx, cy = self.intrinsics[:, 0, 2, None], self.intrinsics[:, 1, 2, None]
        d_cam = torch.stack([(pix[..., 0] - cx) / fx, (pix[..., 1] - cy) / fy, torch.ones_like(pix[..., 0])], -1)
        dirs = d_cam @ self.c2w[:, :3, :3].transpose(1, 2)
        return self.centers[:, None, :].expand_as(dirs), dirs

    def unproject(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`: (N, P, 2) pixels and (N, P) z-depths -> (N, P, 3) world points."""
        origins, dirs = self.pixel_rays(pixels)
        return origins + depth.to(dirs.dtype)[..., None] * dirs

    def spherical(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(polar_deg, azimuth_deg, radius) of each camera centre, each (N,)."""
        return conv.position_to_spherical(self.centers)
