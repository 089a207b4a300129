"""Elevation on the GPU (``cuda`` marker): LoFTR (random weights) on the device against the CPU; the pose search
itself runs on the CPU by design, and its official parity (tests/elevation/test_elevation_parity.py, which depends
on torch's float32 sin/cos) is run on the GPU machine by scripts/cuda_check.py as well.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data.device import strict_fp32
from elevation.loftr import LoFTRMatcher, loftr_config
from elevation.matches import PAIRS

pytestmark = pytest.mark.cuda


def textured_views(size: int = 96, n: int = 4) -> list[np.ndarray]:
    """n uint8 grayscale views of one smooth random texture, shifted by a few pixels each."""
    gen = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.interpolate(torch.rand(1, 1, 24, 24, generator=gen), size=(size + 16, size + 16),
                                              mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)
    return [np.ascontiguousarray((texture[2 * i: 2 * i + size, 3 * i: 3 * i + size] * 255).byte().numpy())
            for i in range(n)]


def random_loftr(threshold: float = 1e-3):
    """kornia LoFTR with random weights (seed 0). Random features give coarse confidences of ~0.002-0.14, all below
    the official 0.2 threshold, so the threshold is lowered here to compare real matches (18-38 per pair)."""
    from kornia.feature import LoFTR

    cfg = loftr_config()
    cfg["match_coarse"]["thr"] = threshold
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LoFTR(pretrained=None, config=cfg).eval()


def test_loftr_features_and_matches_equal_the_cpu(cuda_device):
    cpu, dev = LoFTRMatcher(random_loftr(), "cpu"), LoFTRMatcher(random_loftr(), cuda_device)
    gray = textured_views()
    with strict_fp32(), torch.no_grad():
        a, b = cpu.model.extract_features(cpu._tensor(gray[0])), dev.model.extract_features(dev._tensor(gray[0]))
        for key in ("coarse", "fine"):
            scale = float(a[key].abs().max())
            torch.testing.assert_close(b[key].cpu(), a[key], atol=1e-4 * scale, rtol=1e-4, msg=lambda m: f"{key}: {m}")
        ours, theirs = dev.match_all_pairs(gray), cpu.match_all_pairs(gray)
    assert set(ours) == set(theirs) == set(PAIRS)
    assert sum(len(theirs[p][2]) for p in PAIRS) >= 30, "too few matches to compare"
    for pair in PAIRS:
        for mine, ref in ((ours[pair], theirs[pair]), (theirs[pair], ours[pair])):
            # every match of one side above 10x the threshold is a match of the other (same points to 1e-2 px)
            sure = mine[2] >= 1e-2
            if not sure.any():
                continue
            if len(ref[2]) == 0:
                pytest.fail(f"pair {pair}: {int(sure.sum())} confident matches on one side, none on the other")
            a_pts = np.concatenate([mine[0][sure], mine[1][sure]], 1)
            b_pts = np.concatenate([ref[0], ref[1]], 1)
            gap = np.abs(a_pts[:, None] - b_pts[None]).max(-1).min(1)
            assert gap.max() <= 1e-2, f"pair {pair}: {int((gap > 1e-2).sum())} of {len(gap)} confident matches differ"
