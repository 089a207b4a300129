"""End-to-end oracle-prior test (spec section 3.3): Zero123 replaced by a denoiser that knows the answer.

The oracle returns latent renders of an asymmetric reference volume (an L of two coloured bars, 16^3 grid) from
the pose it is asked about -- recovered from the Zero123 pose code, so a wrong azimuth sign, flipped axis or
transposed grid would reconstruct the mirror image. The whole loop runs unchanged (official camera stream,
near-view and depth-smoothness terms, Adamax); the VAE is the identity (renders are compared in latent space).
Pass: volumetric IoU of ``sigma > 8 mean(sigma)`` (the export threshold rule) with the reference >= 0.7 while the
mirrored reference scores <= 0.4, and the exported mesh (x2 upsampling, world frame) within Chamfer 0.06 box units of
the reference's (spec: "~0.05"; mean of the two directional mean distances, 5000 samples) and >= 0.15 from the
mirror's; a noisy oracle (``D = R + sigma eta``, eta ~ N(0, 0.3^2)) must converge too.

Balance: the 3drec weights (1e4) were balanced against a guidance-100 score; this oracle is unguided, so the SJC
runs scale the regularisers by 1/100 (Adamax is invariant to a global gradient scale, so this equals an oracle
amplified 100x). The SDS run uses the shipped defaults (``sds.loss_weight`` 1000, weights 1e4; that default was
chosen here: 100 gives IoU 0.00, 1000 gives 0.99, 3000 gives 1.00).
Measured (one thread): SJC IoU 0.81 (mirror 0.20), Chamfer 0.047 (mirror 0.21) after 300 steps; noisy SJC IoU 0.82
(0.19; marked slow); SDS IoU 0.98 (0.22), Chamfer 0.016 (0.20) after 200 steps.
"""
import numpy as np
import pytest
import torch

from data import conventions as conv
from score_distillation import ExportConfig, FieldConfig, VoxelField, look_at_pose, render_cameras, render_latent
from score_distillation.export import processed_density
from sjc_pipeline import LossWeights, SDSConfig, SJCConfig, SJCOptimiser, input_pose
from zero123.score import SDSScore, sjc_noise_levels

N, R = 16, 16
BG = torch.full((4, R, R), 0.5)


def reference(mirror: bool = False):
    """16^3 field holding an L (bottom bar + one upright bar at -x), and its occupancy at the voxel centres."""
    c = (np.arange(N) * 2 + 1) / N - 1
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    if mirror:
        x = -x
    bottom = (x > -0.5) & (x < 0.3) & (abs(y) < 0.2) & (z > -0.5) & (z < -0.1)
    upright = (x > -0.5) & (x < -0.1) & (abs(y) < 0.2) & (z >= -0.1) & (z < 0.5)
    f = VoxelField(FieldConfig(grid_size=N))
    colour = np.zeros((4, N, N, N))
    colour[:, bottom] = np.array([1.5, -1, 0.5, 2])[:, None]
    colour[:, upright] = np.array([-1, 2, 1, -0.5])[:, None]
    with torch.no_grad():
        f.density.copy_(torch.from_numpy(np.where(bottom | upright, 12.0, -12.0)[None, None]).float())
        f.color.copy_(torch.from_numpy(colour[None]).float())
    return f, bottom | upright


def pose_from_code(cfg: SJCConfig, code: torch.Tensor) -> np.ndarray:
    c = code.double().reshape(-1)
    polar = cfg.input_polar_deg + np.rad2deg(float(c[0]))
    azimuth = cfg.input_azimuth_deg + np.rad2deg(np.arctan2(float(c[1]), float(c[2])))
    return look_at_pose(conv.spherical_to_position(polar, azimuth, cfg.cameras.radius + float(c[3])).numpy())


class SJCOracle:
    """Implements the SJC score interface with ``D = R_ref(pose) (+ sigma eta)``."""

    def __init__(self, cfg, ref, noise_std=0.0):
        self.cfg, self.ref, self.noise_std = cfg, ref, noise_std
        self.candidates = sjc_noise_levels()[30:-10]
        self.gen = torch.Generator().manual_seed(7)

    def set_image(self, image):
        pass

    def sample_sigma(self, rng, batch=1):
        return torch.as_tensor(rng.choice(self.candidates, batch, replace=False).reshape(-1, 1, 1, 1),
                               dtype=torch.float32)

    def gradient(self, y, sigma, noise, code):
        with torch.no_grad():
            d = render_latent(self.ref, render_cameras(pose_from_code(self.cfg, code), R, 49.1), BG).latent
        if self.noise_std:
            d = d + sigma * self.noise_std * torch.randn(d.shape, generator=self.gen)
        return (d - y.detach()) / sigma, None


class _Stub(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from zero123.config import ModelConfig
        from zero123.model import official_alphas_cumprod

        self.cfg = ModelConfig()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("alphas_cumprod", official_alphas_cumprod(self.cfg))


class SDSOracle(SDSScore):
    """threestudio's SDS with an identity VAE and an epsilon whose predicted x0 is the reference render."""

    def __init__(self, cfg, ref):
        super().__init__(_Stub(), 3.0, cfg.sds.min_step_percent, cfg.sds.max_step_percent)
        self.cfg, self.ref = cfg, ref

    def set_image(self, image):
        pass

    def encode(self, rgb, generator=None):
        return rgb * 2 - 1

    def _eps(self, x_t, timesteps, pose_code, scale):
        with torch.no_grad():
            z_ref = render_latent(self.ref, render_cameras(pose_from_code(self.cfg, pose_code), R, 49.1), BG).latent
        abar = self.alphas_cumprod[timesteps].reshape(-1, 1, 1, 1)
        eps = (x_t - abar.sqrt() * z_ref) / (1 - abar).sqrt()
        return eps, eps, eps


def surface_points(field: VoxelField, threshold: float | None) -> np.ndarray:
    """5000 seeded samples of the exported world-frame mesh (x2 upsampling, no pooling / erosion)."""
    import trimesh

    from score_distillation import export_density_mesh

    mesh = export_density_mesh(field, ExportConfig(kernel_size=1, erosion_size=1, threshold=threshold)).world_mesh()
    return trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy(), process=False).sample(5000, seed=0)


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return 0.5 * float(cKDTree(a).query(b)[0].mean() + cKDTree(b).query(a)[0].mean())


def optimise(cfg: SJCConfig, prior_factory) -> tuple[float, float, float, float]:
    """IoU with the reference and its mirror, Chamfer to the reference's and the mirror's exported meshes."""
    ref, occ = reference()
    mirror_field, mirrored = reference(mirror=True)
    pose = input_pose(cfg)
    with torch.no_grad():
        image = render_latent(ref, render_cameras(pose, R, cfg.cameras.fov_deg), BG).latent
    opt = SJCOptimiser(cfg, prior_factory(cfg, ref), lambda x: x, image, pose, BG)
    for _ in range(cfg.n_steps):
        opt.step()
    sigma, threshold = processed_density(opt.field, ExportConfig(upsample=None, kernel_size=1, erosion_size=1))
    learned = sigma > threshold
    iou = lambda a, b: float((a & b).sum() / (a | b).sum())  # noqa: E731
    ours = surface_points(opt.field, None)
    return (iou(learned, occ), iou(learned, mirrored), chamfer(ours, surface_points(ref, 1.0)),
            chamfer(ours, surface_points(mirror_field, 1.0)))


def config(method="sjc", weight=1e2, steps=300):
    cfg = SJCConfig(method=method, n_steps=steps, seed=0, field=FieldConfig(grid_size=N), progress=False,
                    weights=LossWeights(view=weight, depth_smooth=weight, near_view=weight), sds=SDSConfig(),
                    device="cpu")
    cfg.cameras.render_size = R
    return cfg


@pytest.mark.parametrize("noise_std", [0.0, pytest.param(0.3, marks=pytest.mark.slow)])
def test_sjc_loop_recovers_the_reference_not_its_mirror(noise_std, single_thread):
    iou, mirror, cd, cd_mirror = optimise(config(), lambda cfg, ref: SJCOracle(cfg, ref, noise_std))
    assert iou >= 0.7 and mirror <= 0.4, (iou, mirror)
    assert cd <= 0.06 and cd_mirror >= 0.15, (cd, cd_mirror)


def test_sds_loop_recovers_the_reference_not_its_mirror(single_thread):
    iou, mirror, cd, cd_mirror = optimise(config("sds", weight=1e4, steps=200), SDSOracle)
    assert iou >= 0.7 and mirror <= 0.4, (iou, mirror)
    assert cd <= 0.06 and cd_mirror >= 0.15, (cd, cd_mirror)
