"""Model geometry from the official LDM YAML (``sd-objaverse-finetune-c_concat-256.yaml`` or a variant)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from zero123.checkpoints.errors import CheckpointError
from zero123.config import ImageEncoderConfig, ModelConfig, UNetConfig, VAEConfig


def model_config_from_ldm_yaml(path: str | Path, image_encoder: ImageEncoderConfig | None = None) -> ModelConfig:
    """Translate the LDM YAML's UNet / first-stage / schedule parameters into a :class:`ModelConfig`.

    The CLIP geometry is not in the YAML (``FrozenCLIPImageEmbedder`` implies ViT-L/14); pass the one read
    from the checkpoint (:func:`zero123.checkpoints.ldm.infer_image_encoder_config`) or get the ViT-L/14 default.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"original LDM config not found: {path}")
    try:
        params = OmegaConf.to_container(OmegaConf.load(path))["model"]["params"]
        unet = params["unet_config"]["params"]
        dd = params["first_stage_config"]["params"]["ddconfig"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not an LDM config (needs model.params.unet_config / first_stage_config)") from exc
    channels = [unet["model_channels"] * m for m in unet["channel_mult"]]
    down, up, res = [], [], 1
    for i in range(len(channels)):
        down.append("CrossAttnDownBlock2D" if res in unet["attention_resolutions"] else "DownBlock2D")
        res = res * 2 if i < len(channels) - 1 else res
    for _ in channels:
        up.append("CrossAttnUpBlock2D" if res in unet["attention_resolutions"] else "UpBlock2D")
        res //= 2
    if unet.get("transformer_depth", 1) != 1 or not unet.get("use_spatial_transformer", True):
        raise CheckpointError(f"{path}: only transformer_depth 1 spatial transformers are supported")
    return ModelConfig(
        unet=UNetConfig(
            block_out_channels=channels, down_block_types=down, up_block_types=up,
            layers_per_block=unet["num_res_blocks"], attention_head_dim=unet["num_heads"],
            cross_attention_dim=unet["context_dim"], sample_size=unet["image_size"],
            in_channels=unet["in_channels"], out_channels=unet["out_channels"],
        ),
        vae=VAEConfig(
            block_out_channels=[dd["ch"] * m for m in dd["ch_mult"]], layers_per_block=dd["num_res_blocks"],
            latent_channels=dd["z_channels"], sample_size=dd["resolution"],
        ),
        image_encoder=image_encoder or ImageEncoderConfig(),
        scale_factor=float(params.get("scale_factor", 0.18215)),
        num_train_timesteps=int(params.get("timesteps", 1000)),
        beta_start=float(params.get("linear_start", 0.00085)),
        beta_end=float(params.get("linear_end", 0.012)),
    )
