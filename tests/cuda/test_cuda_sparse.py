"""The sparse 3D U-Net's back ends on the GPU against each other and against the CPU (``cuda`` marker).

Training mode (batch statistics, as the official inference), forward and gradients, TF32 off. A ball of sites in a
40^3 grid (~9k sites, every level of the U-Net populated) with random features and weights.
"""
from __future__ import annotations

import pytest
import torch

from data.device import strict_fp32
from reconstruction.sparse import SparseCostRegNet, SparseTensor

pytestmark = pytest.mark.cuda
BACKENDS = ("gather", "dense", "auto")


def ball(n: int = 40, radius: float = 13.0, channels: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.arange(n)
    xyz = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    xyz = xyz[((xyz.float() - n / 2) ** 2).sum(1) <= radius ** 2]
    coords = torch.cat([xyz, torch.zeros(len(xyz), 1, dtype=xyz.dtype)], 1).int()
    return coords, torch.randn(len(coords), channels, generator=torch.Generator().manual_seed(seed))


def forward_backward(net: SparseCostRegNet, coords, feats, device) -> tuple[torch.Tensor, ...]:
    net = net.to(device)
    net.zero_grad()
    x = feats.to(device).clone().requires_grad_(True)
    y = net(SparseTensor(coords.to(device), x))
    weight = torch.linspace(-1, 1, y.feats.numel(), device=device).view_as(y.feats)
    (y.feats * weight).sum().backward()
    return tuple(t.detach().cpu() for t in (y.feats, x.grad, net.conv5.net[0].kernel.grad, net.conv0.net[0].kernel.grad))


def test_backends_agree_on_the_device_and_with_the_cpu(cuda_device):
    torch.manual_seed(0)
    net = SparseCostRegNet(32, 16).train()
    coords, feats = ball()
    with strict_fp32():
        net.set_backend("gather")
        reference = forward_backward(net, coords, feats, torch.device("cpu"))
        for backend in BACKENDS:
            net.set_backend(backend)
            got = forward_backward(net, coords, feats, cuda_device)
            for name, a, b in zip(("output", "input grad", "conv5 kernel grad", "conv0 kernel grad"), got, reference):
                # batch statistics over ~9k sites: float32 summation order moves values by ~1e-6 of their scale
                tol = 1e-4 * float(b.abs().max())
                torch.testing.assert_close(a, b, atol=tol, rtol=1e-4, msg=lambda m: f"{backend} {name}: {m}")
