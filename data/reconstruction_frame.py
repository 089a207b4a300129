"""The reconstruction's reference and normalised frames (official ``One2345_eval_new_data.py``).

* **Reference frame**: the OpenCV camera frame of the reference view (first-stage view ``0`` at inference;
  a random ground-truth view in training). ``x_ref = inverse(c2w_ref) @ x_world``.
* **Normalised frame**: ``x_norm = (x_ref - centre) / r``, where the box (centre, r) is the axis-aligned
  bounding box, in the reference frame, of the near/far frustum corners of the reference view and every source
  view, enlarged by :data:`BOX_FACTOR`. The 96^3 cost volume spans [-1, 1]^3 of this frame. ``scale_mat`` =
  ``[[r,0,0,cx],[0,r,0,cy],[0,0,r,cz],[0,0,0,1]]`` maps normalised -> reference coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from data import conventions as conv
from data.cameras import Cameras

#: Enlargement of the frustum-union box (official ``get_boundingbox`` factor).
BOX_FACTOR = 1.1


@dataclass(frozen=True)
class ReconstructionFrame:
    """Maps between the world, the reference camera frame and the normalised [-1, 1]^3 frame.

    Attributes:
        ref_c2w: (4, 4) OpenCV camera-to-world of the reference view (reference frame -> world).
        scale_mat: (4, 4) normalised -> reference frame (uniform scale r, then translation by the centre).
    """

    ref_c2w: torch.Tensor
    scale_mat: torch.Tensor

    @classmethod
    def from_cameras(
        cls, reference: Cameras, sources: Cameras, near_far=conv.RIG_NEAR_FAR, box_factor: float = BOX_FACTOR
    ) -> "ReconstructionFrame":
        """Official normalisation from a (1-camera) reference and N source cameras (world frame)."""
        ref_c2w = reference.c2w[0].double()
        all_cams = Cameras.cat([reference.to(dtype=torch.float64), sources.to(dtype=torch.float64)])
        w, h = all_cams.width, all_cams.height
        corners = torch.tensor([[0, 0], [0, h], [w, 0], [w, h]], dtype=torch.float64)
        pix = corners.expand(len(all_cams), 4, 2)
        pts = torch.cat([all_cams.unproject(pix, torch.full((len(all_cams), 4), float(d), dtype=torch.float64))
                         for d in near_far], 1).reshape(-1, 3)
        pts_ref = (pts - ref_c2w[:3, 3]) @ ref_c2w[:3, :3]
        lo, hi = pts_ref.min(0).values, pts_ref.max(0).values
        centre = (lo + hi) / 2
        r = float((hi - lo).max()) / 2 * box_factor
        scale_mat = torch.eye(4, dtype=torch.float64)
        scale_mat[:3, :3] *= r
        scale_mat[:3, 3] = centre
        return cls(ref_c2w, scale_mat)

    @property
    def radius(self) -> float:
        """r: world units per normalised unit."""
        return float(self.scale_mat[0, 0])

    @property
    def normalised_to_world(self) -> torch.Tensor:
        """(4, 4) homogeneous map normalised frame -> world."""
        return self.ref_c2w @ self.scale_mat

    def points_to_world(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) normalised points -> (P, 3) world points."""
        m = self.normalised_to_world.to(points)
        return points @ m[:3, :3].T + m[:3, 3]

    def points_to_normalised(self, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) world points -> (P, 3) normalised points."""
        m = torch.linalg.inv(self.normalised_to_world).to(points)
        return points @ m[:3, :3].T + m[:3, 3]

    def cameras_to_normalised(self, cameras: Cameras) -> Cameras:
        """Express world cameras in the normalised frame (rotation kept, centres mapped, K unchanged)."""
        m = self.normalised_to_world.to(cameras.c2w)
        m_inv = torch.linalg.inv(m)
        c2w = m_inv @ cameras.c2w
        scale = 1.0 / self.radius
        c2w[:, :3, :3] = c2w[:, :3, :3] / scale  # undo the uniform scale so rotations stay orthonormal
        return Cameras(c2w, cameras.intrinsics.clone(), cameras.width, cameras.height)


def near_far(cameras_normalised: Cameras, min_distance: float | None = None) -> torch.Tensor:
    """Per-view near/far in the normalised frame: ``0.95 (d - 1)``, ``1.05 (d + 1)``, d = ||centre||.

    ``min_distance`` clips ``d - 1`` from below (training uses 0.02; inference does not clip, so near can be
    negative because the cameras sit inside the unit box). Returns (N, 2).
    """
    d = cameras_normalised.centers.norm(dim=-1)
    d_minus = d - 1 if min_distance is None else (d - 1).clamp_min(min_distance)
    return torch.stack([0.95 * d_minus, 1.05 * (d + 1)], -1)


def affine_mats(cameras: Cameras) -> torch.Tensor:
    """(N, 4, 4) ``K @ w2c[:3, :4]`` padded with [0, 0, 0, 1]: the cost volume's world->pixel projection."""
    out = torch.eye(4, dtype=cameras.c2w.dtype, device=cameras.c2w.device).repeat(len(cameras), 1, 1)
    out[:, :3, :] = cameras.projection
    return out
