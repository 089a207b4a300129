"""The 2D feature pyramid (checkpoint key ``pyramid_feature_network``; spec section 8.1).

Three levels (8 ch at H, 16 ch at H/2, 32 ch at H/4) with an FPN top-down path, then the trainer's fusion into a
56-channel map at full resolution. Normalisation layers are InPlaceABN-compatible and use batch statistics over
all views at once, so the pyramid must run on the whole view batch (never chunked).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.norm import InPlaceABNCompat

#: Channels of the fused map: 32 (coarse) + 16 (middle) + 8 (fine).
FUSED_CHANNELS = 56


class ConvABN(nn.Module):
    """Conv2d (no bias) + InPlaceABN-compatible norm with leaky ReLU 0.01. Keys: ``conv.*``, ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = InPlaceABNCompat(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class FeatureNet(nn.Module):
    """FPN feature pyramid of the source images."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Sequential(ConvABN(3, 8), ConvABN(8, 8))
        self.conv1 = nn.Sequential(ConvABN(8, 16, 5, 2, 2), ConvABN(16, 16), ConvABN(16, 16))
        self.conv2 = nn.Sequential(ConvABN(16, 32, 5, 2, 2), ConvABN(32, 32), ConvABN(32, 32))
        self.toplayer = nn.Conv2d(32, 32, 1)
        self.lat1 = nn.Conv2d(16, 32, 1)
        self.lat0 = nn.Conv2d(8, 32, 1)
        self.smooth1 = nn.Conv2d(32, 16, 3, padding=1)
        self.smooth0 = nn.Conv2d(32, 8, 3, padding=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images: (V, 3, H, W) RGB in [0, 1] (H, W divisible by 4).

        Returns [coarse (V, 32, H/4, W/4), middle (V, 16, H/2, W/2), fine (V, 8, H, W)].
        """
        c0 = self.conv0(images)
        c1 = self.conv1(c0)
        c2 = self.conv2(c1)
        f2 = self.toplayer(c2)
        f1 = _upsample(f2, 2) + self.lat1(c1)
        f0 = _upsample(f1, 2) + self.lat0(c0)
        return [f2, self.smooth1(f1), self.smooth0(f0)]

    def fused(self, images: torch.Tensor) -> torch.Tensor:
        """(V, 3, H, W) -> (V, 56, H, W): [4x-upsampled coarse, 2x-upsampled middle, fine] (align_corners)."""
        coarse, middle, fine = self(images)
        return torch.cat([_upsample(coarse, 4), _upsample(middle, 2), fine], dim=1)
