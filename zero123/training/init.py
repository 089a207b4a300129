"""Initial weights for fine-tuning: random, an existing Zero123, or an SD-1.x UNet widened to 8 channels."""
from __future__ import annotations

from pathlib import Path

import torch

from zero123.checkpoints.errors import CheckpointError
from zero123.checkpoints.folders import read_component_weights
from zero123.checkpoints.loading import load_zero123
from zero123.config import Zero123Config, load_zero123_config
from zero123.model import Zero123Model
from zero123.training.config import InitConfig


def widen_conv_in(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """Copy the first input channels of ``conv_in.weight`` and zero-fill the new ones (official ``--finetune_from``)."""
    w = state["conv_in.weight"]
    if w.shape[1] == in_channels:
        return state
    if w.shape[1] > in_channels:
        raise CheckpointError(f"conv_in.weight has {w.shape[1]} input channels, more than the {in_channels} wanted")
    wide = torch.zeros(w.shape[0], in_channels, *w.shape[2:], dtype=w.dtype)
    wide[:, : w.shape[1]] = w
    return {**state, "conv_in.weight": wide}


def load_sd_unet_into(model: Zero123Model, folder: str | Path) -> list[str]:
    """Load an SD-1.x diffusers UNet (``folder/unet`` or ``folder`` itself), widening ``conv_in``.

    Also loads ``vae/`` and ``image_encoder/`` when the folder has them (SD image-variations does). Returns the
    names of the components loaded.
    """
    root = Path(folder)
    unet_dir = root / "unet" if (root / "unet").is_dir() else root
    state = widen_conv_in(read_component_weights(unet_dir, "unet"), model.cfg.unet.in_channels)
    missing, unexpected = model.unet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{unet_dir}: UNet does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    loaded = ["unet"]
    for name in ("vae", "image_encoder"):
        if (root / name).is_dir():
            sub = read_component_weights(root / name, name)
            sub.pop("vision_model.embeddings.position_ids", None)
            getattr(model, name).load_state_dict(sub, strict=True)
            loaded.append(name)
    return loaded


@torch.no_grad()
def sharpen_vae_posterior(model: Zero123Model, logvar: float = -30.0) -> None:
    """Make the VAE posterior near-deterministic: its log-variance becomes the constant ``logvar``.

    ``quant_conv`` maps encoder features to [mean | log-variance] on channels; the log-variance half gets zero
    weights and bias ``logvar`` (-30 = diffusers' clamp, std ~3e-7). The posterior mean is unchanged.
    """
    conv, c = model.vae.quant_conv, model.vae.config.latent_channels
    if conv is None:
        raise CheckpointError("sharp_random_vae needs a VAE with quant_conv (use_quant_conv: true)")
    conv.weight[c:].zero_()
    conv.bias[c:].fill_(logvar)


@torch.no_grad()
def scale_latents_by_std(model: Zero123Model, images: torch.Tensor) -> float:
    """Set ``model.cfg.scale_factor`` to 1 / std of the VAE posterior means of (N,3,H,W) images in [0,1]."""
    mean = model.vae.encode((images * 2.0 - 1.0).to(model.vae.dtype)).latent_dist.mean.float()
    std = float(mean.std())
    if not std > 0:
        raise CheckpointError("scale_by_std: the VAE latents of the training images have zero spread")
    model.cfg.scale_factor = 1.0 / std
    return model.cfg.scale_factor


def initial_model(init: InitConfig, model_config: str) -> tuple[Zero123Config, Zero123Model]:
    """Config and model for the start of a run (the pose projection is identity-initialised unless loaded)."""
    if (init.sharp_random_vae or init.scale_by_std) and init.kind != "random":
        raise CheckpointError("init.sharp_random_vae / init.scale_by_std are for init.kind 'random' only "
                              "(a loaded VAE is trained and comes with its scale factor)")
    if init.kind == "zero123":
        if not init.path:
            raise CheckpointError("init.kind 'zero123' needs init.path (an official .ckpt or a weight folder)")
        return load_zero123(init.path, ema=init.ema)
    cfg = load_zero123_config(model_config)
    model = Zero123Model(cfg.model)
    if init.kind == "sd_unet":
        if not init.path:
            raise CheckpointError("init.kind 'sd_unet' needs init.path (e.g. sd-image-variations-diffusers folder)")
        load_sd_unet_into(model, init.path)
    elif init.kind != "random":
        raise CheckpointError(f"init.kind must be 'random', 'zero123' or 'sd_unet', got '{init.kind}'")
    if init.sharp_random_vae:
        sharpen_vae_posterior(model)
    return cfg, model
