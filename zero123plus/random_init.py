"""Random-weight Zero123++ models from a config (tests, CPU smoke runs, benchmarks): no download involved.

The tokenizer is a character-level CLIP BPE vocabulary (the 256 byte symbols, the same with ``</w>``, BOS, EOS;
no merges; pad ``!`` = id 0 like SD2's), so ``vocab_size`` must be 514 unless a real tokenizer folder is given.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModelWithProjection

from zero123plus.config import ModelConfig
from zero123plus.model import Zero123PlusModel
from zero123plus.preprocess import CLIP_PROCESSOR, VAE_PROCESSOR, ImageProcessor
from zero123plus.schedule import HUB_SCHEDULER_CONFIG

CHAR_VOCAB_SIZE = 514


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins of bytes used by byte-level BPE (GPT-2 / CLIP order)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def char_tokenizer() -> CLIPTokenizer:
    """Character-level ``CLIPTokenizer`` (514 ids, max length 77, pad ``!``)."""
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), pad_token="!",
                             model_max_length=77)


def random_model(cfg: ModelConfig, seed: int | None = 0) -> Zero123PlusModel:
    """All networks randomly initialised (diffusers / transformers defaults) from ``cfg``; ramp i / 77 (paper init)."""
    if cfg.text_encoder.vocab_size != CHAR_VOCAB_SIZE:
        raise ValueError(f"random models use the character tokenizer: model.text_encoder.vocab_size must be "
                         f"{CHAR_VOCAB_SIZE}, got {cfg.text_encoder.vocab_size}")
    if seed is not None:
        torch.manual_seed(seed)
    model = Zero123PlusModel(
        UNet2DConditionModel(**cfg.unet.to_diffusers()),
        AutoencoderKL(**cfg.vae.to_diffusers()),
        CLIPTextModel(CLIPTextConfig(**cfg.text_encoder.to_transformers())),
        CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg.vision_encoder.to_transformers())),
        char_tokenizer(),
        torch.arange(77, dtype=torch.float32) / 77.0,
        ImageProcessor(**VAE_PROCESSOR),
        ImageProcessor(**CLIP_PROCESSOR),
        HUB_SCHEDULER_CONFIG,
    )
    return model.eval().requires_grad_(False)
