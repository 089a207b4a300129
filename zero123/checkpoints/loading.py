"""One entry point for weights: ``load_zero123(path_or_hub_id, ...) -> (config, model)``.

Accepts an official LDM file (``.ckpt`` etc.), one of our folders, a diffusers Format A / B folder, or a hub
id (resolved into the standard HF cache; offline, it must already be there).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from zero123.checkpoints.errors import CheckpointError, describe_keys
from zero123.checkpoints.folders import is_weight_folder, read_folder
from zero123.checkpoints.ldm import LDM_SUFFIXES, convert_ldm_state_dict, infer_image_encoder_config, read_checkpoint_file
from zero123.checkpoints.original_config import model_config_from_ldm_yaml
from zero123.config import Zero123Config, load_zero123_config
from zero123.model import Zero123Model

COMPONENTS = ("unet", "vae", "image_encoder", "cc_projection")


def load_components(model: Zero123Model, parts: dict[str, dict[str, torch.Tensor]], source: str) -> None:
    """Load per-component state dicts strictly; any missing / unexpected / mis-shaped key raises, named."""
    problems = []
    for name in COMPONENTS:
        module = getattr(model, name)
        own = module.state_dict()
        given = parts[name]
        missing = [k for k in own if k not in given or given[k] is None]
        unexpected = [k for k in given if k not in own]
        wrong = [f"'{k}' {list(given[k].shape)} vs {list(own[k].shape)}" for k in own
                 if k in given and given[k] is not None and tuple(given[k].shape) != tuple(own[k].shape)]
        if missing:
            problems.append(f"{name}: {len(missing)} missing keys {describe_keys(missing)}")
        if unexpected:
            problems.append(f"{name}: {len(unexpected)} unexpected keys {describe_keys(unexpected)}")
        if wrong:
            problems.append(f"{name}: shape mismatches " + "; ".join(wrong[:6]))
    if problems:
        raise CheckpointError(f"{source}: weights do not fit the model: " + " | ".join(problems))
    for name in COMPONENTS:
        getattr(model, name).load_state_dict(parts[name], strict=True, assign=False)


def resolve_source(path_or_hub_id: str | os.PathLike) -> Path:
    """A local path, or a hub id downloaded / found in the HF cache. Clear error when neither works."""
    path = Path(path_or_hub_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_hub_id)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            return Path(snapshot_download(text, local_files_only=offline))
        except Exception as exc:  # noqa: BLE001 - hub errors have many types
            raise CheckpointError(
                f"'{text}' is not a local path and could not be fetched from the hub ({type(exc).__name__}: {exc}). "
                "Download the weights (e.g. zero123-xl.ckpt) and pass the local file or folder."
            ) from exc
    raise CheckpointError(f"weights not found: {path} (pass an LDM .ckpt file, a weight folder or a hub id)")


def load_zero123(
    path_or_hub_id: str | os.PathLike,
    *,
    config: Zero123Config | str | os.PathLike | None = None,
    original_config: str | os.PathLike | None = None,
    ema: bool | None = None,
    variant: str | None = None,
    allow_unsafe_pickle: bool = False,
) -> tuple[Zero123Config, Zero123Model]:
    """Build the model and load its weights on the CPU in float32.

    Args:
        path_or_hub_id: LDM checkpoint file, weight folder, or hub id.
        config: our config (object or YAML) giving the geometry of an LDM file and the sampler defaults.
        original_config: the official LDM YAML of an LDM file (alternative to ``config``); default full size.
        ema: LDM files only: EMA UNet (True), raw (False), None = EMA when present (as the official demo).
        variant: folders only: weight-file variant such as ``fp16_ema``.
        allow_unsafe_pickle: LDM files only: allow full unpickling of trusted files.
    """
    source = resolve_source(path_or_hub_id)
    if isinstance(config, (str, os.PathLike)):
        config = load_zero123_config(config)
    if source.is_dir():
        if not is_weight_folder(source):
            raise CheckpointError(
                f"{source}: not a Zero123 weight folder (no zero123_config.yaml or model_index.json). "
                f"Official single-file checkpoints end in {LDM_SUFFIXES}."
            )
        folder_cfg, parts = read_folder(source, variant)
        cfg = config or folder_cfg
    else:
        state = read_checkpoint_file(source, allow_unsafe_pickle)
        if config is not None:
            cfg = config
        else:
            clip = infer_image_encoder_config(state)
            model_cfg = (
                model_config_from_ldm_yaml(original_config, clip) if original_config
                else Zero123Config().model
            )
            model_cfg.image_encoder = clip
            cfg = Zero123Config(model=model_cfg)
        parts = convert_ldm_state_dict(state, cfg.model, use_ema=ema)
    cfg.validate()
    model = Zero123Model(cfg.model)
    load_components(model, parts, str(source))
    return cfg, model
