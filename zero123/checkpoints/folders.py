"""Weight folders: our ``save_pretrained`` output and the two diffusers layouts in circulation.

* Format A (diffusers community pipeline, ``kxic/*``): ``cc_projection/`` with ``projection.{weight,bias}``.
* Format B (threestudio, ``bennyguo/*``, ``ashawkey/*``): ``clip_camera_projection/`` with ``proj.{weight,bias}``.
* Ours: Format A's component folders plus ``zero123_config.yaml`` (full config incl. sampler defaults).

Each component is read directly (``model_index.json`` of A/B points at custom code that breaks on current
diffusers), its geometry taken from its ``config.json``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from data.config import config_to_yaml
from data.io import atomic_directory
from zero123.checkpoints.errors import CheckpointError, describe_keys
from zero123.config import ImageEncoderConfig, ModelConfig, UNetConfig, VAEConfig, Zero123Config, load_zero123_config

log = logging.getLogger(__name__)

OUR_CONFIG = "zero123_config.yaml"
PROJECTORS = {"cc_projection": "projection.", "clip_camera_projection": "proj."}
_WEIGHT_FILES = {
    "unet": ("diffusion_pytorch_model", ("safetensors", "bin")),
    "vae": ("diffusion_pytorch_model", ("safetensors", "bin")),
    "cc_projection": ("diffusion_pytorch_model", ("safetensors", "bin")),
    "clip_camera_projection": ("diffusion_pytorch_model", ("safetensors", "bin")),
    "image_encoder": (("model", "pytorch_model"), ("safetensors", "bin")),
}


def is_weight_folder(path: Path) -> bool:
    return path.is_dir() and ((path / OUR_CONFIG).is_file() or (path / "model_index.json").is_file())


def projector_folder(root: Path) -> str:
    """``cc_projection`` (Format A / ours) or ``clip_camera_projection`` (Format B)."""
    found = [name for name in PROJECTORS if (root / name).is_dir()]
    if len(found) != 1:
        raise CheckpointError(
            f"{root}: expected exactly one pose-projection folder ('cc_projection' or 'clip_camera_projection'), "
            f"found {found or 'none'}"
        )
    return found[0]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"missing {path}")
    return json.loads(path.read_text())


def read_component_weights(folder: Path, component: str, variant: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of one component folder (safetensors preferred, ``variant`` e.g. ``fp16_ema``)."""
    stems, exts = _WEIGHT_FILES[component]
    stems = (stems,) if isinstance(stems, str) else stems
    candidates = [
        folder / (f"{s}.{variant}.{e}" if variant else f"{s}.{e}") for e in exts for s in stems
    ]
    for path in candidates:
        if path.is_file():
            try:
                if path.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    return load_file(str(path))
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any read failure means a broken file
                raise CheckpointError(f"{path}: cannot read weights ({exc}); the file is truncated or corrupt") from exc
    raise CheckpointError(f"{folder}: no weight file, looked for {', '.join(p.name for p in candidates)}")


def model_config_from_folder(root: Path) -> ModelConfig:
    """Our :class:`ModelConfig` from the component ``config.json`` files of a diffusers-layout folder."""
    u = _read_json(root / "unet" / "config.json")
    if u.get("use_linear_projection") or u.get("class_embed_type") or u.get("addition_embed_type"):
        raise CheckpointError(f"{root}/unet/config.json: not a Zero123 (SD-1 style) UNet")
    head = u.get("attention_head_dim", 8)
    if isinstance(head, list):
        if len(set(head)) != 1:
            raise CheckpointError(f"{root}/unet/config.json: per-block attention_head_dim {head} is not supported")
        head = head[0]
    unet = UNetConfig(
        block_out_channels=list(u["block_out_channels"]), down_block_types=list(u["down_block_types"]),
        up_block_types=list(u["up_block_types"]), layers_per_block=int(u.get("layers_per_block", 2)),
        attention_head_dim=int(head), cross_attention_dim=int(u.get("cross_attention_dim", 768)),
        norm_num_groups=int(u.get("norm_num_groups", 32)), sample_size=int(u.get("sample_size", 32)),
        in_channels=int(u["in_channels"]), out_channels=int(u.get("out_channels", 4)),
    )
    v = _read_json(root / "vae" / "config.json")
    vae = VAEConfig(
        block_out_channels=list(v["block_out_channels"]), layers_per_block=int(v.get("layers_per_block", 2)),
        latent_channels=int(v.get("latent_channels", 4)), norm_num_groups=int(v.get("norm_num_groups", 32)),
        sample_size=int(v.get("sample_size", 256)),
    )
    c = _read_json(root / "image_encoder" / "config.json")
    c = c.get("vision_config", c)
    clip = ImageEncoderConfig(**{k: int(c[k]) for k in ImageEncoderConfig.__dataclass_fields__ if k in c})
    scale = float(v.get("scaling_factor", 0.18215))
    sched_path = root / "scheduler" / "scheduler_config.json"
    beta = (0.00085, 0.012)
    if sched_path.is_file():
        s = json.loads(sched_path.read_text())
        if (s.get("beta_start"), s.get("beta_end")) != beta or s.get("beta_schedule", "scaled_linear") != "scaled_linear":
            log.warning(
                "%s has beta %s -> %s (%s); Zero123 was trained with 0.00085 -> 0.012 scaled_linear, which is "
                "used instead (a known converter bug writes 0.02 -> 0.085)",
                sched_path, s.get("beta_start"), s.get("beta_end"), s.get("beta_schedule"),
            )
    return ModelConfig(unet=unet, vae=vae, image_encoder=clip, scale_factor=scale)


def read_folder(root: Path, variant: str | None = None) -> tuple[Zero123Config, dict[str, dict[str, torch.Tensor]]]:
    """Config and per-component state dicts (our module names) of a weight folder."""
    if (root / OUR_CONFIG).is_file():
        cfg = load_zero123_config(root / OUR_CONFIG)
    else:
        cfg = Zero123Config(model=model_config_from_folder(root)).validate()
    proj_name = projector_folder(root)
    prefix = PROJECTORS[proj_name]
    proj = read_component_weights(root / proj_name, proj_name, variant)
    wanted = {prefix + "weight", prefix + "bias"}
    if set(proj) != wanted:
        raise CheckpointError(
            f"{root / proj_name}: expected keys {sorted(wanted)} ({'Format A' if prefix == 'projection.' else 'Format B'}), "
            f"got {describe_keys(proj)}"
        )
    clip = read_component_weights(root / "image_encoder", "image_encoder", variant)
    clip.pop("vision_model.embeddings.position_ids", None)  # saved by older transformers releases
    parts = {
        "unet": read_component_weights(root / "unet", "unet", variant),
        "vae": read_component_weights(root / "vae", "vae", variant),
        "image_encoder": clip,
        "cc_projection": {k[len(prefix):]: v for k, v in proj.items()},
    }
    return cfg, parts


def write_folder(root: str | Path, model, cfg: Zero123Config, safe_serialization: bool = True) -> Path:
    """Write ``model`` as a Format-A-compatible folder plus ``zero123_config.yaml`` (atomically)."""
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file

    root = Path(root)
    with atomic_directory(root) as tmp:
        model.unet.save_pretrained(tmp / "unet", safe_serialization=safe_serialization)
        model.vae.save_pretrained(tmp / "vae", safe_serialization=safe_serialization)
        model.image_encoder.save_pretrained(tmp / "image_encoder", safe_serialization=safe_serialization)
        DDIMScheduler(
            num_train_timesteps=cfg.model.num_train_timesteps, beta_start=cfg.model.beta_start,
            beta_end=cfg.model.beta_end, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
            steps_offset=1, prediction_type="epsilon",
        ).save_pretrained(tmp / "scheduler")
        (tmp / "cc_projection").mkdir()
        proj = {f"projection.{k}": v.detach().cpu().contiguous() for k, v in model.cc_projection.state_dict().items()}
        save_file(proj, str(tmp / "cc_projection" / "diffusion_pytorch_model.safetensors"))
        (tmp / "cc_projection" / "config.json").write_text(json.dumps({"_class_name": "CCProjection"}, indent=1))
        index = {
            "_class_name": "Zero123Pipeline", "cc_projection": ["zero123", "CCProjection"],
            "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
            "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }
        (tmp / "model_index.json").write_text(json.dumps(index, indent=1))
        (tmp / OUR_CONFIG).write_text(config_to_yaml(cfg))
    return root
