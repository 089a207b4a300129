"""Cameras of the official ``3drec`` loop, built on :mod:`data.conventions` / :class:`data.cameras.Cameras`.

* Every camera looks at the origin with world +z up (``data.conventions.look_at_c2w_opengl``, the official
  ``camera_pose(eye, -eye, up=z)``), square images of ``render_size`` px, the same field of view for every view
  (the input's included).
* Training eyes (official ``sample_spherical``): repeat {``v = uniform(-1, 1, 3)``; ``r = uniform(r0, r1, 1)``;
  ``v = v / |v| * r``} until ``z_min < v_z < z_max``: a *cube-normalised* direction (azimuth density peaks on the
  cube diagonals), radius uniform, elevation from about -16 deg to 90 deg. All draws come from one NumPy
  ``RandomState`` (legacy stream), so a seed reproduces the official sequence.
* Near eye: ``eye + d * n / |n|`` with ``n = randn(3)``.
"""
from __future__ import annotations

import numpy as np
import torch

from data import conventions as conv
from data.cameras import Cameras
from score_distillation.config import CameraConfig


def look_at_pose(eye) -> np.ndarray:
    """(4, 4) float64 OpenGL camera-to-world of a camera at ``eye`` looking at the origin, +z up."""
    return conv.look_at_c2w_opengl(np.asarray(eye, dtype=np.float64)).numpy()


def render_cameras(poses_opengl, size: int, fov_deg: float) -> Cameras:
    """Float64 :class:`Cameras` (OpenCV axes) for (N, 4, 4) or (4, 4) OpenGL c2w, square ``size`` px, FOV deg."""
    c2w = torch.as_tensor(np.asarray(poses_opengl, dtype=np.float64)).reshape(-1, 4, 4)
    k = conv.intrinsics_matrix(conv.fov_to_focal(fov_deg, size), size)
    return Cameras.from_opengl(c2w, k, size, size)


def train_eye(rng: np.random.RandomState, radius_range=(1.8, 2.2), z_range=(-0.5, 2.2)) -> tuple[np.ndarray, int]:
    """One official training eye and the number of rejection attempts it took."""
    attempts = 0
    while True:
        attempts += 1
        v = rng.uniform(-1, 1, 3)
        r = rng.uniform(radius_range[0], radius_range[1], 1)
        v = v / np.linalg.norm(v, axis=0) * r[0]
        if z_range[1] > v[2] > z_range[0]:
            return v, attempts


def train_eyes(rng: np.random.RandomState, n: int, radius_range=(1.8, 2.2), z_range=(-0.5, 2.2)):
    """``n`` training eyes drawn in order (the official loop draws all of them before the first step).

    Returns:
        eyes (n, 3) float64 and attempts (n,) int64.
    """
    out = [train_eye(rng, radius_range, z_range) for _ in range(n)]
    return np.stack([e for e, _ in out]).reshape(n, 3), np.array([a for _, a in out], dtype=np.int64)


def near_eye(rng: np.random.RandomState, eye: np.ndarray, distance: float = 0.05) -> np.ndarray:
    """Official ``sample_near_eye``: ``eye`` moved by ``distance`` in a random direction (one ``randn(3)``)."""
    v = rng.randn(3)
    v /= np.linalg.norm(v)
    v *= distance
    return eye + v


def spiral_poses(n: int, radius: float, rounds: int = 3) -> np.ndarray:
    """Official test-view spiral (``Poser.sample_test``): eye i (ratio = (i+1)/n) at height ``radius (1 - ratio)``,
    horizontal distance ``max(radius sin(ratio pi/2), 0.5)``, ``rounds`` turns; order reversed. (n, 4, 4)."""
    eyes = []
    for i in range(n):
        ratio = (i + 1) / n
        theta = ratio * (360 * rounds) / 180 * np.pi
        r = max(radius * np.sin(ratio * np.pi / 2), 0.5)
        eyes.append(np.array([r * np.cos(theta), r * np.sin(theta), radius * (1 - ratio)]))
    return np.stack([look_at_pose(e) for e in eyes[::-1]])


def rescaled_input_pose(pose_opengl, radius: float) -> np.ndarray:
    """The input pose with its centre moved along its ray to distance ``radius`` (float32, as ``sjc_3d``)."""
    pose = np.array(pose_opengl, dtype=np.float32)
    pose[:3, -1] = pose[:3, -1] / np.linalg.norm(pose[:3, -1]) * radius
    return pose


class CameraSampler:
    """The official camera stream: all training eyes first, then one near eye per step, from one RandomState.

    ``rng`` is shared with the caller (the official loop draws the noise level from the same stream).
    """

    def __init__(self, cfg: CameraConfig, rng: np.random.RandomState, n_steps: int):
        self.cfg, self.rng = cfg, rng
        self.eyes, self.attempts = train_eyes(rng, n_steps, tuple(cfg.radius_range), tuple(cfg.z_range))

    def pose(self, step: int) -> np.ndarray:
        return look_at_pose(self.eyes[step])

    def near_pose(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(near eye, its pose) for ``step``; consumes one ``randn(3)``."""
        eye = near_eye(self.rng, self.eyes[step], self.cfg.near_distance)
        return eye, look_at_pose(eye)

    def cameras(self, poses) -> Cameras:
        return render_cameras(poses, self.cfg.render_size, self.cfg.fov_deg)
