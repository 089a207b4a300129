"""SparseCostRegNet: official state-dict layout, site sets of the official run, back ends agree, gradients flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reconstruction.sparse import CoordinateIndex, SparseCostRegNet, SparseTensor, downsample_coords

PREFIX = "sdf_network_lod0.sparse_costreg_net."
BLOCKS = ["conv0", "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv9", "conv11"]
BLOCK_STRIDES = {"conv0": 1, "conv1": 2, "conv2": 2, "conv3": 4, "conv4": 4, "conv5": 8, "conv6": 8,
                 "conv7": 4, "conv9": 2, "conv11": 1}


def manifest_entries(path) -> dict[str, list[int]]:
    entries = {}
    for line in path.read_text().splitlines()[1:]:
        key, shape = line.split("\t")[:2]
        if key.startswith(PREFIX):
            entries[key[len(PREFIX):]] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    return entries


def test_state_dict_matches_the_official_manifest(shared):
    expected = manifest_entries(shared("docs/one2345-recon-state-dict.tsv"))
    assert len(expected) == 60
    got = {k: list(v.shape) for k, v in SparseCostRegNet(d_in=32, d_out=16).state_dict().items()}
    assert got == expected


def test_loads_the_fixture_weights_strictly(shared):
    state = torch.load(shared("fixtures/one2345_parity/recon/model_state.pth"), map_location="cpu")
    sub = {k[len("sparse_costreg_net."):]: v for k, v in state["sdf_network_lod0"].items()
           if k.startswith("sparse_costreg_net.")}
    net = SparseCostRegNet()
    net.load_state_dict(sub, strict=True)
    assert torch.equal(net.conv5.net[0].kernel, sub["conv5.net.0.kernel"])


def random_volume(n: int, fraction: float, channels: int, seed: int) -> SparseTensor:
    gen = torch.Generator().manual_seed(seed)
    occupied = torch.rand(n, n, n, generator=gen) < fraction
    xyz = occupied.nonzero()
    coords = torch.cat([xyz, torch.zeros(xyz.shape[0], 1, dtype=xyz.dtype)], dim=1).int()
    feats = torch.randn(coords.shape[0], channels, generator=gen)
    return SparseTensor(coords, feats)


def test_forward_keeps_input_sites_and_records_blocks():
    torch.manual_seed(0)
    net = SparseCostRegNet(d_in=8, d_out=4)
    x = random_volume(12, 0.5, 8, seed=1)
    blocks: dict[str, SparseTensor] = {}
    y = net(x, block_outputs=blocks)
    assert torch.equal(y.coords, x.coords) and y.stride == 1 and y.feats.shape == (x.num_points, 4)
    assert list(blocks) == ["conv0", "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv9", "conv11"]
    assert {k: v.stride for k, v in blocks.items()} == BLOCK_STRIDES
    # block outputs are post-ReLU and taken before the residual additions
    assert all(bool((v.feats >= 0).all()) for v in blocks.values())
    torch.testing.assert_close(y.feats, blocks["conv0"].feats + blocks["conv11"].feats)
    with pytest.raises(ValueError, match="input channels"):
        net(random_volume(6, 0.5, 3, seed=2))


def test_backends_agree_in_training_mode_with_gradients():
    torch.manual_seed(3)
    net = SparseCostRegNet(d_in=6, d_out=5)
    x = random_volume(14, 0.3, 6, seed=4)
    results = {}
    for backend in ["gather", "dense", "auto"]:
        net.set_backend(backend)
        net.zero_grad()
        feats = x.feats.clone().requires_grad_(True)
        y = net(SparseTensor(x.coords, feats))
        (y.feats * torch.linspace(-1, 1, y.feats.numel()).view_as(y.feats)).sum().backward()
        results[backend] = (y.feats.detach(), feats.grad, net.conv5.net[0].kernel.grad.clone())
    for backend in ["dense", "auto"]:
        for got, ref in zip(results[backend], results["gather"]):
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("polar", [90, 60])
def test_site_sets_equal_the_official_run(shared, polar):
    """Every U-Net level's site set, computed from the active voxels alone, equals torchsparse 1.4's."""
    data = np.load(shared(f"fixtures/one2345_parity/recon/recon_polar{polar:03d}.npz"))
    occupancy = np.unpackbits(data["occupancy_packbits"])[: 96**3].reshape(96, 96, 96).astype(bool)
    xyz = torch.from_numpy(np.argwhere(occupancy))
    coords = torch.cat([xyz, torch.zeros(xyz.shape[0], 1, dtype=xyz.dtype)], dim=1).int()
    assert coords.shape[0] == int(data["n_active_voxels"])
    levels = {1: coords}
    for stride in (2, 4, 8):
        levels[stride] = downsample_coords(levels[stride // 2], 2, 3, stride // 2)
    for block, stride in BLOCK_STRIDES.items():
        assert int(data[f"blk_{block}_stride"]) == stride
        assert levels[stride].shape[0] == int(data[f"blk_{block}_n"]), block
        sample = torch.from_numpy(data[f"blk_{block}_sample_coords_xyzb"].astype(np.int64))
        assert bool((CoordinateIndex(levels[stride]).query(sample) >= 0).all()), block
    for block, stride in [("conv1", 2), ("conv3", 4), ("conv5", 8)]:
        n = int(data[f"blk_{block}_occupancy_grid_size"])
        expected = np.unpackbits(data[f"blk_{block}_occupancy_packbits"])[: n**3].reshape(n, n, n).astype(bool)
        got = np.zeros((n, n, n), dtype=bool)
        cells = (levels[stride][:, :3] // stride).numpy()
        got[cells[:, 0], cells[:, 1], cells[:, 2]] = True
        assert np.array_equal(got, expected), block
    # the general (hash-key) method gives the same stride-2 sites as the grid method
    assert torch.equal(downsample_coords(coords, 2, 3, 1, method="keys"), levels[2])
