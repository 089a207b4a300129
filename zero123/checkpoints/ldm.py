"""Official LDM checkpoints (``zero123-xl.ckpt``, ``105000.ckpt``, ...) -> our module state dicts.

Everything is read from the single file: UNet (raw or EMA), VAE, the OpenAI CLIP image tower (mapped to the
transformers model, no second download) and ``cc_projection``. UNet and VAE go through diffusers' own
single-file conversion functions with our local config (``in_channels`` 8), so no hub access is needed.
Before converting, the key set and every shape are checked against the model geometry; problems raise
:class:`CheckpointError` naming the offending keys.
"""
from __future__ import annotations

import contextlib
import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from zero123.checkpoints import ldm_keys as K
from zero123.checkpoints.errors import CheckpointError, describe_keys
from zero123.config import ImageEncoderConfig, ModelConfig

LDM_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


def read_checkpoint_file(path: str | Path, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The flat tensor dict of an LDM checkpoint file (Lightning ``state_dict`` unwrapped).

    ``.safetensors`` files are read directly; pickled files with ``weights_only=True`` unless
    ``allow_unsafe_pickle`` (only for files from a trusted source).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: the file holds Python objects that weights-only loading refuses ({exc}). If the file comes "
            "from a trusted source, pass allow_unsafe_pickle=True."
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc}); the file is truncated or corrupt") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (or a Lightning dict with 'state_dict')")
    return obj


def infer_image_encoder_config(state: dict[str, torch.Tensor]) -> ImageEncoderConfig:
    """CLIP vision geometry from the checkpoint's own tensors (width, depth, patch, image size, projection)."""
    p = K.CLIP_PREFIX
    if p + "conv1.weight" not in state:
        raise CheckpointError(
            f"the checkpoint has no CLIP image tower: missing '{p}conv1.weight' (an official Zero123 checkpoint "
            "stores cond_stage_model.model.visual.*)"
        )
    width, _, patch, _ = state[p + "conv1.weight"].shape
    tokens = state[p + "positional_embedding"].shape[0]
    grid = int(round((tokens - 1) ** 0.5))
    layers = len({k.split(".")[2] for k in (x[len(p):] for x in state if x.startswith(p + "transformer.resblocks."))})
    fc = state[f"{p}transformer.resblocks.0.mlp.c_fc.weight"].shape[0] if layers else 4 * width
    return ImageEncoderConfig(
        hidden_size=int(width), intermediate_size=int(fc), num_hidden_layers=layers,
        num_attention_heads=max(1, int(width) // 64), image_size=grid * int(patch), patch_size=int(patch),
        projection_dim=int(state[p + "proj"].shape[1]),
    )


@dataclass
class ExpectedLayout:
    """LDM key -> shape for each group, derived from a model of the target geometry (built on 'meta')."""

    unet: dict[str, tuple]       # LDM name (with prefix) -> shape
    unet_map: dict[str, str]     # diffusers key -> LDM name
    vae: dict[str, tuple]
    vae_map: dict[str, str]
    clip: dict[str, tuple]
    projection: dict[str, tuple]

    @property
    def ema(self) -> dict[str, tuple]:
        return {K.ema_key(k): s for k, s in self.unet.items()}


def expected_layout(cfg: ModelConfig) -> ExpectedLayout:
    """Every LDM key (and shape) a checkpoint for ``cfg`` must hold."""
    from zero123.model import Zero123Model

    with torch.device("meta"):
        model = Zero123Model(cfg)
    attn_up = {i for i, t in enumerate(cfg.unet.up_block_types) if "CrossAttn" in t}
    unet_map = {k: K.UNET_PREFIX + K.unet_ldm_name(k, cfg.unet.layers_per_block, attn_up) for k in model.unet.state_dict()}
    nblocks = len(cfg.vae.block_out_channels)
    vae_map = {k: K.VAE_PREFIX + K.vae_ldm_name(k, nblocks) for k in model.vae.state_dict()}
    unet_sd, vae_sd = model.unet.state_dict(), model.vae.state_dict()
    clip_sd = K.clip_to_openai(model.image_encoder.state_dict(), cfg.image_encoder.num_hidden_layers)

    def vae_shape(key: str, shape: torch.Size) -> tuple:
        # the mid-block attention's q/k/v/proj_out are 1x1 convs in LDM, linears in diffusers
        if ".mid.attn_1." in vae_map[key] and len(shape) == 2:
            return tuple(shape) + (1, 1)
        return tuple(shape)

    return ExpectedLayout(
        unet={unet_map[k]: tuple(v.shape) for k, v in unet_sd.items()},
        unet_map=unet_map,
        vae={vae_map[k]: vae_shape(k, v.shape) for k, v in vae_sd.items()},
        vae_map=vae_map,
        clip={K.CLIP_PREFIX + k: tuple(v.shape) for k, v in clip_sd.items()},
        projection={K.PROJECTION_PREFIX + k: tuple(v.shape) for k, v in model.cc_projection.state_dict().items()},
    )


def has_ema(keys) -> bool:
    """True when the checkpoint carries the flattened ``model_ema.*`` UNet copy."""
    return sum(k.startswith(K.EMA_PREFIX) for k in keys) > 2


def check_layout(shapes: dict[str, tuple], cfg: ModelConfig, use_ema: bool) -> ExpectedLayout:
    """Raise :class:`CheckpointError` unless ``shapes`` (LDM key -> shape) matches ``cfg`` exactly.

    Missing keys, unexpected keys and shape mismatches are all reported by name.
    """
    layout = expected_layout(cfg)
    required = {**layout.unet, **layout.vae, **layout.clip, **layout.projection}
    if use_ema:
        required.update(layout.ema)
    known = set(required) | set(layout.ema) | K.IGNORED_KEYS
    missing = set(required) - set(shapes)
    unexpected = set(shapes) - known
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {describe_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {describe_keys(unexpected)}")
    wrong = [
        f"'{k}' checkpoint {list(shapes[k])} vs model {list(required[k])}"
        for k in required  # state-dict order: UNet first, starting at conv_in
        if k in shapes and tuple(shapes[k]) != tuple(required[k])
    ]
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: " + "; ".join(wrong[:8]) + (" ..." if len(wrong) > 8 else ""))
    if problems:
        raise CheckpointError(
            "the checkpoint does not match the Zero123 model geometry: " + " | ".join(problems)
            + ". Check the file is complete and pass the config (or the official LDM YAML) it was trained with."
        )
    return layout


@contextlib.contextmanager
def _quiet_diffusers():
    log = logging.getLogger("diffusers")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def convert_ldm_state_dict(
    state: dict[str, torch.Tensor], cfg: ModelConfig, use_ema: bool | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Split and convert an official state dict into ``{"unet", "vae", "image_encoder", "cc_projection"}``.

    Args:
        state: flat LDM tensor dict (see :func:`read_checkpoint_file`).
        cfg: target geometry (UNet/VAE from our config; CLIP must match the checkpoint).
        use_ema: take the UNet from the EMA copy (the official demo samples with it); None = EMA if present.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    if use_ema is None:
        use_ema = has_ema(state)
    elif use_ema and not has_ema(state):
        raise CheckpointError("EMA weights requested but the checkpoint has no 'model_ema.*' keys; pass ema=False")
    check_layout({k: tuple(v.shape) for k, v in state.items()}, cfg, use_ema)
    unet_cfg = dict(cfg.unet.to_diffusers(), class_embed_type=None, addition_embed_type=None)
    with _quiet_diffusers():
        unet = convert_ldm_unet_checkpoint(state, unet_cfg, extract_ema=use_ema)
        vae = convert_ldm_vae_checkpoint(state, cfg.vae.to_diffusers())
    visual = {k[len(K.CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(K.CLIP_PREFIX)}
    clip = K.clip_from_openai(visual, cfg.image_encoder.num_hidden_layers)
    proj = {k[len(K.PROJECTION_PREFIX):]: state[k] for k in (K.PROJECTION_PREFIX + "weight", K.PROJECTION_PREFIX + "bias")}
    return {"unet": unet, "vae": vae, "image_encoder": clip, "cc_projection": proj}


def export_ldm_state_dict(model, ema_unet: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Our :class:`~zero123.model.Zero123Model` -> a state dict in the official LDM layout.

    ``ema_unet`` (diffusers UNet keys) is written as the flattened ``model_ema.*`` copy when given.
    """
    layout = expected_layout(model.cfg)
    out: dict[str, torch.Tensor] = {"alphas_cumprod": model.alphas_cumprod.detach().cpu().clone()}
    for k, v in model.unet.state_dict().items():
        out[layout.unet_map[k]] = v
    if ema_unet is not None:
        out["model_ema.decay"] = torch.tensor(0.9999)
        out["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
        for k, v in ema_unet.items():
            out[K.ema_key(layout.unet_map[k])] = v
    for k, v in model.vae.state_dict().items():
        name = layout.vae_map[k]
        out[name] = v.reshape(layout.vae[name])
    for k, v in K.clip_to_openai(model.image_encoder.state_dict(), model.cfg.image_encoder.num_hidden_layers).items():
        out[K.CLIP_PREFIX + k] = v
    for k, v in model.cc_projection.state_dict().items():
        out[K.PROJECTION_PREFIX + k] = v
    return {k: v.detach().contiguous() for k, v in out.items()}
