"""`SDFVolume`: a dense signed-distance grid over an axis-aligned box."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SDFVolume:
    """Signed distances sampled on a regular grid.

    Attributes:
        sdf: (R, R, R) float, indexed ``[x, y, z]``; **positive outside**, negative inside.
        bbox_min, bbox_max: (3,) box corners; sample ``i`` along an axis sits at
            ``bbox_min + i * (bbox_max - bbox_min) / (R - 1)`` (grid nodes include both corners).
        frame: name of the frame the box is expressed in (e.g. ``"normalised"`` or ``"world"``).
        evaluated: optional (R, R, R) bool. ``None``: every node holds the function's value (a dense grid).
            Otherwise (a narrow-band grid) only the marked nodes do; the others hold a value of the right sign
            only (not a distance), which is all that marching cubes reads there.
    """

    sdf: torch.Tensor
    bbox_min: torch.Tensor
    bbox_max: torch.Tensor
    frame: str = "normalised"
    evaluated: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.sdf.ndim != 3:
            raise ValueError(f"SDFVolume.sdf must be (R, R, R), got {tuple(self.sdf.shape)}")
        if self.evaluated is not None and self.evaluated.shape != self.sdf.shape:
            raise ValueError(f"SDFVolume.evaluated must match sdf's shape {tuple(self.sdf.shape)}, "
                             f"got {tuple(self.evaluated.shape)}")

    @property
    def resolution(self) -> tuple[int, int, int]:
        return tuple(self.sdf.shape)

    @property
    def spacing(self) -> torch.Tensor:
        """(3,) distance between neighbouring nodes per axis."""
        res = torch.tensor(self.sdf.shape, dtype=self.bbox_min.dtype, device=self.bbox_min.device)
        return (self.bbox_max - self.bbox_min) / (res - 1)

    def grid_points(self) -> torch.Tensor:
        """(R, R, R, 3) node coordinates, same ``[x, y, z]`` indexing as ``sdf``."""
        axes = [torch.linspace(float(lo), float(hi), n) for lo, hi, n in zip(self.bbox_min, self.bbox_max, self.sdf.shape)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)

    def index_to_point(self, index: torch.Tensor) -> torch.Tensor:
        """(..., 3) fractional grid indices -> (..., 3) coordinates in the volume's frame."""
        return self.bbox_min.to(index) + index * self.spacing.to(index)
