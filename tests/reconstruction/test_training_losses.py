"""Training losses, schedules and ray sampling of the reconstruction module on toy inputs."""
import math

import pytest
import torch

from data import conventions as conv
from data.cameras import Cameras
from reconstruction.training import losses, rays, schedule


def test_color_l1_ignores_invalid_rays():
    rendered = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    target = torch.tensor([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
    assert losses.color_l1(rendered, target).item() == pytest.approx(0.75)
    assert losses.color_l1(rendered, target, torch.tensor([True, False])).item() == pytest.approx(0.5)
    assert losses.color_l1(rendered, target, torch.tensor([[False], [True]])).item() == pytest.approx(1.0)


def test_eikonal_zero_for_unit_gradients_and_masked():
    g = torch.nn.functional.normalize(torch.randn(10, 7, 3), dim=-1)
    assert losses.eikonal(g).item() == pytest.approx(0.0, abs=1e-10)
    g2 = torch.cat([g[:5], 3 * g[5:]])
    mask = torch.zeros(10, 7, dtype=torch.bool)
    mask[:5] = True
    assert losses.eikonal(g2, mask).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.eikonal(g2).item() == pytest.approx(0.5 * 4.0)


def test_sparsity_is_high_near_zero_and_low_far_from_surface():
    zeros = torch.zeros(16)
    far = torch.full((4, 8), 1.0)
    near_val = losses.sparsity(zeros, torch.zeros(4, 8)).item()
    far_val = losses.sparsity(torch.ones(16), far).item()
    assert near_val == pytest.approx(1.0)
    assert far_val == pytest.approx(math.exp(-100.0), abs=1e-12)
    mixed = losses.sparsity(torch.ones(16), torch.zeros(4, 8), samples_mask=torch.zeros(4, 8)).item()
    assert mixed == pytest.approx(0.5 * math.exp(-100.0), abs=1e-12)


def test_foreground_mask_only_with_enough_background():
    w = torch.tensor([0.9, 0.2, 0.1, 0.0])
    m = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert losses.foreground_mask(w, m).item() == pytest.approx((0.1 + 0.8 + 0.1 + 0.0) / 4)
    all_fg = torch.ones(100)
    assert losses.foreground_mask(torch.zeros(100), all_fg).item() == 0.0
    one_bg = torch.ones(100)
    one_bg[0] = 0  # 1 % background <= 2 %: skipped
    assert losses.foreground_mask(torch.zeros(100), one_bg).item() == 0.0
    three_bg = torch.ones(100)
    three_bg[:3] = 0
    assert losses.foreground_mask(torch.zeros(100), three_bg).item() == pytest.approx(0.97)


def test_depth_l1_masked_and_total_combines_weights():
    d = losses.depth_l1(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 0.0]), torch.tensor([True, False]))
    assert d.item() == pytest.approx(0.5)
    one = torch.tensor(1.0)
    terms = losses.total_loss(one, 2 * one, 3 * one, 4 * one, 5 * one, color_weight=1.0, eikonal_weight=0.1,
                              sparsity_weight=0.02, foreground_weight=0.1, depth_weight=0.0)
    assert terms.total.item() == pytest.approx(1 + 0.2 + 0.06 + 0.4)
    assert set(terms.as_dict()) == {"color", "eikonal", "sparsity", "foreground_mask", "depth", "total"}


def test_losses_are_differentiable():
    rendered = torch.rand(8, 3, requires_grad=True)
    grads = torch.randn(8, 4, 3, requires_grad=True)
    sdf = torch.randn(8, 4, requires_grad=True)
    total = losses.color_l1(rendered, torch.rand(8, 3)) + losses.eikonal(grads) + losses.sparsity(sdf[0], sdf)
    total.backward()
    assert rendered.grad.abs().sum() > 0 and grads.grad.abs().sum() > 0 and sdf.grad.abs().sum() > 0


def test_cosine_schedule_to_ten_percent():
    assert schedule.cosine_lr_factor(0, 1000) == pytest.approx(1.0)
    assert schedule.cosine_lr_factor(500, 1000) == pytest.approx(0.55)
    assert schedule.cosine_lr_factor(1000, 1000) == pytest.approx(0.1)
    assert schedule.cosine_lr_factor(5000, 1000) == pytest.approx(0.1)
    t = 123
    assert schedule.cosine_lr_factor(t, 1000) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * t / 1000)))
    values = [schedule.cosine_lr_factor(s, 100) for s in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert schedule.rounded_end_step(200_000, 8 * 1000) == 208_000
    assert schedule.rounded_end_step(200_000, 7) == (1 + 200_000 // 7) * 7


def test_ramps_and_annealing():
    assert schedule.anneal_ratio(0, 25_000) == 0.0
    assert schedule.anneal_ratio(12_500, 25_000) == pytest.approx(0.5)
    assert schedule.anneal_ratio(30_000, 25_000) == 1.0
    assert schedule.anneal_ratio(3, 0) == 1.0
    assert schedule.sparsity_weight(25_000) == pytest.approx(0.01)
    assert schedule.sparsity_weight(60_000) == pytest.approx(0.02)
    assert schedule.foreground_mask_weight(49_999) == 0.0
    assert schedule.foreground_mask_weight(50_000) == pytest.approx(0.1)


def test_pixel_sampling_counts_and_foreground_share():
    mask = torch.zeros(32, 32)
    mask[10:20, 5:9] = 1
    g = torch.Generator().manual_seed(0)
    px = rays.sample_pixels(mask, 128, 384, generator=g)
    assert px.shape == (512, 2) and px.dtype == torch.long
    assert (px[:, 0] < 32).all() and (px[:, 1] < 32).all() and (px >= 0).all()
    fg = mask[px[:, 1], px[:, 0]]
    assert fg[128:].min() == 1  # the 384 importance rays all hit the foreground
    assert fg[:128].mean() < 0.2  # the uniform ones mostly do not (40/1024 of the image is foreground)
    empty = rays.sample_pixels(torch.zeros(8, 8), 4, 12, generator=g)
    assert empty.shape == (16, 2)


def test_gather_pixels_and_rays_through_integer_pixels():
    img = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    px = torch.tensor([[0, 0], [4, 3], [2, 1]])
    vals = rays.gather_pixels(img, px)
    assert torch.equal(vals[:, 0], torch.tensor([0.0, 19.0, 7.0]))
    cam = Cameras.from_spherical(90.0, 0.0)
    c = conv.IMAGE_SIZE / 2
    o, d = rays.pixel_rays_unit(cam, torch.tensor([[int(c), int(c)]]))
    assert torch.allclose(d.norm(dim=-1), torch.ones(1))
    # the principal point's ray (no half-pixel shift) goes through the origin the camera looks at
    assert torch.allclose(o + conv.CAMERA_RADIUS * d, torch.zeros(1, 3), atol=1e-5)
