"""Unit checks of the building blocks against their definitions (no fixtures needed)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reconstruction.cost_volume import active_voxels, project_points, variance_mean_cost, voxel_grid
from reconstruction.norm import InPlaceABNCompat
from reconstruction.projector import ray_differences, sample_views
from reconstruction.rendering_network import BlendingNetwork
from reconstruction.sdf_network import LatentSDFMLP, PositionalEncoding, WeightNormLinear
from reconstruction.volume_sampling import sample_latent, sample_latent_fast, sample_volume_grid


def test_inplace_abn_uses_abs_gamma_batch_stats_and_leaky_relu():
    torch.manual_seed(0)
    norm = InPlaceABNCompat(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.7, 0.9, -1.2]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.0, 0.3]))
        norm.running_mean.fill_(5.0)  # must be ignored in training mode
    x = torch.randn(3, 4, 5, 6) * 2 + 1
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    y = (x - mean) * (norm.weight.abs() + 1e-5).view(1, -1, 1, 1) / torch.sqrt(var + 1e-5) + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), F.leaky_relu(y, 0.01))
    # running statistics move towards the batch statistics, the variance unbiased (inplace_abn 1.1 semantics)
    count = x.numel() // 4
    torch.testing.assert_close(norm.running_mean, 0.9 * 5.0 + 0.1 * mean.flatten())
    torch.testing.assert_close(norm.running_var, 0.9 * 1.0 + 0.1 * var.flatten() * count / (count - 1))
    assert int(norm.num_batches_tracked) == 1


def test_inplace_abn_gradients_match_the_formula():
    torch.manual_seed(1)
    norm = InPlaceABNCompat(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.8, -1.3, 0.4]))
    x = (torch.randn(2, 3, 4, 5) * 1.5).requires_grad_(True)
    g = torch.randn(2, 3, 4, 5)
    grads = torch.autograd.grad((norm(x) * g).sum(), (x, norm.weight, norm.bias))
    x2 = x.detach().clone().requires_grad_(True)
    w, b = norm.weight.detach().clone().requires_grad_(True), norm.bias.detach().clone().requires_grad_(True)
    mean = x2.mean(dim=(0, 2, 3), keepdim=True)
    var = x2.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    y = (x2 - mean) * (w.abs() + 1e-5).view(1, -1, 1, 1) / torch.sqrt(var + 1e-5) + b.view(1, -1, 1, 1)
    expected = torch.autograd.grad((F.leaky_relu(y, 0.01) * g).sum(), (x2, w, b))
    for ours, ref in zip(grads, expected):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_inplace_abn_eval_mode_uses_running_stats():
    norm = InPlaceABNCompat(2).eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, -1.0]))
        norm.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.zeros(1, 2, 1, 1)
    expected = F.leaky_relu(torch.tensor([-1.0, 1.0]) * (1 + 1e-5) / torch.sqrt(torch.tensor([4.0, 1.0]) + 1e-5), 0.01)
    torch.testing.assert_close(norm(x).flatten(), expected)


def test_latent_sampler_matches_grid_sample_inside_and_is_zero_outside():
    torch.manual_seed(0)
    vol = torch.randn(5, 7, 7, 7, dtype=torch.float64)
    pts = torch.rand(200, 3, dtype=torch.float64) * 1.9 - 0.95
    ours = sample_latent(vol, pts)
    torch.testing.assert_close(ours, sample_volume_grid(vol, pts))
    # x indexes the first axis: a node sample returns that voxel
    node = torch.tensor([[-1 + 2 * 2 / 6, -1 + 2 * 5 / 6, -1 + 2 * 3 / 6]], dtype=torch.float64)
    torch.testing.assert_close(sample_latent(vol, node)[0], vol[:, 2, 5, 3])
    # strictly positive index required: the -1 face and outside samples are zero
    edge = torch.tensor([[-1.0, 0.0, 0.0], [0.2, 1.5, 0.0], [0.0, 0.0, -1.2]], dtype=torch.float64)
    assert torch.all(sample_latent(vol, edge) == 0)


def test_fast_latent_sampler_equals_the_official_rule_with_gradients():
    torch.manual_seed(0)
    vol = torch.randn(5, 7, 7, 7, dtype=torch.float64)
    axis = torch.linspace(-1, 1, 13, dtype=torch.float64)  # a mesh grid: both faces included
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    pts = torch.cat([grid, torch.rand(300, 3, dtype=torch.float64) * 2 - 1]).requires_grad_(True)
    fast, ref = sample_latent_fast(vol, pts), sample_latent(vol, pts)
    torch.testing.assert_close(fast, ref)
    assert torch.all(fast[:len(grid)][grid[:, 0] == -1] == 0)  # the -1 faces are zero, as the official sampler
    weights = torch.randn(5, dtype=torch.float64)
    (g_fast,) = torch.autograd.grad((fast @ weights).sum(), pts)
    (g_ref,) = torch.autograd.grad((ref @ weights).sum(), pts)
    interior = (pts.detach().abs() < 1).all(1) & ~torch.isin(pts.detach() * 3 + 3, torch.arange(7.0)).any(1)
    torch.testing.assert_close(g_fast[interior], g_ref[interior])  # away from the kinks at nodes and faces
    outside = torch.tensor([[0.2, 1.5, 0.0], [0.0, 0.0, -1.2], [0.99, 0.3, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(sample_latent_fast(vol, outside), sample_latent(vol, outside))


def test_latent_sampler_has_second_derivatives():
    torch.manual_seed(1)
    vol = torch.randn(2, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    pts = (torch.rand(10, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_(True)
    val = sample_latent(vol, pts).pow(2).sum()
    (g,) = torch.autograd.grad(val, pts, create_graph=True)
    g.norm().backward()
    assert vol.grad is not None and torch.isfinite(vol.grad).all()
    assert torch.autograd.gradcheck(lambda p: sample_latent(vol.detach(), p), (pts.detach().requires_grad_(),))


def test_weight_norm_linear_and_encoding():
    lin = WeightNormLinear(5, 3)
    with torch.no_grad():
        lin.weight_g.fill_(2.0)
    assert torch.allclose(lin.weight.norm(dim=1), torch.full((3,), 2.0))
    x = torch.tensor([[0.1, -0.2, 0.3]])
    enc = PositionalEncoding(2)(x)
    expected = torch.cat([x, torch.sin(x), torch.cos(x), torch.sin(2 * x), torch.cos(2 * x)], 1)
    torch.testing.assert_close(enc, expected)


def test_sdf_mlp_shapes_and_geometric_init_is_a_sphere():
    torch.manual_seed(0)
    mlp = LatentSDFMLP()
    pts = F.normalize(torch.randn(64, 3), dim=1) * 0.5
    out = mlp(pts, torch.randn(64, 16))
    assert out.shape == (64, 128)
    # latent columns start at zero, so the latent does not matter; the init is roughly |p| - 0.5
    torch.testing.assert_close(out, mlp(pts, torch.zeros(64, 16)))
    assert out[:, 0].abs().max() < 0.2
    assert mlp(torch.zeros(1, 3), torch.zeros(1, 16))[0, 0] < -0.3


def test_projection_visibility_rules():
    k = torch.tensor([[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]])
    proj = torch.eye(4)[None].clone()
    proj[0, :3, :3] = k
    pts = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.45, 0.0, 1.0], [0.46, 0.0, 1.0], [0.0, 0.0, 0.0]])
    grid, visible = project_points(pts, proj, 10, 10)
    # centre, behind, on the last pixel column (inclusive), just outside; a point at depth exactly 0 is clamped
    # to 1e-6 and counts as in front (official rule), here projecting onto pixel (0, 0)
    assert visible[0].tolist() == [True, False, True, False, True]
    torch.testing.assert_close(grid[0, 2], torch.tensor([1.0, 0.0]))


def test_variance_mean_cost_counts_only_visible_views_but_sums_all():
    feats = torch.stack([torch.full((2, 10, 10), 1.0), torch.full((2, 10, 10), 3.0)])  # 2 views, 2 channels
    k = torch.eye(4)
    k[:3, :3] = torch.tensor([[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]])
    # view 1 looks the other way: the voxel is behind it but projects onto its image centre
    proj = torch.stack([k, k @ torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0]))])
    coords = torch.tensor([[1, 1, 2]])  # position coords * 1 - 1 = (0, 0, 1)
    _, visible = project_points(torch.tensor([[0.0, 0.0, 1.0]]), proj, 10, 10)
    assert visible[:, 0].tolist() == [True, False]
    out = variance_mean_cost(feats, coords, 1.0, proj)
    n = 1 + 1e-5  # one visible view ...
    mean = (1.0 + 3.0) / n  # ... but both views' samples are summed (official)
    torch.testing.assert_close(out[0], torch.tensor([(1.0 + 9.0) / n - mean ** 2] * 2 + [mean] * 2))


def test_active_voxels_order_and_threshold():
    assert voxel_grid(3)[:4].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    k = torch.tensor([[2.0, 0, 4.5], [0, 2.0, 4.5], [0, 0, 1]])
    proj = torch.eye(4).repeat(2, 1, 1)
    proj[:, :3, :3] = k
    proj[:, 2, 3] = 3.0  # cameras 3 units behind the volume centre, looking along +z
    both = active_voxels(4, 2 / 3, proj, 10, 10, min_views=2)
    one = active_voxels(4, 2 / 3, proj[:1], 10, 10, min_views=1)
    assert torch.equal(both, one) and len(both) > 0


def test_cost_volume_chunking_is_exact():
    torch.manual_seed(0)
    feats = torch.randn(3, 4, 12, 12)
    k = torch.eye(4)
    k[:3, :3] = torch.tensor([[6.0, 0, 5.5], [0, 6.0, 5.5], [0, 0, 1]])
    proj = torch.stack([k @ _translation(0.05 * i, -0.03 * i, 2.5) for i in range(3)])
    whole = active_voxels(9, 0.25, proj, 12, 12, chunk=10 ** 6)
    assert torch.equal(active_voxels(9, 0.25, proj, 12, 12, chunk=17), whole) and len(whole) > 0
    torch.testing.assert_close(variance_mean_cost(feats, whole, 0.25, proj, chunk=13),
                               variance_mean_cost(feats, whole, 0.25, proj, chunk=10 ** 6))


def _translation(x: float, y: float, z: float) -> torch.Tensor:
    m = torch.eye(4)
    m[:3, 3] = torch.tensor([x, y, z])
    return m


def test_sample_views_marks_out_of_image_points_and_samples_zero():
    maps = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    w2c = torch.eye(4)[None]
    k = torch.tensor([[[3.0, 0, 1.5], [0, 3.0, 1.5], [0, 0, 1]]])
    pts = torch.tensor([[0.0, 0.0, 1.0], [5.0, 0.0, 1.0]])
    feats, inside = sample_views(pts, maps, w2c, k)
    assert inside.tolist() == [[True, False]]
    assert torch.all(feats[0, 1] == 0)
    torch.testing.assert_close(feats[0, 0], maps[0, :, 1:3, 1:3].mean(dim=(1, 2)))


def test_ray_differences():
    pts = torch.zeros(1, 3)
    target = torch.tensor([[0.0, 0.0, 1.0]])
    centres = torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    rd = ray_differences(pts, target, centres)
    assert rd.shape == (2, 1, 4)
    torch.testing.assert_close(rd[1, 0], torch.tensor([-(0.5 ** 0.5), 0.0, 0.5 ** 0.5, 0.0]), atol=1e-5, rtol=0)
    assert rd[0, 0, 3] == pytest.approx(1.0, abs=1e-5)


def test_blending_network_is_a_convex_combination_and_chunkable():
    torch.manual_seed(0)
    net = BlendingNetwork()
    v, p = 5, 12
    feats = torch.rand(v, 1, p, 59)
    mask = torch.rand(v, 1, p) > 0.3
    mask[0] = True
    geo, diff = torch.randn(1, p, 16), torch.randn(v, 1, p, 4)
    rgb, _ = net(geo, feats, diff, mask)
    rgb_a, _ = net(geo[:, :5], feats[:, :, :5], diff[:, :, :5], mask[:, :, :5])
    torch.testing.assert_close(rgb[:, :5], rgb_a)
    colours = feats[..., :3]
    lo = torch.where(mask[..., None], colours, torch.inf).min(0).values
    hi = torch.where(mask[..., None], colours, -torch.inf).max(0).values
    assert torch.all(rgb >= lo - 1e-6) and torch.all(rgb <= hi + 1e-6)
