"""Parity with the official Zero123++ pipeline: every array of ``../shared/fixtures/zero123plus_parity``.

Tolerances (float32 CPU; the fixtures were recorded with one thread; max-abs error unless stated):

=================================================  ==============================================
quantity                                           tolerance
=================================================  ==============================================
schedules (abar, log-SNR, timesteps, sigmas)       exact (0)
RGBA compositing, VAE / CLIP pixel inputs          exact (0)
token ids                                          exact
reference / ancestral / posterior noise draws      exact (0): the RNG streams are replayed
text states, CLIP embedding, ramped context        1e-5 (context from recorded inputs: exact)
VAE posterior mean / std, reference latents        2e-4 (values up to ~10)
reference-attention processor, every mode          1e-6
single wrapper calls (v), ControlNet residuals      1e-4
per-step latents, x0, guided v (3 steps, CFG 4)    1e-4 x (1 + |value|) (latents reach ~90)
final latents, VAE decoder output                  1e-3
output image (uint8)                               +-1 level, >= 99 % of pixels equal
=================================================  ==============================================
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zero123plus import Zero123PlusPipeline, load_zero123plus_config
from zero123plus.attention import ReferenceAttnProcessor
from zero123plus.preprocess import to_rgb
from zero123plus.scaling import to_uint8, unscale_image, unscale_latents
from zero123plus.schedule import alphas_cumprod, euler_ancestral, log_snr

FIX = "fixtures/zero123plus_parity"
#: name -> (torch.manual_seed of the official run = our reference seed, generator seed, guidance, steps, spacing)
RUNS = {
    "pipeline_run_cfg": (1234, 42, 4.0, 3, "trailing"),
    "pipeline_run_nocfg": (4321, 7, 1.0, 2, "linspace"),
    "controlnet_run": (77, 11, 4.0, 2, "trailing"),
}


def t(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def close(ours, ref, atol, rtol=0.0, what=""):
    ours = ours.detach().float().cpu() if isinstance(ours, torch.Tensor) else t(ours).float()
    torch.testing.assert_close(ours, t(ref).float(), atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one torch thread is faster (far faster on a loaded machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root():
    from conftest import require_shared

    return require_shared(FIX)


@pytest.fixture(scope="module")
def pipe(root):
    cfg = load_zero123plus_config(overrides=["sampling.height=192", "sampling.width=128"])
    return Zero123PlusPipeline.from_pretrained(root / "tiny_pipeline", cfg, controlnet=root / "tiny_controlnet")


@pytest.fixture(scope="module")
def runs(root, pipe):
    """Each official run replayed once: (fixture arrays, our per-step records, our output)."""
    out = {}
    for name, (ref_seed, seed, scale, steps, spacing) in RUNS.items():
        rec: list[dict] = []
        depth = Image.open(root / "depth_input.png") if name == "controlnet_run" else None
        res = pipe.generate(Image.open(root / "input_rgba.png"), seeds=seed, reference_seeds=ref_seed,
                            guidance_scale=scale, num_inference_steps=steps, timestep_spacing=spacing,
                            depth_image=depth, progress=False, on_step=rec.append)
        out[name] = (dict(np.load(root / f"{name}.npz")), rec, res)
    return out


# ------------------------------------------------------------------ schedules
@pytest.mark.parametrize("spacing", ["linspace", "trailing", "leading"])
@pytest.mark.parametrize("steps", [3, 28, 36, 75])
def test_euler_schedule_matches(root, spacing, steps):
    ref = np.load(root / "schedules.npz")
    sched = euler_ancestral(None, spacing)
    sched.set_timesteps(steps)
    close(sched.timesteps, ref[f"{spacing}_{steps}_timesteps"], 0, what="timesteps")
    close(sched.sigmas, ref[f"{spacing}_{steps}_sigmas"], 0, what="sigmas")
    assert float(sched.init_noise_sigma) == float(ref[f"{spacing}_{steps}_init_noise_sigma"])


@pytest.mark.parametrize("kind", ["linear", "scaled_linear"])
def test_alphas_and_log_snr_match(root, kind):
    ref = np.load(root / "schedules.npz")
    abar = alphas_cumprod(kind)
    close(abar, ref[f"alphas_cumprod_{kind}"], 0, what="abar")
    close(log_snr(abar), ref[f"log_snr_{kind}"], 0, what="log snr")


# ------------------------------------------------------------------ reference attention alone
def test_reference_attention_processor_every_mode(root):
    from diffusers.models.attention_processor import Attention

    r = dict(np.load(root / "ref_attn_proc.npz"))
    attn = Attention(query_dim=32, heads=int(r["heads"]), dim_head=int(r["dim_head"]), bias=False, out_bias=True)
    names = {"attn_to_q_weight": "to_q.weight", "attn_to_k_weight": "to_k.weight", "attn_to_v_weight": "to_v.weight",
             "attn_to_out_0_weight": "to_out.0.weight", "attn_to_out_0_bias": "to_out.0.bias"}
    attn.load_state_dict({v: t(r[k]) for k, v in names.items()})
    attn.set_processor(ReferenceAttnProcessor(True, "blk.attn1.processor"))
    x, ref = t(r["x"]), t(r["ref_hidden"])
    with torch.no_grad():
        store: dict = {}
        close(attn(ref, mode="w", ref_dict=store), r["out_write_pass"], 1e-6, what="write")
        close(store["blk.attn1.processor"], r["stored_ref"], 0, what="stored")
        close(attn(x, mode="m", ref_dict=store), r["out_merge"], 1e-6, what="merge")
        assert "blk.attn1.processor" in store  # merge keeps the entry
        close(attn(x, mode="r", ref_dict=store), r["out_read"], 1e-6, what="read")
        assert store == {}  # read pops it
        store = {"blk.attn1.processor": t(r["ref_for_cfg"])}
        close(attn(x, mode="r", ref_dict=store, is_cfg_guidance=True), r["out_read_is_cfg_guidance"], 1e-6,
              what="is_cfg_guidance")
        attn.set_processor(ReferenceAttnProcessor(False, "blk.attn2.processor"))
        close(attn(x, mode="r", ref_dict={}), r["out_disabled"], 1e-6, what="disabled")


def test_processor_table_and_wrapper_keys_match_manifests(root, pipe):
    unet = pipe.model.unet.unet
    rows = [line.split("\t") for line in (root / "manifests/attn_processors.tsv").read_text().splitlines()[1:]]
    assert {name: flag == "1" for name, flag in rows} == {n: p.enabled for n, p in unet.attn_processors.items()}
    ref_keys = [line.split("\t")[0] for line in (root / "manifests/refonly_wrapper_state_dict.tsv").read_text().splitlines()]
    ref_keys = {k for k in ref_keys if k.startswith("unet.")}
    assert set(pipe.model.unet.state_dict()) == ref_keys


# ------------------------------------------------------------------ conditioning
@pytest.mark.parametrize("name", ["pipeline_run_cfg", "pipeline_run_nocfg"])
def test_conditioning_matches(root, pipe, name):
    r = dict(np.load(root / f"{name}.npz"))
    m = pipe.model
    image = Image.open(root / "input_rgba.png")
    assert np.array_equal(np.asarray(image), r["input_rgba"])
    rgb = to_rgb(image, 127)
    assert np.array_equal(np.asarray(rgb), r["input_rgb_composited"])
    close(m.vae_processor(rgb)[None], r["vae_input"], 0, what="vae input")
    close(m.clip_processor(rgb)[None], r["clip_pixel_values"], 0, what="clip input")
    with torch.no_grad():
        for ids, states in zip(r["text_input_ids"], r["text_last_hidden_state"]):
            assert torch.equal(m.tokenize(""), t(ids))
            close(m.encode_prompt(""), states, 1e-5, what="text states")
        emb = m.image_embeds(t(r["clip_pixel_values"]))
        close(emb, r["clip_image_embeds"], 1e-5, what="clip embedding")
        close(m.ramping_coefficients, r["ramping_coefficients"], 0, what="ramp")
        ctx = m.ramped_context(t(r["text_last_hidden_state"][-1]), t(r["clip_image_embeds"]))
        close(ctx, r["encoder_hidden_states"][-1:], 0, what="ramped context from recorded inputs")
        post = m.posterior(t(r["vae_input"]))
        close(post.mean, r["cond_posterior_mean"], 2e-4, what="posterior mean")
        close(post.std, r["cond_posterior_std"], 2e-4, what="posterior std")
        if "negative_vae_input" in r:
            assert not r["negative_vae_input"].any()
            neg = m.posterior(torch.zeros(1, 3, 512, 512))
            close(neg.mean, r["negative_posterior_mean"], 2e-4, what="negative posterior mean")
            close(neg.std, r["negative_posterior_std"], 2e-4, what="negative posterior std")
        # the public path: the reference stream replays the official global-RNG draws
        ref_seed, seed, scale = RUNS[name][:3]
        from zero123plus.sampling import NoiseStreams

        noise = NoiseStreams.from_seeds([ref_seed], [seed])
        cond = pipe.encode([rgb], noise, scale)
        close(cond.context, r["encoder_hidden_states"], 1e-5, what="context")
        close(cond.ref_latents, r["cond_lat_batch"], 2e-4, what="reference latents")
    g = torch.Generator().manual_seed(ref_seed)
    close(torch.randn(1, 4, 64, 64, generator=g), r["cond_posterior_eps"], 0, what="posterior eps (stream)")
    if "negative_posterior_eps" in r:
        close(torch.randn(1, 4, 64, 64, generator=g), r["negative_posterior_eps"], 0, what="negative eps (stream)")


# ------------------------------------------------------------------ single wrapper calls
def test_single_unet_calls_match(root, pipe):
    r = dict(np.load(root / "unet_single.npz"))
    m = pipe.model
    sched = euler_ancestral(m.scheduler_config, "trailing")
    sched.set_timesteps(3)
    ts = sched.timesteps[1]
    assert float(ts) == float(r["timestep"]) and float(sched.sigmas[1]) == pytest.approx(float(r["sigma"]), abs=0)
    with torch.no_grad():
        for kind, rows in (("cfg", slice(0, 2)), ("nocfg", slice(1, 2))):
            sched._step_index = None
            x = t(r["x"]).expand(rows.stop - rows.start, -1, -1, -1)
            xs = sched.scale_model_input(x, ts)
            close(xs, r[f"{kind}_scaled_input"], 0, what=f"{kind} scaled input")
            cond_lat = t(r["cond_lat"])[rows]
            noise = torch.randn(cond_lat.shape, generator=torch.Generator().manual_seed(5))
            close(noise, r[f"{kind}_ref_noise"], 0, what=f"{kind} reference noise")
            ref = m.noised_reference(cond_lat, noise, sched.sigmas[sched.step_index])
            close(ref, r[f"{kind}_ref_pass_sample"], 1e-6, what=f"{kind} reference pass input")
            v = m.predict_v(xs, ts, t(r["encoder_hidden_states"])[rows], ref)
            close(v, r[f"{kind}_v"], 1e-4, what=f"{kind} v")
            if kind == "cfg":
                close(v[:1] + 4.0 * (v[1:] - v[:1]), r["cfg_guided_v_scale4"], 1e-4, what="guided")
            else:
                plain = m.unet.unet(xs, ts, t(r["encoder_hidden_states"])[rows], return_dict=False)[0]
                close(plain, r["plain_unet_nocfg_v"], 1e-4, what="plain UNet (no reference)")
                assert (plain - v).abs().max() > 0.05  # the reference path is visible


# ------------------------------------------------------------------ full runs
@pytest.mark.parametrize("name", list(RUNS))
def test_full_run_matches(runs, name):
    r, rec, res = runs[name]
    steps = len(r["timesteps"])
    assert len(rec) == steps
    stack = lambda key: torch.stack([x[key].float() for x in rec])  # noqa: E731
    close(torch.stack([x["t"] for x in rec]), r["timesteps"], 0, what="timesteps")
    close(torch.stack([x["sigma"] for x in rec]), r["sigmas"][:steps], 0, what="sigmas")
    close(stack("ref_noise"), r["ref_noise"], 0, what="reference noise (replayed stream)")
    close(stack("reference"), r["ref_pass_sample"], 1e-4, 1e-4, what="reference pass input")
    rel = dict(atol=1e-4, rtol=1e-4)
    close(stack("unet_input"), r["unet_input"], **rel, what="unet input")
    close(stack("v"), r["unet_out"], **rel, what="v")
    close(stack("guided_v"), r["guided_v"], **rel, what="guided v")
    close(stack("latents_before"), r["latents_before_step"], **rel, what="latents before step")
    close(stack("pred_x0"), r["pred_x0"], **rel, what="x0")
    close(stack("latents_after"), r["latents_after_step"], **rel, what="latents after step")
    close(res.latents, r["final_latents_scaled"], 1e-3, what="final latents")
    close(rec[0]["latents_before"], t(r["initial_noise"]) * t(r["sigmas"][0]), 0, what="initial latents")
    diff = np.abs(res.grids[0].numpy().astype(int) - r["output_image_uint8"].astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.99, (diff.max(), (diff == 0).mean())


def test_sampling_stream_replays_initial_and_ancestral_noise(root):
    """Our sampling stream (a seeded CPU generator per image) draws the official generator's numbers in order."""
    from zero123plus.sampling import NoiseStreams

    for name, (ref_seed, seed, *_) in RUNS.items():
        r = np.load(root / f"{name}.npz")
        noise = NoiseStreams.from_seeds([ref_seed], [seed])
        close(noise.sampling_draw((4, 24, 16)), r["initial_noise"], 0, what=f"{name} initial noise")
        for k in range(len(r["timesteps"])):
            close(noise.sampling_draw((4, 24, 16)), r["ancestral_noise"][k], 0, what=f"{name} step {k} noise")


@pytest.mark.parametrize("name", list(RUNS))
def test_decode_matches(root, pipe, name):
    r = dict(np.load(root / f"{name}.npz"))
    z = t(r["final_latents_scaled"])
    close(unscale_latents(z) / pipe.model.vae.config.scaling_factor, r["vae_decode_input"], 1e-5, what="decode input")
    with torch.no_grad():
        out = pipe.model.decode(z)
    close(out, r["vae_decode_output"], 1e-3, what="decoder output")
    img = to_uint8(unscale_image(t(r["vae_decode_output"])))[0]
    assert np.abs(img.numpy().astype(int) - r["output_image_uint8"].astype(int)).max() <= 1


def test_controlnet_inputs_and_residuals(root, pipe, runs):
    r, rec, _ = runs["controlnet_run"]
    cond = pipe.control_tensor(Image.open(root / "depth_input.png"))
    assert np.array_equal(np.asarray(Image.open(root / "depth_input.png").convert("RGB")), r["depth_input_uint8"])
    close(cond[0], r["controlnet_cond"], 1e-7, what="controlnet_cond")
    scale = float(r["conditioning_scale"])
    assert scale == pipe.cfg.sampling.controlnet_scale
    with torch.no_grad():
        for k in range(len(r["timesteps"])):
            down, mid = pipe.model.control_residuals(t(r["unet_input"][k]), t(r["timesteps"][k]),
                                                     t(r["encoder_hidden_states"]), cond, scale)
            for j, d in enumerate(down):
                close(d, r[f"controlnet_step{k}_down{j:02d}"], 1e-4, what=f"step {k} down {j}")
            close(mid, r[f"controlnet_step{k}_mid"], 1e-4, what=f"step {k} mid")
