"""Weights: the ``sudo-ai/zero123plus-v1.x`` hub folder layout, read and written with standard classes only.

Layout (spec 3.1): ``model_index.json`` (with ``ramping_coefficients``) + ``unet/``, ``vae/``, ``text_encoder/``,
``vision_encoder/``, ``tokenizer/``, ``scheduler/``, ``feature_extractor_vae/``, ``feature_extractor_clip/``.
Every network is built from its ``config.json`` and loaded **strictly**: missing, unexpected or mis-shaped keys
raise :class:`Zero123PlusWeightsError` naming them (no remote code, no silent random init). Also:

* a replacement UNet state-dict file (InstantMesh ``diffusion_pytorch_model.bin``: plain UNet keys; the raw UNet
  of our (``model.unet.unet.``) and InstantMesh's (``unet.unet.``) Lightning checkpoints);
* a ControlNet folder (``sudo-ai/controlnet-zp11-depth-v1`` layout: ``config.json`` + weights).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig,
                          CLIPVisionModelWithProjection)

from zero123plus.model import Zero123PlusModel
from zero123plus.preprocess import ImageProcessor

SUBFOLDERS = ("unet", "vae", "text_encoder", "vision_encoder", "tokenizer", "scheduler", "feature_extractor_vae",
              "feature_extractor_clip")
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: Model prefixes of transformers' CLIP towers that differ between library versions (see :func:`_align_prefix`).
TRANSFORMERS_PREFIXES = ("text_model.", "vision_model.")
#: Keys older library versions saved that carry no learnt value (recomputed buffers): tolerated when extra.
IGNORED_EXTRA_SUFFIXES = ("embeddings.position_ids",)
#: Pre-0.15 diffusers names of the VAE's mid-block attention (renamed in later versions).
_LEGACY_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


class Zero123PlusWeightsError(ValueError):
    """A weight folder or file is missing parts, corrupt, or does not fit the architecture (keys named)."""


def _describe(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` or (weights-only) ``.bin`` / ``.pt`` / ``.ckpt`` state dict; ``state_dict`` nesting removed."""
    path = Path(path)
    if not path.is_file():
        raise Zero123PlusWeightsError(f"weight file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / pickle errors of truncated or foreign files come in many types
        raise Zero123PlusWeightsError(
            f"cannot read weights {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(the file is truncated or not a state dict; download it again)"
        ) from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise Zero123PlusWeightsError(f"{path}: not a state dict of tensors")
    return sd


#: Where the plain UNet sits in training checkpoints: ours (``Zero123PlusLitModule.model.unet.unet``), InstantMesh's
#: (``MVDiffusion.unet`` = the official wrapper, ``unet.unet``), a bare official wrapper (``unet``).
UNET_PREFIXES = ("model.unet.unet.", "unet.unet.", "unet.")


def strip_unet_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain UNet keys from a training checkpoint or wrapper state dict (the first of :data:`UNET_PREFIXES` found;
    other entries such as the VAE or EMA buffers are dropped). A plain state dict is returned as it is (no UNet key
    starts with ``unet.``)."""
    for prefix in UNET_PREFIXES:
        sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if sub:
            return sub
    return sd


def load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` that names every missing, unexpected and mis-shaped key in one error."""
    own = module.state_dict()
    sd = _align_prefix(sd, own)
    extra = [k for k in sd if k not in own]
    if isinstance(module, AutoencoderKL) and extra:
        sd = {_legacy_vae_key(k) if k not in own else k: v for k, v in sd.items()}
        extra = [k for k in sd if k not in own]
    sd = {k: v for k, v in sd.items() if not (k in extra and k.endswith(IGNORED_EXTRA_SUFFIXES))}
    extra = [k for k in extra if k in sd]
    missing = [k for k in own if k not in sd]
    wrong = [f"'{k}' {list(sd[k].shape)} (expected {list(own[k].shape)})" for k in own
             if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys {_describe(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected keys {_describe(extra)}")
    if wrong:
        problems.append("mis-shaped keys " + "; ".join(wrong[:6]) + (f" (+{len(wrong) - 6} more)" if len(wrong) > 6 else ""))
    if problems:
        raise Zero123PlusWeightsError(f"{source}: weights do not fit the model: " + " | ".join(problems))
    module.load_state_dict(sd, strict=True)


def _align_prefix(sd: dict, own: dict) -> dict:
    """transformers 4 saved ``CLIPTextModel`` keys under ``text_model.`` (the hub files); transformers 5's bare
    model has none. Strip or add such a prefix when it is on every key of one side and on none of the other."""
    for prefix in TRANSFORMERS_PREFIXES:
        file_has = bool(sd) and all(k.startswith(prefix) for k in sd)
        own_has = any(k.startswith(prefix) for k in own)
        if file_has and not own_has:
            return {k[len(prefix):]: v for k, v in sd.items()}
        if own_has and all(k.startswith(prefix) for k in own) and not any(k.startswith(prefix) for k in sd):
            return {prefix + k: v for k, v in sd.items()}
    return sd


def _legacy_vae_key(key: str) -> str:
    for old, new in _LEGACY_VAE_ATTENTION.items():
        if ".attentions." in key and old in key:
            return key.replace(old, new)
    return key


def _weights_file(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise Zero123PlusWeightsError(f"{folder}: no weight file (expected one of {', '.join(names)})")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise Zero123PlusWeightsError(f"missing {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Zero123PlusWeightsError(f"{path}: not valid JSON ({exc})") from exc


def load_unet_folder(folder: Path) -> UNet2DConditionModel:
    unet = UNet2DConditionModel.from_config(_read_json(folder / "config.json"))
    path = _weights_file(folder, DIFFUSERS_WEIGHTS)
    load_strict(unet, read_state_dict(path), str(path))
    return unet


def load_unet_file(unet: UNet2DConditionModel, path: Path) -> None:
    """Replace the UNet's weights by a state-dict file (InstantMesh), strictly."""
    load_strict(unet, strip_unet_prefix(read_state_dict(path)), str(path))


def load_controlnet(folder: str | Path) -> ControlNetModel:
    folder = Path(folder)
    net = ControlNetModel.from_config(_read_json(folder / "config.json"))
    path = _weights_file(folder, DIFFUSERS_WEIGHTS)
    load_strict(net, read_state_dict(path), str(path))
    return net


def load_pipeline_folder(folder: str | Path, unet_file: Optional[str | Path] = None,
                         controlnet: Optional[str | Path] = None) -> Zero123PlusModel:
    """Build :class:`Zero123PlusModel` (float32, CPU) from a hub-layout folder.

    Args:
        folder: the folder with ``model_index.json``.
        unet_file: optional replacement UNet weights (InstantMesh).
        controlnet: optional ControlNet folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise Zero123PlusWeightsError(f"{folder} is not a folder (expected the Zero123++ hub layout)")
    index = _read_json(folder / "model_index.json")
    absent = [s for s in SUBFOLDERS if not (folder / s).is_dir()]
    if absent:
        raise Zero123PlusWeightsError(f"{folder}: missing sub-folders {', '.join(absent)} (Zero123++ hub layout)")
    ramp = index.get("ramping_coefficients")
    if not isinstance(ramp, list) or not ramp:
        raise Zero123PlusWeightsError(f"{folder / 'model_index.json'}: no 'ramping_coefficients' list")
    unet = load_unet_folder(folder / "unet")
    if unet_file is not None:
        load_unet_file(unet, Path(unet_file))
    vae = AutoencoderKL.from_config(_read_json(folder / "vae" / "config.json"))
    path = _weights_file(folder / "vae", DIFFUSERS_WEIGHTS)
    load_strict(vae, read_state_dict(path), str(path))
    text = CLIPTextModel(CLIPTextConfig(**_read_json(folder / "text_encoder" / "config.json")))
    path = _weights_file(folder / "text_encoder", TRANSFORMERS_WEIGHTS)
    load_strict(text, read_state_dict(path), str(path))
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**_read_json(folder / "vision_encoder" / "config.json")))
    path = _weights_file(folder / "vision_encoder", TRANSFORMERS_WEIGHTS)
    load_strict(vision, read_state_dict(path), str(path))
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    except Exception as exc:  # tokenizer files missing or malformed
        raise Zero123PlusWeightsError(f"{folder / 'tokenizer'}: cannot load the CLIP tokenizer ({exc})") from exc
    model = Zero123PlusModel(
        unet, vae, text, vision, tokenizer, ramp,
        ImageProcessor.from_json(folder / "feature_extractor_vae" / "preprocessor_config.json"),
        ImageProcessor.from_json(folder / "feature_extractor_clip" / "preprocessor_config.json"),
        _read_json(folder / "scheduler" / "scheduler_config.json"),
        load_controlnet(controlnet) if controlnet is not None else None,
    )
    return model.eval().requires_grad_(False)


def write_pipeline_folder(model: Zero123PlusModel, folder: str | Path, safe_serialization: bool = True) -> Path:
    """Write the hub layout that :func:`load_pipeline_folder` (and the official custom pipeline) reads.

    The ControlNet, if any, goes to ``<folder>/controlnet`` (its own layout).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.unet.unet.save_pretrained(folder / "unet", safe_serialization=safe_serialization)
    model.vae.save_pretrained(folder / "vae", safe_serialization=safe_serialization)
    model.text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=safe_serialization)
    model.vision_encoder.save_pretrained(folder / "vision_encoder", safe_serialization=safe_serialization)
    model.tokenizer.save_pretrained(str(folder / "tokenizer"))
    for name, proc in (("feature_extractor_vae", model.vae_processor), ("feature_extractor_clip", model.clip_processor)):
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "preprocessor_config.json").write_text(json.dumps(proc.to_json(), indent=2))
    (folder / "scheduler").mkdir(exist_ok=True)
    sched = {"_class_name": "EulerAncestralDiscreteScheduler", **model.scheduler_config}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2))
    if model.controlnet is not None:
        model.controlnet.save_pretrained(folder / "controlnet", safe_serialization=safe_serialization)
    index = {
        "_class_name": "Zero123PlusPipeline",
        "feature_extractor_clip": ["transformers", "CLIPImageProcessor"],
        "feature_extractor_vae": ["transformers", "CLIPImageProcessor"],
        "ramping_coefficients": [float(x) for x in model.ramping_coefficients.float().cpu()],
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vision_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
