"""Property checks P1-P7 of the 3D-optimisation spec (section 3.2): closed-form facts a plausible bug breaks."""
import numpy as np
import pytest
import torch

from score_distillation import FieldConfig, VoxelField, look_at_pose, near_eye, render_cameras, render_latent
from score_distillation.render import box_intersect, camera_rays
from zero123.config import ModelConfig
from zero123.score import Denoised, SDSScore, SJCScore, ramp, sjc_noise_levels


class _StubModel(torch.nn.Module):
    """Enough of Zero123Model for the score classes: cfg, alphas_cumprod, one parameter."""

    def __init__(self):
        super().__init__()
        from zero123.model import official_alphas_cumprod

        self.cfg = ModelConfig()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("alphas_cumprod", official_alphas_cumprod(self.cfg))


def test_p1_ve_input_equals_ddpm_x_t():
    us = sjc_noise_levels()
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)
    rng = np.random.default_rng(0)
    y, n = rng.normal(size=(4, 8, 8)), rng.normal(size=(4, 8, 8))
    for j in (0, 30, 400, 989, 999):
        t = 999 - j
        np.testing.assert_allclose((y + us[j] * n) / np.sqrt(1 + us[j] ** 2),
                                   np.sqrt(abar[t]) * y + np.sqrt(1 - abar[t]) * n, atol=1e-6)
    score = SJCScore(_StubModel())
    t, s = score.snap(torch.tensor([float(us[30]), float(us[989])]))
    assert t.tolist() == [969, 10] and score.candidates[0] == us[30] and score.candidates[-1] == us[989]


class _NoiseOracle(SJCScore):
    def _eps(self, x_in, timesteps, pose_code, scale):
        return self.true_noise, self.true_noise, self.true_noise


def test_p2_perfect_noise_oracle():
    score = _NoiseOracle(_StubModel())
    score.clip_emb = torch.zeros(1, 8)
    y, n = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    score.true_noise = n
    sigma = torch.tensor(3.3210830688476562).reshape(1, 1, 1, 1)
    g, _ = score.gradient(y, sigma, n, torch.zeros(1, 4))
    assert g.abs().max() < 1e-5
    score.var_red = False
    g, _ = score.gradient(y, sigma, n, torch.zeros(1, 4))
    torch.testing.assert_close(g, -n, atol=1e-5, rtol=0)


class _TargetOracle(SJCScore):
    def denoise(self, z, sigma, pose_code):
        t, s = self.snap(sigma)
        d = self.target.expand_as(z)
        return Denoised(d, d, d, d, t, s, z)


def test_p3_descent_direction():
    score = _TargetOracle(_StubModel())
    score.target = torch.randn(1, 4, 8, 8)
    y = torch.randn(1, 4, 8, 8, requires_grad=True)
    sigma = score.sample_sigma(np.random.RandomState(0))
    g, _ = score.gradient(y, sigma, torch.randn(1, 4, 8, 8), torch.zeros(1, 4))
    torch.testing.assert_close(g, (score.target - y.detach()) / sigma, atol=1e-5, rtol=1e-5)
    before = (y - score.target).norm()
    y.backward(-g)  # as the loop applies it
    with torch.no_grad():
        after = (y - 0.1 * sigma * y.grad - score.target).norm()
    assert after < before


def test_p4_sds_gradient_and_schedules():
    sds = SDSScore(_StubModel())
    z = torch.randn(2, 4, 8, 8, requires_grad=True)
    eps_hat, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([300, 700])
    sds._eps = lambda x, ts, code, scale: (eps_hat, eps_hat, eps_hat)
    g, _ = sds.grad(z, t, eps, torch.zeros(2, 4))
    abar = sds.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(g, (1 - abar) * (eps_hat - eps))
    loss = 0.5 * ((z - (z - g).detach()) ** 2).sum() / 2
    loss.backward()
    torch.testing.assert_close(z.grad, g / 2)
    assert [ramp([0, 0.4, 0.2, 200], s) for s in (0, 100, 200, 400)] == pytest.approx([0.4, 0.3, 0.2, 0.2])
    assert [ramp([100, 7, 5, 150, 10, 200], s) for s in (0, 100, 125, 150, 175, 200)] == pytest.approx(
        [7, 7, 6, 5, 7.5, 10])
    assert sds.step_range(0) == (400, 850) and sds.step_range(200) == (200, 500)


def test_p5_stable_zero123_pose_code():
    from data.layout import RelativePose
    from zero123.pose import pose_vector, stable_zero123_pose_vector

    rel = RelativePose(torch.tensor([10.0, -20.0]), torch.tensor([90.0, 200.0]), torch.tensor([0.1, -0.2]))
    code = stable_zero123_pose_vector(rel, 85.0)
    torch.testing.assert_close(code[:, :3], pose_vector(rel)[:, :3])
    torch.testing.assert_close(code[:, 3], torch.full((2,), float(np.deg2rad(85.0)), dtype=torch.float32))


def test_p6_renderer_invariants():
    bg = torch.randn(4, 16, 16)
    cam = render_cameras(look_at_pose([1.3, -0.9, 1.1]), 16, 49.1)
    f = VoxelField(FieldConfig(grid_size=8))
    with torch.no_grad():
        f.density.fill_(-100.0)
        out = render_latent(f, cam, bg)
    torch.testing.assert_close(out.latent[0], bg, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depth, torch.full((16, 16), 10.0), atol=1e-5, rtol=0)
    # an opaque box: the first sample on each ray already stops it (depth = entry distance, colour = voxel value)
    with torch.no_grad():
        f.density.fill_(1e6)
        f.color.copy_(torch.tensor([0.5, -1.0, 2.0, 3.0]).reshape(1, 4, 1, 1, 1).expand_as(f.color))
        out = render_latent(f, cam, bg)
    o, d = camera_rays(cam)
    t0, t1 = box_intersect(o, d, np.array([[-1.0] * 3, [1.0] * 3]))
    hit = torch.from_numpy((t0 < t1).reshape(16, 16))
    torch.testing.assert_close(out.depth[hit], torch.from_numpy(t0.reshape(16, 16)).float()[hit], atol=1e-4, rtol=0)
    first = torch.from_numpy(o + t0[:, None] * d).float()  # the first sample of each ray (grid_sample's zero padding
    with torch.no_grad():                                    # halves values at the faces, so compare with the field)
        colour = f.features_at(first).reshape(16, 16, 4)
    torch.testing.assert_close(out.latent[0].permute(1, 2, 0)[hit], colour[hit], atol=1e-4, rtol=0)
    assert bool((out.opacity <= 1 + 1e-6).all())


def test_p7_near_view_geometry():
    rng = np.random.RandomState(5)
    for eye in np.random.RandomState(1).normal(size=(20, 3)) * 2:
        ne = near_eye(rng, eye)
        assert abs(np.linalg.norm(ne - eye) - 0.05) < 1e-12
        pose = look_at_pose(ne)
        np.testing.assert_allclose(-pose[:3, 2] * np.linalg.norm(ne), -ne, atol=1e-12)  # looks at the origin


def test_export_frames_place_an_off_centre_blob_where_it_is():
    """A blob at world (0.5, -0.25, 0.2): the world mesh puts it there (outward faces), the official vertices at
    half scale in (x, z, -y)."""
    import trimesh

    from score_distillation import ExportConfig, export_density_mesh

    n = 32
    f = VoxelField(FieldConfig(grid_size=n))
    c = (torch.arange(n) * 2 + 1) / n - 1
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    inside = ((x - 0.5) ** 2 + (y + 0.25) ** 2 + (z - 0.2) ** 2) < 0.2**2
    with torch.no_grad():
        f.density.copy_(torch.where(inside, 10.0, -10.0)[None, None])
    out = export_density_mesh(f, ExportConfig(upsample=None, kernel_size=1, erosion_size=1, threshold=1.0))
    world = out.world_mesh()
    np.testing.assert_allclose(world.vertices.mean(0).numpy(), [0.5, -0.25, 0.2], atol=0.03)
    assert trimesh.Trimesh(world.vertices.numpy(), world.faces.numpy(), process=False).volume > 0
    np.testing.assert_allclose(out.official_vertices.mean(0), [0.25, 0.1, 0.125], atol=0.03)
    np.testing.assert_allclose(out.world_mesh(0.6).vertices.mean(0).numpy(), [0.3, -0.15, 0.12], atol=0.02)
