"""Key names of the official LDM checkpoint, computed from our (diffusers / transformers) modules.

The forward conversion (LDM -> diffusers) of the UNet and VAE is diffusers' own single-file code; this module
gives the *inverse* names. It is used to (a) know exactly which LDM keys a model of a given geometry needs, so
missing / unexpected keys are reported with their official names before any conversion, and (b) write
checkpoints in the official layout (tests, exporting a fine-tuned model for official tools).

Official layout (``state_dict`` of ``LatentDiffusion``): ``model.diffusion_model.*`` (UNet, raw),
``model_ema.<name without 'model.' and without dots>`` (UNet EMA), ``first_stage_model.*`` (VAE),
``cond_stage_model.model.visual.*`` (OpenAI CLIP vision tower), ``cc_projection.{weight,bias}``, plus
schedule buffers and unused CLIP text leftovers.
"""
from __future__ import annotations

import re

import torch

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.model.visual."
PROJECTION_PREFIX = "cc_projection."

#: Keys of an official checkpoint that carry no weights we use (schedule buffers, EMA bookkeeping, CLIP text side).
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
)
IGNORED_KEYS = frozenset(
    SCHEDULE_BUFFERS
    + ("model_ema.decay", "model_ema.num_updates", "logvar", "lvlb_weights")
    + tuple(
        "cond_stage_model.model." + k
        for k in ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias",
                  "text_projection", "logit_scale")
    )
)

_RESNET_NAMES = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                 "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTN_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def ema_key(ldm_unet_key: str) -> str:
    """``model.diffusion_model.a.b.weight`` -> ``model_ema.diffusion_modelabweight``."""
    return EMA_PREFIX + ldm_unet_key[len("model."):].replace(".", "")


def _resnet(rest: str) -> str:
    name, _, tail = rest.partition(".")
    return f"{_RESNET_NAMES[name]}.{tail}"


def unet_ldm_name(key: str, layers_per_block: int, attention_blocks: set[int]) -> str:
    """LDM name (without prefix) of a diffusers UNet key.

    Args:
        key: diffusers ``UNet2DConditionModel`` state-dict key.
        layers_per_block: resnets per down block (up blocks have one more).
        attention_blocks: indices of up blocks that contain attentions (their upsampler sits at slot 2).
    """
    fixed = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for src, dst in fixed.items():
        if key.startswith(src):
            return dst + key[len(src):]
    n = layers_per_block + 1
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        b, kind, s, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = 1 + b * n + s
        return f"input_blocks.{idx}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{idx}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * n}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        b, kind, s, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = b * n + s
        return f"output_blocks.{idx}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{idx}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        b = int(m[1])
        slot = 2 if b in attention_blocks else 1
        return f"output_blocks.{b * n + layers_per_block}.{slot}.conv.{m[2]}"
    raise KeyError(f"no LDM name known for UNet key '{key}'")


def vae_ldm_name(key: str, num_blocks: int) -> str:
    """LDM name (without prefix) of a diffusers ``AutoencoderKL`` key (decoder up blocks are reversed)."""
    for part in ("encoder", "decoder"):
        if not key.startswith(part + "."):
            continue
        rest = key[len(part) + 1:]
        if rest.startswith("conv_norm_out."):
            return f"{part}.norm_out.{rest[len('conv_norm_out.'):]}"
        if m := re.match(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            i = int(m[2]) if m[1] == "down" else num_blocks - 1 - int(m[2])
            tail = m[4].replace("conv_shortcut", "nin_shortcut")
            return f"{part}.{m[1]}.{i}.block.{m[3]}.{tail}"
        if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", rest):
            return f"{part}.down.{m[1]}.downsample.conv.{m[2]}"
        if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", rest):
            return f"{part}.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
            return f"{part}.mid.block_{int(m[1]) + 1}.{m[2]}"
        if m := re.match(r"mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)", rest):
            return f"{part}.mid.attn_1.{_VAE_ATTN_NAMES[m[1]]}.{m[2]}"
        return key
    return key  # quant_conv / post_quant_conv keep their names


# ---------------------------------------------------------------------------------------------------- CLIP
_CLIP_FIXED = {
    "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
    "vision_model.embeddings.class_embedding": "class_embedding",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight",
    "vision_model.post_layernorm.bias": "ln_post.bias",
}
_CLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
               "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def clip_from_openai(visual: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """OpenAI CLIP ``visual.*`` tensors (prefix removed) -> ``CLIPVisionModelWithProjection`` state dict."""
    out = {hf: visual[oa] for hf, oa in _CLIP_FIXED.items()}
    out["visual_projection.weight"] = visual["proj"].t()
    for k in range(num_layers):
        src, dst = f"transformer.resblocks.{k}.", f"vision_model.encoder.layers.{k}."
        for kind in ("weight", "bias"):
            q, kk, v = visual[f"{src}attn.in_proj_{kind}"].chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{kind}"], out[f"{dst}self_attn.k_proj.{kind}"] = q, kk
            out[f"{dst}self_attn.v_proj.{kind}"] = v
        for hf, oa in _CLIP_LAYER.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{hf}.{kind}"] = visual[f"{src}{oa}.{kind}"]
    return out


def clip_to_openai(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Inverse of :func:`clip_from_openai` (``visual.*`` names without prefix)."""
    out = {oa: state[hf] for hf, oa in _CLIP_FIXED.items()}
    out["proj"] = state["visual_projection.weight"].t()
    for k in range(num_layers):
        src, dst = f"vision_model.encoder.layers.{k}.", f"transformer.resblocks.{k}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{src}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")], dim=0
            )
        for hf, oa in _CLIP_LAYER.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{oa}.{kind}"] = state[f"{src}{hf}.{kind}"]
    return out


def clip_openai_names(num_layers: int) -> list[str]:
    """The ``visual.*`` key names (without prefix) of an OpenAI CLIP vision tower with ``num_layers`` blocks."""
    names = list(_CLIP_FIXED.values()) + ["proj"]
    for k in range(num_layers):
        p = f"transformer.resblocks.{k}."
        names += [p + f"attn.in_proj_{kind}" for kind in ("weight", "bias")]
        names += [p + f"{oa}.{kind}" for oa in _CLIP_LAYER.values() for kind in ("weight", "bias")]
    return names
