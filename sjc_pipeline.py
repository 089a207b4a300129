"""Zero-1-to-3's own 3D reconstruction (official ``3drec``: Score Jacobian Chaining on a latent voxel field).

Composes two stages, as ``pipeline.py`` does for One-2-3-45: the field / renderer / cameras / export of
``score_distillation`` and the Zero123 score of ``zero123.score``. Spec: ``../shared/docs/zero123-3d-optimisation-spec.md``
section 1; parity fixtures ``../shared/fixtures/zero123_3drec_parity``.

One iteration (official order; weights of the README command / ``full_config.yml``):

1. render the input view, VAE-decode it to 256 px, ``view_weight * mean((decoded - image)^2)`` (float64), plus
   ``depth_smooth_weight * input_depth_smooth_factor * smoothness(input depth)``;
2. render the sampled training view ``y`` and a near view 0.05 away:
   ``near_view_weight * (mean |y_near - y| + mean |d_near - d|)``;
3. SJC score of ``y`` (noise level uniform over ``us[30:-10]``, guidance 100): ``y.backward(-g)``;
4. emptiness (weight 0 officially) and, from ``smooth_start_fraction * n_steps`` on, the sampled view's depth
   smoothness; one Adamax step (lr 0.05, background texture 1e-4).

Randomness: one NumPy ``RandomState(seed)`` draws all training eyes first, then per step the near eye and the
noise level (the official global-RNG order); one torch generator (seed) draws the unused ``same_noise`` of the
official loop, then the score noise per step. Both are saved in checkpoints, so a resumed run equals an
uninterrupted one.

Run: ``python scripts/optimise_sjc.py photo.png --config configs/sjc/official.yaml`` (see README).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from dataclasses import field as dfield
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from data import conventions as conv
from data.cameras import Cameras
from data.config import ConfigError, load_config
from data.device import resolve_device
from data.io import atomic_path
from data.layout import RelativePose
from score_distillation import (
    CameraConfig, CameraSampler, ExportConfig, FieldConfig, VoxelField, depth_smoothness, emptiness,
    export_density_mesh, look_at_pose, near_view_loss, render_cameras, render_latent,
)
from zero123.pose import pose_vector
from zero123.score import SJCScore

REPO_ROOT = Path(__file__).resolve().parent


class SJCError(ValueError):
    """A bad input or setting of the SJC optimisation (the message names it and the fix)."""


@dataclass
class LossWeights:
    """Official weights (README command / ``full_config.yml``; the ``SJC`` class defaults 1e5 are not used).

    Attributes:
        view: input-view RGB MSE (10 000).
        depth_smooth: sampled-view depth smoothness (10 000); the input view gets ``depth_smooth *
            input_depth_smooth_factor`` (x 0.1) at every step.
        near_view: near-view consistency (10 000).
        emptiness: negative emptiness (0), times ``1 + emptiness_multiplier * i / n_steps``.
        smooth_start_fraction: the sampled-view depth smoothness is applied from step ``fraction * n_steps``.
    """

    view: float = 1e4
    depth_smooth: float = 1e4
    input_depth_smooth_factor: float = 0.1
    near_view: float = 1e4
    emptiness: float = 0.0
    emptiness_scale: float = 10.0
    emptiness_multiplier: float = 20.0
    smooth_start_fraction: float = 0.5


@dataclass
class SDSConfig:
    """threestudio-style SDS prior (``--method sds``), on the same field and loop (defaults: threestudio
    ``configs/zero123.yaml``; ``stable_zero123: true`` switches to Stable Zero123's pose code and t schedule).

    Attributes:
        guidance_scale: classifier-free guidance (3).
        min_step_percent, max_step_percent: timestep window ramps ``[start_step, v0, v1, end_step]`` (fractions of
            1000; threestudio ``C()``).
        loss_weight: multiplies threestudio's SDS loss next to the 3drec weights (1e4). Not tuned on real weights:
            1000 was chosen on the oracle-prior test (tests/score_distillation/test_oracle_prior.py: volume IoU
            0.00 at 100, 0.99 at 1000, 1.00 at 3000 after 300 steps), where an oracle SDS gradient is about 10x
            weaker than the oracle SJC gradient (no 1/sigma). threestudio's own lambda_sds is 0.1 next to its rgb
            weight 500.
        stable_zero123: pose code with the input's absolute polar angle in the 4th slot (Stable Zero123 weights).
    """

    guidance_scale: float = 3.0
    min_step_percent: list[float] = dfield(default_factory=lambda: [0, 0.4, 0.2, 200])
    max_step_percent: list[float] = dfield(default_factory=lambda: [0, 0.85, 0.5, 200])
    loss_weight: float = 1000.0
    stable_zero123: bool = False


#: Stable Zero123's timestep windows (threestudio ``stable-zero123.yaml``).
STABLE_ZERO123_STEPS = ([50, 0.7, 0.3, 200], [50, 0.98, 0.8, 200])


@dataclass
class SJCConfig:
    """Settings of one SJC run (``configs/sjc/official.yaml`` = these defaults)."""

    label: str = ""
    #: ``sjc`` (official 3drec score) or ``sds`` (threestudio-style SDS through the VAE, section ``sds``).
    method: str = "sjc"
    n_steps: int = 10000
    lr: float = 0.05
    bg_lr: float = 1e-4
    guidance_scale: float = 100.0
    var_red: bool = True
    noise_level_range: list[int] = dfield(default_factory=lambda: [30, -10])
    seed: int = 0
    #: Polar angle (from +z, deg) of the input camera; official scenes give elevation 20 deg, i.e. polar 70.
    input_polar_deg: float = 70.0
    #: Absolute azimuth of the input camera (the project's convention: 30 deg).
    input_azimuth_deg: float = conv.INPUT_AZIMUTH_DEG
    train_view: bool = True
    weights: LossWeights = dfield(default_factory=LossWeights)
    sds: SDSConfig = dfield(default_factory=SDSConfig)
    field: FieldConfig = dfield(default_factory=FieldConfig)
    cameras: CameraConfig = dfield(default_factory=CameraConfig)
    export: ExportConfig = dfield(default_factory=ExportConfig)
    #: Zero123 geometry (YAML) and weights: a path / hub id, or null for random weights (tiny config, tests).
    zero123_config: str = "configs/zero123/zero123_xl.yaml"
    zero123_weights: Optional[str] = "default"
    #: ``"white_vae"``: the background latent is the VAE encoding (mode x scale) of a white image; or a path to
    #: a (4, h, w) / (N, 4, h, w) tensor file (official ``data/vae_latents.pt``: its mean over N is used).
    background: str = "white_vae"
    checkpoint_every: int = 1000
    preview_every: int = 1000
    progress: bool = True
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` (data/device.py).
    device: str = "auto"

    def validate(self) -> "SJCConfig":
        if self.method not in ("sjc", "sds"):
            raise ConfigError(f"method must be 'sjc' or 'sds', got '{self.method}'")
        if self.n_steps < 1:
            raise ConfigError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.input_polar_deg < 180:
            raise ConfigError(f"input_polar_deg must lie in (0, 180), got {self.input_polar_deg}")
        if self.cameras.render_size < 2:
            raise ConfigError(f"cameras.render_size must be >= 2, got {self.cameras.render_size}")
        r0, r1 = self.cameras.radius_range
        if not 0 < r0 <= r1:
            raise ConfigError(f"cameras.radius_range must be 0 < min <= max, got {self.cameras.radius_range}")
        if r0 <= math.sqrt(3) * self.field.bbox_len or self.cameras.radius <= math.sqrt(3) * self.field.bbox_len:
            raise ConfigError("every camera must lie outside the field's box: cameras.radius and radius_range "
                              f"must exceed sqrt(3) * field.bbox_len = {math.sqrt(3) * self.field.bbox_len:.3f}")
        return self


def load_sjc_config(*sources, overrides=()) -> SJCConfig:
    return load_config(SJCConfig, *sources, overrides=overrides).validate()


def input_pose(cfg: SJCConfig) -> np.ndarray:
    """(4, 4) OpenGL c2w of the input camera: ``input_polar_deg``, ``input_azimuth_deg``, ``cameras.radius``."""
    eye = conv.spherical_to_position(cfg.input_polar_deg, cfg.input_azimuth_deg, cfg.cameras.radius).numpy()
    return look_at_pose(eye)


def pose_code(input_camera: Cameras, target_camera: Cameras) -> torch.Tensor:
    """(1, 4) Zero123 pose code of ``target`` relative to ``input`` (official ``get_T``)."""
    return pose_vector(RelativePose.between(input_camera, target_camera))


def stable_pose_code(input_camera: Cameras, target_camera: Cameras) -> torch.Tensor:
    """(1, 4) Stable Zero123 pose code: the 4th entry is the input's absolute polar angle (rad)."""
    from zero123.pose import stable_zero123_pose_vector

    polar = float(input_camera.spherical()[0][0])
    return stable_zero123_pose_vector(RelativePose.between(input_camera, target_camera), polar)


@dataclass
class StepRecord:
    """What one iteration computed (losses as floats; tensors only when recorded)."""

    step: int
    losses: dict
    sigma: float
    tensors: dict = dfield(default_factory=dict)


class SJCOptimiser:
    """The official loop on one input image.

    Args:
        cfg: settings.
        score: a :class:`zero123.score.SJCScore` (its image is set here).
        decode: latents (1, 4, h, w) -> image (1, 3, 8h, 8w) in [-1, 1], differentiable (the Zero123 VAE decoder).
        image: (1, 3, 256, 256) input in [-1, 1] (float64 kept for the RGB loss, as officially); any (1, C, H, W)
            target of ``decode`` works (tests use an identity decoder on latents).
        pose: (4, 4) OpenGL c2w of the input camera.
        background: (4, h, w) background latent of the renderer.
        field: an initial field (default: a new one drawn from the torch generator's stream after ``seed``).
    """

    def __init__(self, cfg: SJCConfig, score: SJCScore, decode: Callable[[torch.Tensor], torch.Tensor],
                 image: torch.Tensor, pose: np.ndarray, background: torch.Tensor,
                 field_: VoxelField | None = None):
        self.cfg = cfg
        self.score, self.decode = score, decode
        self.device = resolve_device(cfg.device)
        if image.ndim != 4 or image.shape[0] != 1:
            raise SJCError(f"the input image must be a (1, 3, H, W) tensor in [-1, 1], got {tuple(image.shape)}")
        self.image = image.to(self.device, torch.float64)
        self.score.set_image(self.image.float())
        self.background = background.to(self.device, torch.float32)
        self.input_pose = np.asarray(pose, dtype=np.float64)
        cams = cfg.cameras
        self.input_camera = render_cameras(self.input_pose, cams.render_size, cams.fov_deg)
        if field_ is None:
            field_ = VoxelField(cfg.field, generator=torch.Generator().manual_seed(cfg.seed))
        self.field = field_.to(self.device)
        self.optimiser = torch.optim.Adamax(self.field.param_groups(cfg.lr, cfg.bg_lr), lr=cfg.lr)
        self.rng = np.random.RandomState(cfg.seed)
        self.sampler = CameraSampler(cams, self.rng, cfg.n_steps)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        torch.randn(1, 4, cams.render_size, cams.render_size, generator=self.generator)  # official unused same_noise
        self.step_index = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ one iteration
    def step(self, record: bool = False) -> StepRecord:
        cfg, w, i = self.cfg, self.cfg.weights, self.step_index
        rend = lambda pose: render_latent(  # noqa: E731
            self.field, render_cameras(pose, cfg.cameras.render_size, cfg.cameras.fov_deg), self.background)
        terms: dict[str, torch.Tensor] = {}
        tensors: dict[str, torch.Tensor] = {}
        if cfg.train_view:
            inp = rend(self.input_pose)
            decoded = self.decode(inp.latent)
            rgb = ((decoded.double() - self.image) ** 2).mean()
            terms["input_smooth"] = depth_smoothness(inp.depth) * w.depth_smooth * w.input_depth_smooth_factor
            terms["rgb"] = rgb * float(w.view)
            if record:
                tensors.update(input_latent=inp.latent, input_decoded=decoded, input_depth=inp.depth, rgb_loss=rgb)
        pose = self.sampler.pose(i)
        view = rend(pose)
        near_eye, near_pose = self.sampler.near_pose(i)
        near = rend(near_pose)
        terms["near"] = near_view_loss(view, near) * w.near_view
        target = render_cameras(pose, cfg.cameras.render_size, cfg.cameras.fov_deg)
        code = pose_code(self.input_camera, target)
        if cfg.method == "sds":
            if cfg.sds.stable_zero123:
                code = stable_pose_code(self.input_camera, target)
            rgb01 = (self.decode(view.latent).float() + 1) / 2
            sds_loss, info = self.score.loss(rgb01, code.to(self.device), i, self.generator)
            prior = sds_loss * cfg.sds.loss_weight
            sigma, g, den, noise = torch.tensor(float("nan")), None, None, None
            prior_info = {"sds": float(sds_loss.detach()), "t": float(info["t"][0])}
        else:
            sigma = self.score.sample_sigma(self.rng)
            noise = torch.randn(view.latent.shape, generator=self.generator).to(self.device)
            g, den = self.score.gradient(view.latent, sigma.to(self.device), noise, code.to(self.device))
            prior = -(g.detach() * view.latent).sum()  # gradient -g on the render, as y.backward(-g)
            prior_info = {"sjc_grad_norm": float(g.norm())}
        if w.emptiness:
            terms["emptiness"] = w.emptiness * emptiness(view.weights, w.emptiness_scale) * (
                1.0 + w.emptiness_multiplier * i / cfg.n_steps)
        smooth = depth_smoothness(view.depth) * w.depth_smooth
        smooth_on = i >= w.smooth_start_fraction * cfg.n_steps
        if smooth_on:
            terms["smooth"] = smooth
        total = prior + sum(terms.values())
        total.backward()
        if record:
            tensors.update(
                latent=view.latent, depth=view.depth, near_eye=near_eye, near_pose=near_pose, near_latent=near.latent,
                T=code[0], sigma=sigma.reshape(()), noise=noise, Ds=den.denoised if den is not None else None,
                sjc_grad=g, smooth=smooth,
                smooth_applied=smooth_on,
                grads={n: (p.grad.detach().clone() if p.grad is not None else None)
                       for n, p in self.field.named_parameters()},
            )
        self.optimiser.step()
        self.optimiser.zero_grad()
        losses = {k: float(v.detach()) for k, v in terms.items()}
        losses.update(prior_info)
        if "smooth" not in losses:
            losses["smooth_off"] = float(smooth.detach())
        if cfg.method == "sjc":
            losses["sigma"] = float(sigma.reshape(-1)[0])
        self.history.append({"step": i, **losses})
        self.step_index += 1
        return StepRecord(i, losses, float(sigma.reshape(-1)[0]), tensors)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "step": self.step_index, "field": self.field.state_dict(), "optimiser": self.optimiser.state_dict(),
            "numpy_rng": self.rng.get_state(), "torch_generator": self.generator.get_state(),
            "history": list(self.history), "config": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        self.field.load_state_dict(state["field"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.rng.set_state(state["numpy_rng"])
        self.generator.set_state(state["torch_generator"])
        self.step_index = int(state["step"])
        self.history = list(state["history"])

    def save_checkpoint(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return Path(path)

    def load_checkpoint(self, path: str | Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)  # RNG states must stay CPU tensors
        saved = state.get("config", {})
        for key in ("method", "n_steps", "seed", "lr"):
            if key in saved and saved[key] != getattr(self.cfg, key):
                raise SJCError(f"checkpoint {path} was made with {key}={saved[key]}, this run has "
                               f"{key}={getattr(self.cfg, key)}: resume with the same settings or start afresh")
        self.load_state_dict(state)

    # ------------------------------------------------------------------ the loop
    def run(self, checkpoint: str | Path | None = None, preview: Callable[[int], None] | None = None,
            stop_after: int | None = None) -> list[dict]:
        """Run from the current step to ``n_steps`` (or ``stop_after`` more steps), with a progress bar showing the
        losses, a checkpoint every ``checkpoint_every`` steps (and at the end), ``preview(step)`` every
        ``preview_every`` steps."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        end = cfg.n_steps if stop_after is None else min(cfg.n_steps, self.step_index + stop_after)
        bar = tqdm(total=cfg.n_steps, initial=self.step_index, disable=not cfg.progress, desc="SJC")
        while self.step_index < end:
            rec = self.step()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in rec.losses.items() if k in ("rgb", "near", "smooth")},
                            refresh=False)
            done = self.step_index
            if checkpoint is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                self.save_checkpoint(checkpoint)
            if preview is not None and cfg.preview_every and done % cfg.preview_every == 0:
                preview(done)
        bar.close()
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return self.history

    @torch.no_grad()
    def render_rgb(self, pose: np.ndarray) -> torch.Tensor:
        """(3, 8H, 8W) decoded render in [0, 1] of the field from ``pose``."""
        c = self.cfg.cameras
        out = render_latent(self.field, render_cameras(pose, c.render_size, c.fov_deg), self.background)
        return ((self.decode(out.latent)[0].float() + 1) / 2).clamp(0, 1).cpu()


# ---------------------------------------------------------------------------------------------- building
def white_background_latent(model, size: int) -> torch.Tensor:
    """(4, size, size): VAE posterior mode of a white 8size-px image, times the latent scale factor."""
    px = size * 8
    with torch.no_grad():
        white = torch.ones(1, 3, px, px, device=next(model.parameters()).device)
        return (model.vae.encode(white).latent_dist.mode() * model.cfg.scale_factor)[0].float().cpu()


def load_background(cfg: SJCConfig, model) -> torch.Tensor:
    if cfg.background == "white_vae":
        return white_background_latent(model, cfg.cameras.render_size)
    path = Path(cfg.background)
    if not path.is_file():
        raise SJCError(f"background: {path} does not exist (use 'white_vae' or the official data/vae_latents.pt)")
    bg = torch.load(path, map_location="cpu", weights_only=True).float()
    return bg.mean(0) if bg.ndim == 4 else bg


def build_zero123(cfg: SJCConfig):
    """The Zero123 pipeline (EMA weights when the file has them); random weights when ``zero123_weights`` is null.

    A missing weight file raises :class:`data.weights.MissingWeightsError` before anything else runs."""
    from data.weights import resolve_all
    from zero123 import Zero123Pipeline, load_zero123_config

    zcfg_path = Path(cfg.zero123_config)
    if not zcfg_path.is_absolute():
        zcfg_path = REPO_ROOT / zcfg_path
    zcfg = load_zero123_config(zcfg_path)
    device = resolve_device(cfg.device)
    if cfg.zero123_weights is None:
        return Zero123Pipeline.from_config(zcfg, device=device, seed=cfg.seed)
    path = resolve_all({"zero123": cfg.zero123_weights})["zero123"]
    geometry = {"config": zcfg} if Path(path).is_file() else {}
    return Zero123Pipeline.from_pretrained(str(path), device=device, **geometry)


def image_tensor(image_01: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W, 3) or (1, 3, H, W) RGB on white in [0, 1] -> (1, 3, H, W) float64 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(image_01) if not isinstance(image_01, torch.Tensor) else image_01)
    if x.ndim == 3 and x.shape[-1] == 3:
        x = x.permute(2, 0, 1)[None]
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise SJCError(f"expected an (H, W, 3) or (1, 3, H, W) RGB image, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise SJCError(f"expected float RGB in [0, 1], got {x.dtype} (divide uint8 images by 255)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.2 or hi > 1.2:  # cubic resampling may overshoot [0, 1] a little (the official input does)
        raise SJCError(f"expected RGB values in [0, 1], got [{lo:.3f}, {hi:.3f}]")
    return x.double() * 2 - 1


def make_score(cfg: SJCConfig, model):
    """The prior of ``cfg.method``: :class:`SJCScore` or :class:`zero123.score.SDSScore`."""
    if cfg.method == "sds":
        from zero123.score import SDSScore

        lo, hi = cfg.sds.min_step_percent, cfg.sds.max_step_percent
        if cfg.sds.stable_zero123 and (lo, hi) == (SDSConfig().min_step_percent, SDSConfig().max_step_percent):
            lo, hi = STABLE_ZERO123_STEPS
        return SDSScore(model, cfg.sds.guidance_scale, lo, hi)
    return SJCScore(model, cfg.guidance_scale, cfg.var_red, tuple(cfg.noise_level_range))


def optimiser_for_image(cfg: SJCConfig, image_01, pipe=None) -> SJCOptimiser:
    """An :class:`SJCOptimiser` for a preprocessed 256 px RGB-on-white image in [0, 1]."""
    cfg.validate()
    pipe = pipe if pipe is not None else build_zero123(cfg)
    model = pipe.model
    size = model.cfg.vae.sample_size
    img = image_tensor(image_01)
    if img.shape[-2:] != (size, size):
        raise SJCError(f"the input image must be {size}x{size} (Zero123's input size), got {tuple(img.shape[-2:])}")
    if cfg.cameras.render_size * 8 != size:
        raise SJCError(f"cameras.render_size ({cfg.cameras.render_size}) must be Zero123's latent size "
                       f"({size // 8}) for the SJC score")
    score = make_score(cfg, model)
    return SJCOptimiser(cfg, score, model.decode_latents, img, input_pose(cfg), load_background(cfg, model))


def write_outputs(opt: SJCOptimiser, out_dir: Path, mesh_format: str = "ply", extra: dict | None = None) -> dict:
    """mesh.<format> (world frame of the project: +z up, input camera at ``input_azimuth_deg``, scaled by
    ``CAMERA_RADIUS / cameras.radius`` so the input camera sits at the rig's radius), turntable.png (CPU renders of
    the mesh, as infer.py), renders.png (decoded field renders), result.json."""
    from PIL import Image

    from data.conventions import EXPORT_FRAME_FLIPS_WINDING, EXPORT_FRAME_FORMATS, EXPORT_FRAME_FROM_WORLD

    cfg = opt.cfg
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = export_density_mesh(opt.field, cfg.export)
    scale = conv.CAMERA_RADIUS / cfg.cameras.radius
    mesh = exported.world_mesh(scale)
    mesh_path = out_dir / f"mesh.{mesh_format}"
    if mesh.num_faces == 0:
        np.save(out_dir / "density.npy", opt.field.density.detach().cpu().numpy())
    else:
        if mesh_path.suffix in EXPORT_FRAME_FORMATS:
            mesh = mesh.transformed(torch.as_tensor(EXPORT_FRAME_FROM_WORLD, dtype=torch.float32),
                                    flip_winding=EXPORT_FRAME_FLIPS_WINDING)
        mesh.export(mesh_path)
    turntable = None
    if mesh.num_faces:
        try:
            from infer import turntable as mesh_turntable  # the feed-forward method's preview, same frame

            mesh_turntable(exported.world_mesh(scale), cfg.input_polar_deg).save(out_dir / "turntable.png")
            turntable = {"file": "turntable.png", "frames": 8, "polar_deg": cfg.input_polar_deg}
        except Exception as exc:  # the CPU renderer needs EGL/OSMesa or embree; the mesh itself is still valid
            turntable = {"error": f"turntable preview not rendered: {type(exc).__name__}: {exc}"}
    views = [opt.render_rgb(input_pose(cfg))]
    for az in (90, 180, 270):
        eye = conv.spherical_to_position(cfg.input_polar_deg, cfg.input_azimuth_deg + az, cfg.cameras.radius)
        views.append(opt.render_rgb(look_at_pose(eye.numpy())))
    strip = torch.cat(views, dim=2).permute(1, 2, 0).numpy()
    Image.fromarray((strip * 255).astype(np.uint8)).save(out_dir / "renders.png")
    result = {
        "method": cfg.method,
        "label": cfg.label,
        "random_weights": cfg.zero123_weights is None,
        "steps": opt.step_index,
        "mesh": mesh_path.name if mesh.num_faces else None,
        "mesh_frame": "world +z up (data.conventions), input camera at azimuth "
                      f"{cfg.input_azimuth_deg} deg, polar {cfg.input_polar_deg} deg, radius {conv.CAMERA_RADIUS}",
        "mesh_vertices": int(mesh.num_vertices), "mesh_faces": int(mesh.num_faces),
        "density_threshold": exported.threshold,
        "turntable": turntable,
        "losses": opt.history,
        "config": asdict(cfg),
        **(extra or {}),
    }
    with atomic_path(out_dir / "result.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str))
    return result


def predict_mesh(cfg: SJCConfig, image, pipe=None, polar_deg: float | None = None, progress: bool | None = None):
    """Image (path or PIL) -> (mesh in the world frame of ``write_outputs``, info dict): the benchmark entry point.

    ``polar_deg`` (known input polar angle) overrides ``cfg.input_polar_deg`` for this image."""
    from dataclasses import replace

    from data.preprocess import preprocess_image

    run_cfg = replace(cfg, input_polar_deg=cfg.input_polar_deg if polar_deg is None else float(polar_deg),
                      progress=cfg.progress if progress is None else progress)
    pre = preprocess_image(image, download=False)
    t0 = time.perf_counter()
    opt = optimiser_for_image(run_cfg, pre.image.astype(np.float32) / 255.0, pipe)
    opt.run()
    exported = export_density_mesh(opt.field, run_cfg.export)
    mesh = exported.world_mesh(conv.CAMERA_RADIUS / run_cfg.cameras.radius)
    if mesh.num_faces == 0:
        raise SJCError(f"the density never exceeds the export threshold {exported.threshold:.4g}: no surface "
                       "(too few steps, or lower export.threshold_mult)")
    info = {"method": run_cfg.method, "polar_deg": run_cfg.input_polar_deg, "steps": opt.step_index,
            "seconds": time.perf_counter() - t0, "density_threshold": exported.threshold,
            "random_weights": run_cfg.zero123_weights is None, "label": run_cfg.label,
            "random_weight_stages": ["zero123"] if run_cfg.zero123_weights is None else [],
            "final_losses": opt.history[-1] if opt.history else {},
            "mesh_frame": "pose.json world frame (input camera at azimuth 30 deg)"}
    return mesh, info
