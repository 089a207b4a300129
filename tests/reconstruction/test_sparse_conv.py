"""Sparse 3D conv: torchsparse 1.4 offsets / sites / maps, both back ends, against dense convs and brute force."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from reconstruction.sparse import (
    CoordinateIndex,
    SparseConv3d,
    SparseTensor,
    downsample_coords,
    kernel_offsets,
    sparse_conv3d,
)
from reconstruction.sparse.dense_backend import dense_kernel

BACKENDS = ["gather", "dense"]


def full_grid_coords(n: int, batches: int = 1) -> torch.Tensor:
    """All sites of an n^3 grid per batch, C order over (batch, x, y, z), as (M, 4) [x, y, z, b] int32."""
    b, x, y, z = torch.meshgrid(torch.arange(batches), *(torch.arange(n),) * 3, indexing="ij")
    return torch.stack([x, y, z, b], dim=-1).reshape(-1, 4).int()


def random_sparse_coords(n: int, fraction: float, batches: int, seed: int, shift: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coords = full_grid_coords(n, batches)
    keep = torch.rand(coords.shape[0], generator=gen) < fraction
    coords = coords[keep]
    coords[:, :3] += shift
    return coords


def as_dense(coords: torch.Tensor, feats: torch.Tensor, n: int, unit: int = 1) -> torch.Tensor:
    """(M, C) on sites -> (B, C, n, n, n) zero-filled grid indexed by coords / unit."""
    batches = int(coords[:, 3].max()) + 1
    vol = feats.new_zeros(batches, n, n, n, feats.shape[1])
    c = coords.long()
    vol[c[:, 3], c[:, 0] // unit, c[:, 1] // unit, c[:, 2] // unit] = feats
    return vol.permute(0, 4, 1, 2, 3)


def read_sites(volume: torch.Tensor, coords: torch.Tensor, unit: int = 1) -> torch.Tensor:
    c = coords.long()
    return volume.permute(0, 2, 3, 4, 1)[c[:, 3], c[:, 0] // unit, c[:, 1] // unit, c[:, 2] // unit]


# ---------------------------------------------------------------- brute-force reference (spec 8.3, literally)


def reference_downsample(coords, stride, kernel_size, tensor_stride):
    sample = stride * tensor_stride
    low = [min(int(c[a]) for c in coords) for a in range(3)]
    sites = set()
    for c in coords.tolist():
        for o in kernel_offsets(kernel_size, tensor_stride).tolist():
            p = [c[a] + o[a] for a in range(3)]
            if all(p[a] % sample == 0 and p[a] >= low[a] for a in range(3)):
                sites.add((p[0], p[1], p[2], c[3]))
    return sorted(sites, key=lambda s: (s[3], s[0], s[1], s[2]))


def reference_conv(in_coords, feats, out_coords, kernel, tensor_stride, kernel_size, transposed):
    """out[p] = sum_k in[p + s o_k] W[k] (or the transposed relation) with dict lookups."""
    lookup = {tuple(c): i for i, c in enumerate(in_coords.tolist())}
    offsets = kernel_offsets(kernel_size, tensor_stride).tolist()
    out = feats.new_zeros(out_coords.shape[0], kernel.shape[2])
    for j, p in enumerate(out_coords.tolist()):
        for k, o in enumerate(offsets):
            sign = -1 if transposed else 1
            q = (p[0] + sign * o[0], p[1] + sign * o[1], p[2] + sign * o[2], p[3])
            if q in lookup:
                out[j] += feats[lookup[q]] @ kernel[k]
    return out


# ---------------------------------------------------------------- unit tests


def test_kernel_offsets_follow_torchsparse_order():
    offsets = kernel_offsets(3).tolist()
    assert len(offsets) == 27
    for dx, dy, dz in itertools.product((-1, 0, 1), repeat=3):
        assert offsets[9 * (dz + 1) + 3 * (dy + 1) + (dx + 1)] == [dx, dy, dz]
    assert kernel_offsets(3, tensor_stride=4)[0].tolist() == [-4, -4, -4]
    # even kernels: x outermost, z fastest, offsets start at 0
    assert kernel_offsets(2).tolist()[:3] == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert kernel_offsets(1).tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("dense", [True, False])
def test_coordinate_index_finds_present_and_rejects_absent(dense):
    coords = random_sparse_coords(7, 0.4, batches=2, seed=0, shift=-3)
    index = CoordinateIndex(coords, dense=dense)
    assert index.dense is dense
    assert torch.equal(index.query(coords), torch.arange(coords.shape[0]))
    present = {tuple(c) for c in coords.tolist()}
    queries = torch.cartesian_prod(*(torch.arange(-5, 6),) * 3, torch.arange(-1, 3)).int()
    expected = torch.tensor([1 if tuple(q) in present else 0 for q in queries.tolist()], dtype=torch.bool)
    rows = index.query(queries)
    assert torch.equal(rows >= 0, expected)
    assert torch.equal(coords[rows[expected]], queries[expected])


def test_sparse_tensor_rejects_bad_input():
    with pytest.raises(ValueError, match="duplicate"):
        SparseTensor(torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0]]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        SparseTensor(torch.zeros(3, 3, dtype=torch.int32), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="feats"):
        SparseTensor(torch.zeros(3, 4, dtype=torch.int32), torch.zeros(2, 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_submanifold_conv_equals_dense_conv3d_forward_and_gradients(backend):
    torch.manual_seed(0)
    n, c_in, c_out = 6, 3, 4
    coords = full_grid_coords(n, batches=2)
    feats = torch.randn(coords.shape[0], c_in, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(27, c_in, c_out, dtype=torch.float64, requires_grad=True)
    out = sparse_conv3d(SparseTensor(coords, feats), kernel, 3, backend=backend)
    assert torch.equal(out.coords, coords) and out.stride == 1

    # Dense reference: torch conv3d with padding 1; the torchsparse kernel index is 9 dz + 3 dy + dx.
    feats_d = feats.detach().clone().requires_grad_(True)
    kernel_d = kernel.detach().clone().requires_grad_(True)
    weight = kernel_d.view(3, 3, 3, c_in, c_out).permute(4, 3, 2, 1, 0)
    dense = F.conv3d(as_dense(coords, feats_d, n), weight, padding=1)
    expected = read_sites(dense, coords)
    torch.testing.assert_close(out.feats, expected, rtol=1e-10, atol=1e-10)

    grad = torch.randn_like(expected)
    (out.feats * grad).sum().backward()
    (expected * grad).sum().backward()
    torch.testing.assert_close(feats.grad, feats_d.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(kernel.grad, kernel_d.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_and_transposed_convs_equal_dense_equivalents(backend):
    torch.manual_seed(1)
    n, c_in, c_mid = 7, 2, 3
    coords = full_grid_coords(n)
    feats = torch.randn(coords.shape[0], c_in, dtype=torch.float64)
    down_kernel = torch.randn(27, c_in, c_mid, dtype=torch.float64)
    up_kernel = torch.randn(27, c_mid, c_in, dtype=torch.float64)
    x = SparseTensor(coords, feats)
    down = sparse_conv3d(x, down_kernel, 3, stride=2, backend=backend)

    # torchsparse puts an output on every even coordinate reached by the kernel, with no upper bound:
    # a 7-wide grid (0..6) gives 0, 2, 4, 6 and a 6-wide one would reach 6 as well.
    assert down.stride == 2
    expected_sites = full_grid_coords(4)
    expected_sites[:, :3] *= 2
    assert torch.equal(down.coords.long(), expected_sites.long())
    padded = F.pad(as_dense(coords, feats, n), (1, 2) * 3)  # zeros beyond the grid
    dense_down = F.conv3d(padded, dense_kernel(down_kernel, 3, False), stride=2)
    torch.testing.assert_close(down.feats, read_sites(dense_down, down.coords, unit=2), rtol=1e-10, atol=1e-10)

    up = sparse_conv3d(down, up_kernel, 3, stride=2, transposed=True, backend=backend)
    assert up.stride == 1 and torch.equal(up.coords, coords)
    dense_up = F.conv_transpose3d(
        as_dense(down.coords, down.feats, 4, unit=2), dense_kernel(up_kernel, 3, True), stride=2, padding=1
    )
    torch.testing.assert_close(up.feats, read_sites(dense_up, coords), rtol=1e-10, atol=1e-10)


def test_strided_sites_of_an_even_grid_exceed_it():
    coords = full_grid_coords(6)
    sites = downsample_coords(coords, 2, 3, 1)
    assert int(sites[:, :3].max()) == 6  # 5 + 1 reaches 6: no upper bound, as torchsparse 1.4


@pytest.mark.parametrize("method", ["grid", "keys"])
@pytest.mark.parametrize("tensor_stride", [1, 2])
def test_downsample_matches_brute_force(method, tensor_stride):
    coords = random_sparse_coords(9, 0.15, batches=2, seed=3, shift=1)
    if tensor_stride == 2:
        coords = downsample_coords(coords, 2, 3, 1)
    expected = reference_downsample(coords, 2, 3, tensor_stride)
    got = downsample_coords(coords, 2, 3, tensor_stride, method=method)
    assert [tuple(c) for c in got.tolist()] == expected


@pytest.mark.parametrize("backend", ["gather", "dense", "auto"])
def test_sparse_unet_path_matches_brute_force(backend):
    """Random multi-batch sparse input through stride 1, 2, 2, then two transposed convs back."""
    torch.manual_seed(2)
    coords = random_sparse_coords(10, 0.2, batches=2, seed=4, shift=2)
    feats = torch.randn(coords.shape[0], 3, dtype=torch.float64)
    kernels = [torch.randn(27, 3, 3, dtype=torch.float64) for _ in range(5)]
    x0 = sparse_conv3d(SparseTensor(coords, feats), kernels[0], 3, backend=backend)
    x1 = sparse_conv3d(x0, kernels[1], 3, stride=2, backend=backend)
    x2 = sparse_conv3d(x1, kernels[2], 3, stride=2, backend=backend)
    y1 = sparse_conv3d(x2, kernels[3], 3, stride=2, transposed=True, backend=backend)
    y0 = sparse_conv3d(y1, kernels[4], 3, stride=2, transposed=True, backend=backend)

    ref0 = reference_conv(coords, feats, coords, kernels[0], 1, 3, False)
    sites1 = torch.tensor(reference_downsample(coords, 2, 3, 1))
    ref1 = reference_conv(coords, ref0, sites1, kernels[1], 1, 3, False)
    sites2 = torch.tensor(reference_downsample(sites1, 2, 3, 2))
    ref2 = reference_conv(sites1, ref1, sites2, kernels[2], 2, 3, False)
    ref_up1 = reference_conv(sites2, ref2, sites1, kernels[3], 2, 3, True)
    ref_up0 = reference_conv(sites1, ref_up1, coords, kernels[4], 1, 3, True)
    assert torch.equal(x1.coords.long(), sites1) and torch.equal(x2.coords.long(), sites2)
    assert (x1.stride, x2.stride, y1.stride, y0.stride) == (2, 4, 2, 1)
    for got, ref in [(x0, ref0), (x1, ref1), (x2, ref2), (y1, ref_up1), (y0, ref_up0)]:
        torch.testing.assert_close(got.feats, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("transposed", [False, True])
def test_gather_backend_gradcheck(transposed):
    torch.manual_seed(5)
    coords = random_sparse_coords(4, 0.5, batches=1, seed=6)
    feats = torch.randn(coords.shape[0], 2, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(27, 2, 3, dtype=torch.float64, requires_grad=True)
    if transposed:
        x = SparseTensor(coords, torch.zeros(coords.shape[0], 1, dtype=torch.float64))
        coarse = sparse_conv3d(x, torch.zeros(27, 1, 2, dtype=torch.float64), 3, stride=2, backend="gather")
        feats = torch.randn(coarse.num_points, 2, dtype=torch.float64, requires_grad=True)

        def fn(f, w):
            return sparse_conv3d(coarse.replace_feats(f), w, 3, stride=2, transposed=True, backend="gather").feats

    else:
        fine = SparseTensor(coords, feats.detach())  # one tensor: its cached maps serve every gradcheck call

        def fn(f, w):
            return sparse_conv3d(fine.replace_feats(f), w, 3, stride=2, backend="gather").feats

    assert torch.autograd.gradcheck(fn, (feats, kernel), fast_mode=True)


def test_small_gather_chunks_give_the_same_result():
    torch.manual_seed(7)
    coords = random_sparse_coords(8, 0.3, batches=1, seed=8)
    feats = torch.randn(coords.shape[0], 4)
    conv = SparseConv3d(4, 5, backend="gather")
    whole = conv(SparseTensor(coords, feats)).feats
    conv.gather_budget_bytes = 1  # one output row per chunk
    torch.testing.assert_close(conv(SparseTensor(coords, feats)).feats, whole, rtol=1e-6, atol=1e-6)


def test_conv_errors_name_the_problem():
    x = SparseTensor(full_grid_coords(3), torch.zeros(27, 2))
    with pytest.raises(ValueError, match="kernel shape"):
        sparse_conv3d(x, torch.zeros(27, 3, 4), 3)
    x2 = SparseTensor(full_grid_coords(2) * 2, torch.zeros(8, 2), stride=2)
    with pytest.raises(ValueError, match="strided\\s+conv"):
        sparse_conv3d(x2, torch.zeros(27, 2, 2), 3, stride=2, transposed=True)
    with pytest.raises(ValueError, match="backend"):
        sparse_conv3d(x, torch.zeros(27, 2, 2), 3, backend="cuda")


def test_kernel_layout_and_init_follow_torchsparse():
    conv = SparseConv3d(8, 4, kernel_size=3, stride=2)
    assert conv.kernel.shape == (27, 8, 4)
    assert float(conv.kernel.detach().abs().max()) <= 1 / (27 * 8) ** 0.5
    transposed = SparseConv3d(8, 4, kernel_size=3, stride=2, transposed=True)
    assert float(transposed.kernel.detach().abs().max()) <= 1 / (27 * 4) ** 0.5
    assert SparseConv3d(8, 4, kernel_size=1).kernel.shape == (8, 4)


def test_neighbour_table_direct_and_sorted_paths_agree_with_brute_force():
    from reconstruction.sparse.kernel_map import neighbour_table

    dense_sites = random_sparse_coords(6, 0.5, batches=2, seed=9)
    far = dense_sites.clone()
    far[: far.shape[0] // 2, :3] *= 100_000  # a huge, nearly empty box: the sorted-key path
    offsets = kernel_offsets(3)
    for targets in (dense_sites, far):
        queries = torch.cat([targets, targets[:5] + torch.tensor([1, 0, 0, 0], dtype=targets.dtype)])
        table = neighbour_table(queries, targets, offsets)
        lookup = {tuple(c): i for i, c in enumerate(targets.tolist())}
        expected = [
            [lookup.get((q[0] + o[0], q[1] + o[1], q[2] + o[2], q[3]), targets.shape[0]) for o in offsets.tolist()]
            for q in queries.tolist()
        ]
        assert table.tolist() == expected


def test_to_dense_scatters_sites_by_stride():
    coords = torch.tensor([[0, 2, 4, 0], [6, 0, 2, 1], [2, 2, 2, 0]], dtype=torch.int32)
    feats = torch.tensor([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]])
    volume, mask = SparseTensor(coords, feats, stride=2).dense((4, 4, 4), batch_size=2)
    assert volume.shape == (2, 2, 4, 4, 4) and mask.shape == (2, 1, 4, 4, 4)
    assert volume[0, :, 0, 1, 2].tolist() == [1.0, -1.0] and volume[1, :, 3, 0, 1].tolist() == [2.0, -2.0]
    assert volume[0, :, 1, 1, 1].tolist() == [3.0, -3.0]
    assert float(mask.sum()) == 3 and float(volume.abs().sum()) == 12


@pytest.mark.parametrize("backend", BACKENDS)
def test_stride_one_transposed_conv_uses_the_mirrored_offsets(backend):
    torch.manual_seed(10)
    coords = random_sparse_coords(7, 0.4, batches=1, seed=11)
    feats = torch.randn(coords.shape[0], 2, dtype=torch.float64)
    kernel = torch.randn(27, 2, 3, dtype=torch.float64)
    out = sparse_conv3d(SparseTensor(coords, feats), kernel, 3, stride=1, transposed=True, backend=backend)
    expected = reference_conv(coords, feats, coords, kernel, 1, 3, transposed=True)
    assert torch.equal(out.coords, coords)
    torch.testing.assert_close(out.feats, expected, rtol=1e-10, atol=1e-10)
