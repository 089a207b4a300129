"""Reference attention ("ref-attn", spec section 5.1): self-attention that also attends to a reference image.

Two UNet passes per denoising call share a ``ref_dict``:

* write (``mode="w"``): every enabled processor stores its input hidden states -- the block's ``norm1`` output,
  (B, h*w, C) at its resolution -- under its own name and returns plain self-attention;
* read (``mode="r"``, entry popped; ``"m"``, entry kept): queries from the hidden states, keys and values from
  the token-axis concatenation ``[hidden ; stored reference]`` (same ``to_k`` / ``to_v``), softmax attention.

Enabled exactly for the self-attentions (processor names ending in ``attn1.processor``); cross-attentions pass
through. No parameters: the UNet's own weights are reused.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class ReferenceAttnProcessor:
    """Drop-in diffusers attention processor with the write / read / merge modes above.

    Args:
        enabled: False -> always the chained processor (cross-attention layers).
        name: key of this layer in ``ref_dict``.
    """

    def __init__(self, enabled: bool, name: str, chained=None):
        self.enabled = enabled
        self.name = name
        self.chained = chained if chained is not None else AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        temb: Optional[torch.Tensor] = None,
        mode: Optional[str] = None,
        ref_dict: Optional[dict] = None,
        is_cfg_guidance: bool = False,
    ) -> torch.Tensor:
        """(B, N, C) -> (B, N, C). ``mode=None``: plain attention (no reference involved).

        ``is_cfg_guidance``: batch row 0 (unconditional) runs without the reference in every mode, and only rows
        1: are stored / read (the stored reference then has B - 1 rows). The official pipeline never sets it.
        """
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        if not self.enabled or mode is None:
            return self.chained(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if ref_dict is None:
            raise ValueError(f"{self.name}: reference attention mode '{mode}' needs a ref_dict")
        first = None
        if is_cfg_guidance:
            first = self.chained(attn, hidden_states[:1], encoder_hidden_states[:1], attention_mask, temb)
            hidden_states, encoder_hidden_states = hidden_states[1:], encoder_hidden_states[1:]
        if mode == "w":
            ref_dict[self.name] = encoder_hidden_states
        elif mode in ("r", "m"):
            if self.name not in ref_dict:
                raise KeyError(f"{self.name}: no stored reference (run the write pass first)")
            ref = ref_dict.pop(self.name) if mode == "r" else ref_dict[self.name]
            encoder_hidden_states = torch.cat([encoder_hidden_states, ref], dim=1)
        else:
            raise ValueError(f"reference attention mode must be 'w', 'r' or 'm', got {mode!r}")
        out = self.chained(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return out if first is None else torch.cat([first, out], dim=0)


def is_reference_layer(processor_name: str) -> bool:
    """Reference attention is enabled on every self-attention (``...attn1.processor``), nowhere else."""
    return processor_name.endswith("attn1.processor")


def install_reference_attention(unet) -> None:
    """Replace every attention processor of a diffusers UNet by a :class:`ReferenceAttnProcessor`."""
    unet.set_attn_processor(
        {name: ReferenceAttnProcessor(is_reference_layer(name), name) for name in unet.attn_processors}
    )


def has_reference_attention(unet) -> bool:
    return all(isinstance(p, ReferenceAttnProcessor) for p in unet.attn_processors.values())
