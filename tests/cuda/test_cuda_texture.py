"""Texture baking on the GPU against the CPU (``cuda`` marker): the tiny random-weight reconstruction, one mesh
(reconstructed on the CPU), the same atlas, texel colours from the colour network on each device, TF32 off."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data import layout
from data.cameras import Cameras
from data.config import load_config
from data.device import strict_fp32
from data.views import Views
from reconstruction import ReconstructionConfig, Reconstructor

pytest.importorskip("xatlas")
pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


def _views() -> tuple[Views, Cameras]:
    def resize(c: Cameras) -> Cameras:
        k = c.intrinsics.clone()
        k[:, :2] *= SIZE / 256
        return Cameras(c.c2w, k, SIZE, SIZE)

    sources = resize(layout.cameras_for(layout.all_nearby_views(75.0)))
    reference = resize(layout.cameras_for(layout.schedule(75.0)[:1]))
    images = torch.rand(len(sources), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    return Views(images, sources), reference


def test_texture_on_the_device_matches_the_cpu(cuda_device):
    import copy

    from reconstruction import texture_reconstruction

    cfg = load_config(ReconstructionConfig, ROOT / "configs/reconstruction/tiny.yaml", overrides=["device=cpu"])
    torch.manual_seed(0)
    cpu = Reconstructor.from_config(cfg)
    dev = Reconstructor(copy.deepcopy(cpu.model), cfg, device=cuda_device)  # .to() moves a module in place
    views, reference = _views()
    with strict_fp32():
        out = cpu.reconstruct(views, reference)
        ref, ref_stats = texture_reconstruction(cpu, views, reference, out, size=64)
        got, got_stats = texture_reconstruction(dev, views, reference, out, size=64)
    assert got_stats.texels == ref_stats.texels > 0
    np.testing.assert_array_equal(got.mesh.uv.numpy(), ref.mesh.uv.numpy())  # the atlas does not depend on the device
    diff = np.abs(got.mesh.texture.astype(int) - ref.mesh.texture.astype(int))
    assert diff.max() <= 1, f"texture differs by up to {diff.max()} / 255 between {cuda_device} and the CPU"
