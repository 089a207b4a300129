"""Parity with the official Zero-1-to-3 ``3drec`` code: ../shared/fixtures/zero123_3drec_parity (checks C1-C9 of
../shared/docs/zero123-3d-optimisation-spec.md section 3.1).

Tolerances (measured differences in brackets, float32 CPU, one thread):
* cameras, rays, box intersection (float64): 1e-12 abs [<= 1.4e-15]; sampler streams: exact [exact];
  pose code T (float32): 1e-6 abs [6e-8].
* renders on both grids (latent, depth, weights, opacity, loss terms): 1e-5 abs [bit-identical]; sample counts exact.
* render gradients (probe on grid A): 1e-4 x max |reference| abs [9e-13 abs].
* score (tiny Zero123, EMA): CLIP embedding 1e-5 [9.5e-7], VAE mode / concat 5e-5 [1.6e-5], context 1e-5 [1.2e-6],
  UNet input exact, eps 3e-5 [9.3e-6]; D = z - sigma eps_hat amplifies eps differences by guidance x sigma:
  3e-5 x 100 x sigma + 1e-5 [8.7e-3 at sigma 12.2]; gradients (D - y)/sigma: 1e-5 x max |g| (= 3e-3 at |g| ~ 300)
  [1.1e-3].
* two whole iterations: renders 1e-5 abs [4.8e-7 on iteration 1], decoded input 5e-5 [9.5e-6], RGB loss
  1e-6 relative [5.4e-8], weighted losses 1e-6 relative [<= 2.1e-7], score as above, accumulated gradients
  1e-4 x max |reference| abs [<= 7.7e-5 abs on values up to 35, i.e. 3e-6 of max], parameters after Adamax 1e-4
  abs [4.5e-5: a few of the 55k colour entries move 0.05 x their gradient's float32 noise].
* mesh export: threshold 1e-9 relative [exact], vertex sets Chamfer (both directions, max) < 1e-6 [3e-8], equal
  vertex counts and bounding boxes within 1e-6; faces are compared by count only where the triangulation agrees
  (scikit-image ``lorensen`` vs PyMCubes: default export equal, the plain export triangulates 4 faces differently).
"""
import numpy as np
import pytest
import torch

from data.cameras import Cameras
from score_distillation import (
    ExportConfig, FieldConfig, VoxelField, box_intersect, camera_rays, depth_smoothness, emptiness,
    export_density_mesh, look_at_pose, near_eye, near_view_loss, render_cameras, render_latent, spiral_poses,
    train_eyes,
)
from score_distillation.cameras import rescaled_input_pose
from score_distillation.input_image import official_input_image

FIX = "fixtures/zero123_3drec_parity"
TINY = "fixtures/zero123_parity/tiny"


@pytest.fixture(scope="module")
def fx():
    from conftest import require_shared

    root = require_shared(FIX)
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = dict(np.load(root / f"{name}.npz"))
        return cache[name]

    return load


@pytest.fixture(scope="module")
def tiny_zero123():
    from conftest import require_shared
    from zero123 import Zero123Pipeline

    root = require_shared(TINY)
    return Zero123Pipeline.from_pretrained(root / "zero123_tiny.ckpt", original_config=root / "zero123_tiny.yaml")


def cams(pose, size=32, fov=49.1):
    return render_cameras(pose, size, fov)


def official_k(camera: Cameras) -> np.ndarray:
    """Our pinhole K (principal point at the image centre, pixel centres at +0.5) in the official 3drec form."""
    k = camera.intrinsics[0].numpy()
    f, cx, cy = k[0, 0], k[0, 2], k[1, 2]
    return np.array([[f, 0, -(cx - 0.5)], [0, -f, -(cy - 0.5)], [0, 0, -1.0]])


# ---------------------------------------------------------------------------------------------- C1, C2, C3
@pytest.mark.parametrize("key,size,fov", [("K_hw32_fov49p1", 32, 49.1), ("K_hw64_fov60", 64, 60.0),
                                          ("K_hw32_fov60", 32, 60.0)])
def test_intrinsics(fx, key, size, fov):
    np.testing.assert_allclose(official_k(cams(np.eye(4), size, fov)), fx("cameras")[key], atol=1e-12, rtol=0)


def test_camera_pose_spiral_input_pose_and_T(fx):
    c = fx("cameras")
    ours = np.stack([look_at_pose(e) for e in c["camera_pose_eyes"]])
    np.testing.assert_allclose(ours, c["camera_pose_out"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(spiral_poses(100, 2.0), c["test_poses_R2"], atol=1e-12, rtol=0)
    inp = rescaled_input_pose(c["pikachu_pose_raw"], 2.0)
    assert inp.dtype == np.float32 and np.array_equal(inp, c["input_pose_R2"])
    from sjc_pipeline import pose_code

    code = pose_code(Cameras.cat([cams(inp.astype(np.float64))] * 64), cams(c["train_poses"]))
    np.testing.assert_allclose(code.numpy(), c["T_train_vs_input"], atol=1e-6, rtol=0)
    # official cartesian_to_spherical: polar from +z, azimuth atan2(y, x) (= ours - 90 deg), radius
    polar, azimuth, radius = cams(c["train_poses"]).spherical()
    sph = c["train_eyes_spherical"]
    np.testing.assert_allclose(np.deg2rad(polar.numpy()), sph[0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(radius.numpy(), sph[2], atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.cos(np.deg2rad(azimuth.numpy() - 90.0) - sph[1]), 1.0, atol=1e-12)


def test_sampler_streams_exact(fx):
    c = fx("cameras")
    eyes, attempts = train_eyes(np.random.RandomState(int(c["train_seed"])), 64)
    assert np.array_equal(eyes, c["train_eyes"]) and np.array_equal(attempts, c["train_attempts"])
    np.testing.assert_allclose(np.stack([look_at_pose(e) for e in eyes]), c["train_poses"], atol=1e-12, rtol=0)
    rng = np.random.RandomState(int(c["near_seed"]))
    near = np.stack([near_eye(rng, e) for e in c["train_eyes"]])
    assert np.array_equal(near, c["near_eyes"])
    np.testing.assert_allclose(np.stack([look_at_pose(e) for e in near]), c["near_poses"], atol=1e-12, rtol=0)


def test_sampler_distribution(fx):
    """C3 with another seed: 100k draws, the fixture's 200k-draw statistics."""
    s = fx("camera_stats")
    eyes, attempts = train_eyes(np.random.RandomState(2024), 100_000)
    r = np.linalg.norm(eyes, axis=1)
    elev = np.rad2deg(np.arcsin(eyes[:, 2] / r))
    az = np.rad2deg(np.arctan2(eyes[:, 1], eyes[:, 0]))
    q = s["quantile_levels"]
    np.testing.assert_allclose(np.quantile(elev, q), s["elevation_deg_quantiles"], atol=0.5)
    np.testing.assert_allclose(np.quantile(r, q), s["radius_quantiles"], atol=0.01)
    az_frac = np.histogram(az, s["azimuth_hist_edges_deg"])[0] / len(az)
    el_frac = np.histogram(elev, s["elevation_hist_edges_deg"])[0] / len(elev)
    np.testing.assert_allclose(az_frac, s["azimuth_hist_frac"], atol=0.004)
    np.testing.assert_allclose(el_frac, s["elevation_hist_frac"], atol=0.004)
    assert abs(len(eyes) / attempts.sum() - float(s["acceptance_rate"])) < 0.01


# ---------------------------------------------------------------------------------------------- C4, C5, C6
def grid_a(r):
    f = VoxelField(FieldConfig(grid_size=24))
    with torch.no_grad():
        f.density.copy_(torch.from_numpy(r["A_density"]))
        f.color.copy_(torch.from_numpy(r["A_color"]))
        f.d_scale.fill_(float(r["A_d_scale"]))
    return f


def test_rays_and_box(fx):
    r = fx("render")
    o, d = camera_rays(cams(r["poses"][0]))
    np.testing.assert_allclose(o, r["view0_rays_o"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(d, r["view0_rays_d"], atol=1e-12, rtol=0)
    t0, t1 = box_intersect(o, d, np.array([[-1.0] * 3, [1.0] * 3]))
    np.testing.assert_allclose(t0, r["view0_t_min"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(t1, r["view0_t_max"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(official_k(cams(r["poses"][0])), r["K"], atol=1e-12, rtol=0)


def test_grid_a_renders(fx):
    r = fx("render")
    f = grid_a(r)
    assert f.step_size == float(r["A_step_size"]) and f.num_samples(2 * 3**0.5) == int(r["A_num_samples_full_diag"])
    bg = torch.from_numpy(r["white_bg_4x32x32"])
    outs = []
    with torch.no_grad():
        for v in range(3):
            out = render_latent(f, cams(r["poses"][v]), bg)
            outs.append(out)
            assert out.num_samples == r[f"A_view{v}_weights"].shape[0]
            for name, ours in (("latent", out.latent), ("depth", out.depth), ("weights", out.weights)):
                np.testing.assert_allclose(ours.numpy(), r[f"A_view{v}_{name}"], atol=1e-5, rtol=0, err_msg=name)
            np.testing.assert_allclose(float(depth_smoothness(out.depth)), r[f"A_view{v}_depth_smooth_loss"],
                                       atol=1e-6, rtol=0)
            np.testing.assert_allclose(float(emptiness(out.weights)), r[f"A_view{v}_emptiness_term"], atol=1e-8,
                                       rtol=0)
    np.testing.assert_allclose(float(near_view_loss(outs[1], outs[2])), r["A_near_loss_v1_v2_unweighted"],
                               atol=1e-6, rtol=0)


def test_grid_a_gradient_probe(fx):
    r = fx("render")
    f = grid_a(r)
    out = render_latent(f, cams(r["poses"][0]), torch.from_numpy(r["white_bg_4x32x32"]))
    value = (torch.from_numpy(r["grad_probe_rgb"]) * out.latent).sum() + (
        torch.from_numpy(r["grad_probe_depth"]) * out.depth).sum()
    value.backward()
    np.testing.assert_allclose(float(value.detach()), r["A_view0_probe_value"], rtol=1e-6)
    for name in ("density", "color", "d_scale"):
        ref = r[f"A_view0_grad_{name}"]
        np.testing.assert_allclose(getattr(f, name).grad.numpy(), ref, atol=1e-4 * np.abs(ref).max(), rtol=0,
                                   err_msg=name)
    assert f.bg.grad is None and bool(r["A_view0_grad_bg_is_none"])


def grid_b(n=100):
    z, y, x = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    cx, cy, cz = 2 * x - (n - 1), 2 * y - (n - 1), 2 * z - (n - 1)
    dens = np.where(cx**2 + cy**2 + cz**2 < (n // 2) ** 2, 4, -3) + np.where(
        (abs(cx) < n // 4) & (abs(cy + n // 2) < n // 5) & (abs(cz) < n // 3), 6, 0)
    col = np.stack([((7 * x + 3 * y + 5 * z + 11 * c) % 17) / 8 - 1 for c in range(4)])
    f = VoxelField(FieldConfig(grid_size=n))
    with torch.no_grad():
        f.density.copy_(torch.from_numpy(dens[None, None].astype(np.float32)))
        f.color.copy_(torch.from_numpy(col[None].astype(np.float32)))
    return f


def test_grid_b_renders(fx):
    r = fx("render")
    f = grid_b()
    assert f.step_size == float(r["B_step_size"]) and f.num_samples(2 * 3**0.5) == int(r["B_num_samples_full_diag"])
    with torch.no_grad():
        for v in range(2):
            out = render_latent(f, cams(r["poses"][v]), torch.from_numpy(r["white_bg_4x32x32"]))
            assert out.num_samples == int(r[f"B_view{v}_num_samples"])
            for name, ours in (("latent", out.latent), ("depth", out.depth), ("opacity", out.opacity)):
                np.testing.assert_allclose(ours.numpy(), r[f"B_view{v}_{name}"], atol=1e-5, rtol=0, err_msg=name)


# ---------------------------------------------------------------------------------------------- C7
def test_input_image_pipeline(fx):
    s = fx("sjc_score")
    assert np.array_equal(official_input_image(s["input_rgba_512_uint8"]), s["input_image_256_hwc"])


def test_score_table(fx, tiny_zero123, single_thread):
    from zero123.score import SJCScore, sjc_noise_levels

    s = fx("sjc_score")
    model = tiny_zero123.model
    assert np.array_equal(sjc_noise_levels(model.cfg), s["us"])
    score = SJCScore(model)
    assert len(score.candidates) == int(s["ts_len"])
    score.set_image(torch.from_numpy(s["input_image_256_hwc"]).double().permute(2, 0, 1)[None].mul(2).sub(1).float())
    np.testing.assert_allclose(score.clip_emb.numpy(), s["clip_emb"][0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(score.vae_emb.numpy(), s["vae_emb"], atol=5e-5, rtol=0)
    code = torch.from_numpy(s["score_T"])[None]
    from sjc_pipeline import pose_code

    ours = pose_code(cams(s["input_pose"].astype(np.float64)), cams(s["score_target_pose"]))
    np.testing.assert_allclose(ours.numpy(), code.numpy(), atol=1e-6, rtol=0)
    ctx, concat = score.conditioning(code)
    y, n = torch.from_numpy(s["score_y"]), torch.from_numpy(s["score_noise"])
    for i, j in enumerate(s["score_us_index"]):
        np.testing.assert_allclose(ctx.numpy(), s["score_c_crossattn"][i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(concat.numpy(), s["score_c_concat"][i], atol=5e-5, rtol=0)
        sigma = torch.tensor(np.float32(s["us"][j])).reshape(1, 1, 1, 1)
        assert float(sigma) == s["score_sigma"][i]
        z = y + sigma * n
        assert np.array_equal(z.numpy(), s["score_zs"][i])
        g, out = score.gradient(y, sigma, n, code)
        assert out.timesteps.tolist() == s["score_cond_t"][i][:1].tolist()
        assert np.array_equal(out.unet_input.numpy(), s["score_unet_x_in"][i])
        np.testing.assert_allclose(out.eps_uncond.numpy(), s["score_eps_uncond"][i], atol=3e-5, rtol=0)
        np.testing.assert_allclose(out.eps_cond.numpy(), s["score_eps_cond"][i], atol=3e-5, rtol=0)
        np.testing.assert_allclose(out.denoised.numpy(), s["score_Ds"][i], atol=3e-5 * 100 * float(sigma) + 1e-5,
                                   rtol=0)
        ref = s["score_grad_var_red"][i]
        np.testing.assert_allclose(g.numpy(), ref, atol=1e-5 * np.abs(ref).max(), rtol=0)
        score.var_red = False
        g_plain, _ = score.gradient(y, sigma, n, code)
        score.var_red = True
        ref = s["score_grad_plain"][i]
        np.testing.assert_allclose(g_plain.numpy(), ref, atol=1e-5 * np.abs(ref).max(), rtol=0)


# ---------------------------------------------------------------------------------------------- C8
def test_two_full_iterations(fx, tiny_zero123, single_thread):
    from sjc_pipeline import SJCConfig, SJCOptimiser
    from zero123.score import SJCScore

    s, st, r = fx("sjc_score"), fx("sjc_steps"), fx("render")
    model = tiny_zero123.model
    cfg = SJCConfig(n_steps=2, seed=0, field=FieldConfig(grid_size=24), progress=False, device="cpu")
    assert (cfg.weights.view, cfg.weights.depth_smooth, cfg.weights.near_view) == (
        st["view_weight"], st["depth_smooth_weight"], st["near_view_weight"])
    f = VoxelField(cfg.field)
    with torch.no_grad():
        for k in ("density", "color", "bg", "d_scale"):
            getattr(f, k).copy_(torch.from_numpy(np.asarray(st[f"init_{k}"])))
    image = torch.from_numpy(s["input_image_256_hwc"]).double().permute(2, 0, 1)[None] * 2 - 1
    opt = SJCOptimiser(cfg, SJCScore(model), model.decode_latents, image, s["input_pose"].astype(np.float64),
                       torch.from_numpy(r["white_bg_4x32x32"]), f)
    groups = opt.optimiser.param_groups
    assert [g["name"] for g in groups] == st["param_group_names"].tolist()
    assert [g["lr"] for g in groups] == st["param_group_lr"].tolist()
    np.testing.assert_allclose(np.stack([opt.sampler.pose(i) for i in range(2)]), st["train_poses"], atol=1e-12,
                               rtol=0)

    def close(ours, key, atol=0.0, rtol=0.0, i=0):
        ref = st[f"it{i}_{key}"]
        ours = ours.detach().numpy() if torch.is_tensor(ours) else np.asarray(ours)
        np.testing.assert_allclose(ours, ref, atol=atol, rtol=rtol, err_msg=f"it{i}_{key}")

    for i in range(2):
        rec = opt.step(record=True)
        t = rec.tensors
        for key in ("input_latent", "input_depth", "latent", "depth", "near_latent"):
            close(t[key], key, atol=1e-5, i=i)
        close(t["input_decoded"], "input_decoded", atol=5e-5, i=i)
        close(t["rgb_loss"], "rgb_loss", rtol=1e-6, i=i)
        close(rec.losses["input_smooth"], "input_smooth_loss_weighted", rtol=1e-6, i=i)
        close(rec.losses["near"], "near_loss_weighted", rtol=1e-6, i=i)
        close(t["smooth"], "smooth_loss_weighted", rtol=1e-6, i=i)
        assert t["smooth_applied"] == bool(st[f"it{i}_smooth_applied"])
        assert np.array_equal(t["near_eye"], st[f"it{i}_near_eye"])
        close(t["near_pose"], "near_pose", atol=1e-12, i=i)
        close(t["T"], "T", atol=1e-6, i=i)
        assert float(t["sigma"]) == float(st[f"it{i}_sigma"])
        assert np.array_equal(t["noise"].numpy(), st[f"it{i}_noise"])
        close(t["Ds"], "Ds", atol=3e-5 * 100 * float(t["sigma"]) + 1e-5, i=i)
        close(t["sjc_grad"], "sjc_grad", atol=1e-5 * np.abs(st[f"it{i}_sjc_grad"]).max(), i=i)
        for k in ("density", "color", "d_scale"):
            ref = st[f"it{i}_grad_{k}"]
            close(t["grads"][k], f"grad_{k}", atol=1e-4 * np.abs(ref).max(), i=i)
        assert t["grads"]["bg"] is None and st[f"it{i}_grad_bg"].size == 0
        for k in ("density", "color", "bg", "d_scale"):
            close(getattr(opt.field, k), f"after_step_{k}", atol=1e-4, i=i)


# ---------------------------------------------------------------------------------------------- C9
@pytest.mark.parametrize("variant", ["default", "plain"])
def test_mesh_export(fx, variant):
    from scipy.spatial import cKDTree

    m = fx("mesh_export")
    f = VoxelField(FieldConfig(grid_size=32))
    with torch.no_grad():
        f.density.copy_(torch.from_numpy(m["density"]))
        f.d_scale.fill_(float(m["d_scale"]))
    cfg = ExportConfig() if variant == "default" else ExportConfig(upsample=None, threshold=2.0, kernel_size=1,
                                                                   erosion_size=1)
    out = export_density_mesh(f, cfg)
    # 8 x a float32 mean over the upsampled grid: its summation order follows the thread count (2.98e-8 = 1 ulp of
    # the 0.479 threshold apart with 2 threads against the fixture)
    np.testing.assert_allclose(out.threshold, float(m[f"{variant}_threshold"]), rtol=1e-6)
    ours, ref = out.official_vertices, m[f"{variant}_vertices"]
    assert ours.shape == ref.shape
    assert cKDTree(ref).query(ours)[0].max() < 1e-6 and cKDTree(ours).query(ref)[0].max() < 1e-6
    np.testing.assert_allclose(ours.min(0), ref.min(0), atol=1e-6)
    np.testing.assert_allclose(ours.max(0), ref.max(0), atol=1e-6)
    if variant == "default":
        assert out.faces.shape == m["default_faces"].shape
