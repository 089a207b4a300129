"""Parity with the official reconstruction network on the golden fixtures (both polar angles).

One full forward per polar (96^3 volume, 32 views at 256 px) runs in a module-scoped fixture with the fixture's
state dict and the exact tensors the official loader produced; every test compares one recorded intermediate.
Tolerance: |ours - official| <= 1e-4 + 1e-4 |official| (FP32 on CPU, different summation orders) up to the cost
volume; everything computed after the sparse U-Net's batch statistics also gets :data:`STD_TOL` x the official
channel's standard deviation (see there).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import CUDA_TESTS_DEVICE, require_shared
from data.device import strict_fp32
from reconstruction.checkpoint import load_official_checkpoint
from reconstruction.config import ReconstructionConfig
from reconstruction.reconstructor import Reconstructor, SceneInputs

pytestmark = pytest.mark.slow
RECON = "fixtures/one2345_parity/recon"
ATOL = RTOL = 1e-4
#: The sparse U-Net's blocks end in BatchNorm with batch statistics over all sites of a level (up to 778,820 voxels)
#: whose pre-norm sums sit far from their mean (channel std down to 0.13 at values up to ~30). float32 rounding of the
#: statistics therefore moves every later value by a fraction of its channel's spread, whichever order the sums run
#: in -- the official run's own order included. Measured against the fixture (both polars): with two threads (the
#: summation order of the machine that wrote it) <= 0.01 % of the std; with one thread, and with the statistics in
#: float64 (closest to exact), up to 0.59 % of the std, i.e. up to 20x the plain tolerance (SDF gradients). So
#: from the U-Net on: 1e-4 + 1e-4 |official| + STD_TOL x std of the official channel. A wrong kernel offset, stride,
#: site set or sign moves them by O(1) std.
STD_TOL = 1e-2
SPARSE_BLOCKS = ("conv0", "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv9", "conv11")


def assert_close(ours, ref, atol=ATOL, rtol=RTOL, what="", std_tol=0.0):
    """|ours - ref| <= atol + rtol |ref| + std_tol x std of ref over its first axis (per channel)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    if std_tol:
        atol = atol + std_tol * ref.reshape(ref.shape[0], -1).std(axis=0).reshape((1,) + ref.shape[1:])
    err = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    worst = np.unravel_index(np.argmax(err), err.shape) if err.size else None
    assert err.size == 0 or err.max() <= 0, (
        f"{what}: max excess {err.max():.3g} at {worst}: ours {ours[worst]:.7g} vs official {ref[worst]:.7g}"
    )


def unpack_occupancy(packed: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(packed)[: n ** 3].reshape(n, n, n).astype(bool)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


@pytest.fixture(scope="module", params=[
    pytest.param((90, "cpu"), id="polar090"), pytest.param((60, "cpu"), id="polar060"),
    # the same comparisons on the GPU, TF32 off (scripts/cuda_check.py; skip without CUDA)
    pytest.param((90, "cuda"), id="cuda-polar090", marks=pytest.mark.cuda),
    pytest.param((60, "cuda"), id="cuda-polar060", marks=pytest.mark.cuda),
])
def run(request):
    """Our outputs for everything the fixture records (small arrays only; big tensors are freed)."""
    polar, device = request.param
    with strict_fp32():
        return _run(polar, CUDA_TESTS_DEVICE if device == "cuda" else device)


def _run(polar: int, device: str) -> dict:
    folder = require_shared(RECON)
    ref = dict(np.load(folder / f"recon_polar{polar:03d}.npz"))
    model = load_official_checkpoint(folder / "model_state.pth")
    rec = Reconstructor(model, ReconstructionConfig(device=device))
    images = torch.from_numpy(ref["src_images_u8"]).permute(0, 3, 1, 2).float() / 255
    inputs = SceneInputs(images, torch.from_numpy(ref["in_w2cs"]), torch.from_numpy(ref["in_intrinsics"]),
                         torch.from_numpy(ref["in_affine_mats"]))
    enc = rec.encode(inputs, keep_intermediates=True)
    out = {"ref": ref, "n_active": enc.volume.coords.shape[0]}
    vyx = torch.from_numpy(ref["fmap_sample_vyx"].astype(np.int64))
    with torch.no_grad():
        compressed = rec.model.sdf_network_lod0.compress_layer(enc.fused_maps)
    out["fused56"] = _numpy(enc.fused_maps[vyx[:, 0], :, vyx[:, 1], vyx[:, 2]])
    out["fused_mean"] = _numpy(enc.fused_maps.mean(dim=(0, 2, 3)))
    out["fused_std"] = _numpy(enc.fused_maps.transpose(0, 1).reshape(56, -1).std(dim=1))
    out["compressed16"] = _numpy(compressed[vyx[:, 0], :, vyx[:, 1], vyx[:, 2]])
    del compressed
    occ = np.zeros((96,) * 3, bool)
    c = _numpy(enc.volume.coords)
    occ[c[:, 0], c[:, 1], c[:, 2]] = True
    out["occupancy"] = occ
    index = {tuple(r): i for i, r in enumerate(c.tolist())}
    vox = ref["vox_sample_coords_xyzb"].astype(np.int64)
    rows = torch.tensor([index[tuple(r)] for r in vox[:, :3].tolist()])
    out["cost_rows"] = _numpy(enc.volume.cost[rows])
    out["vox_latent"] = _numpy(enc.volume.latent[:, vox[:, 0], vox[:, 1], vox[:, 2]].t())
    blocks = {}
    for name in SPARSE_BLOCKS:
        st = enc.volume.blocks[name]
        coords = _numpy(st.coords.long())
        keyed = {tuple(r): i for i, r in enumerate(coords.tolist())}
        sample = ref[f"blk_{name}_sample_coords_xyzb"].astype(np.int64)
        idx = [keyed.get(tuple(r), -1) for r in sample.tolist()]
        blocks[name] = {"stride": st.stride, "coords": coords, "missing": sum(i < 0 for i in idx),
                        "feats": _numpy(st.feats[torch.tensor([max(i, 0) for i in idx])])}
    out["blocks"] = blocks
    enc.volume.blocks = None
    enc.volume.cost = None

    points = torch.from_numpy(ref["query_points"])
    q = rec.query(enc, points, with_gradient=True)
    out.update(sdf=_numpy(q.sdf), latent=_numpy(q.latent), grad=_numpy(q.gradient), features=_numpy(q.features))
    out["rgb"] = _numpy(rec.colours(enc, points))
    sub = torch.from_numpy(ref["query_sub_idx"])
    official_normals = F.normalize(torch.from_numpy(ref["query_sdf_grad"]), dim=-1, eps=1e-6)
    blend = rec.blending_inputs(enc, points.to(rec.device), official_normals.to(rec.device))  # not moved there
    out["view_mask"] = _numpy(blend.mask.t())
    out["ray_diff_sub"] = _numpy(blend.ray_diff[:, sub].transpose(0, 1))
    del blend
    out["grid64"] = _numpy(rec.sdf_volume(enc, 64, method="dense").sdf)
    verts = torch.from_numpy(ref["r64_mc_vertices_normalized"][::3].copy())
    out["r64_rgb"] = _numpy(rec.colours(enc, verts))
    del enc
    return out


def test_feature_maps(run):
    ref = run["ref"]
    assert_close(run["fused56"], ref["fmap_sample_fused56"], what="fused 56-channel map")
    assert_close(run["fused_mean"], ref["fmap_fused_channel_mean"], what="fused channel mean")
    assert_close(run["fused_std"], ref["fmap_fused_channel_std"], what="fused channel std")
    assert_close(run["compressed16"], ref["fmap_sample_compressed16"], what="compress layer")


def test_active_voxels(run):
    ref = run["ref"]
    assert run["n_active"] == int(ref["n_active_voxels"])
    official = unpack_occupancy(ref["occupancy_packbits"], 96)
    assert np.array_equal(run["occupancy"], official), f"{(run['occupancy'] != official).sum()} voxels differ"


def test_cost_volume_at_recorded_voxels(run):
    assert_close(run["cost_rows"], run["ref"]["vox_sample_cost_in32"], what="cost volume (var || mean)")


@pytest.mark.parametrize("block", SPARSE_BLOCKS)
def test_sparse_unet_levels(run, block):
    ref, ours = run["ref"], run["blocks"][block]
    assert ours["stride"] == int(ref[f"blk_{block}_stride"])
    assert ours["coords"].shape[0] == int(ref[f"blk_{block}_n"])
    assert ours["missing"] == 0, f"{ours['missing']} recorded sites of {block} are not in our site set"
    if f"blk_{block}_occupancy_packbits" in ref:
        n = int(ref[f"blk_{block}_occupancy_grid_size"])
        occ = np.zeros((n,) * 3, bool)
        c = ours["coords"][:, :3] // ours["stride"]
        occ[c[:, 0], c[:, 1], c[:, 2]] = True
        assert np.array_equal(occ, unpack_occupancy(ref[f"blk_{block}_occupancy_packbits"], n))
    assert_close(ours["feats"], ref[f"blk_{block}_sample_feats"], what=f"{block} features", std_tol=STD_TOL)

def test_latent_volume_at_recorded_voxels(run):
    assert_close(run["vox_latent"], run["ref"]["vox_sample_latent_out16"], what="U-Net output latent",
                 std_tol=STD_TOL)


def test_sdf_latent_gradient_at_query_points(run):
    ref = run["ref"]
    assert_close(run["sdf"], ref["query_sdf"], what="SDF", std_tol=STD_TOL)
    assert_close(run["latent"], ref["query_latent16"], what="sampled latent", std_tol=STD_TOL)
    assert_close(run["grad"], ref["query_sdf_grad"], what="SDF gradient", std_tol=STD_TOL)
    assert_close(run["features"][ref["query_sub_idx"]], ref["query_sub_sdf_feature127"], what="SDF features",
                 std_tol=STD_TOL)


def test_blending_inputs(run):
    ref = run["ref"]
    assert np.array_equal(run["view_mask"], ref["query_view_mask"])
    # built from the official normals so that the check isolates the projector (normals: gradient test)
    assert_close(run["ray_diff_sub"], ref["query_sub_ray_diff"], what="ray_diff")


def test_colours(run):
    ref = run["ref"]
    assert_close(run["rgb"], ref["query_rgb"], what="blended colours at query points", std_tol=STD_TOL)
    assert_close(run["r64_rgb"], ref["r64_vertex_rgb_float"][::3], what="mesh vertex colours (64^3 export)",
                 std_tol=STD_TOL)


def test_sdf_grid_64(run):
    grid, official = -run["grid64"].reshape(-1), run["ref"]["r64_sdf_field_neg"].reshape(-1)
    assert_close(grid, official, what="64^3 marching-cubes field", std_tol=STD_TOL)

