"""LoFTR matcher through kornia, with the official indoor dual-softmax "new" weights loaded from a local file.

The official code builds LoFTR's standard config with ``coarse.temp_bug_fix = True`` and loads
``indoor_ds_new.ckpt`` (``torch.load(path)["state_dict"]``). kornia's ``LoFTR`` has the same architecture and
parameter names; ``LoFTR(pretrained="indoor_new")`` would download the weights, so this module builds it with
``pretrained=None`` and loads the local checkpoint instead. The weights path is resolved by the caller (e.g. the
project's weights registry); this module accepts a plain path.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from elevation.matcher import Matcher, RawPairMatches
from elevation.matches import PAIRS


class LoFTRWeightsError(FileNotFoundError):
    """The LoFTR checkpoint is missing or does not have the official key layout."""


def loftr_config() -> dict:
    """kornia's LoFTR config with the positional-encoding fix the indoor "new" weights were trained with."""
    from kornia.feature.loftr.loftr import default_cfg

    cfg = copy.deepcopy(default_cfg)
    cfg["coarse"]["temp_bug_fix"] = True
    return cfg


def build_loftr(state_dict: dict | None = None) -> torch.nn.Module:
    """kornia LoFTR in eval mode, random weights unless ``state_dict`` (official key layout) is given."""
    from kornia.feature import LoFTR

    model = LoFTR(pretrained=None, config=loftr_config())
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise LoFTRWeightsError(
                f"LoFTR checkpoint does not match the official key layout: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); expected the "
                "indoor_ds_new.ckpt released with LoFTR / One-2-3-45"
            )
    return model.eval()


def load_loftr_state_dict(path: str | Path) -> dict:
    """Read a LoFTR checkpoint: ``{"state_dict": {...}}`` (official) or a bare state dict.

    A ``"matcher."`` prefix (LoFTR's Lightning training wrapper) is stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise LoFTRWeightsError(
            f"LoFTR weights not found at {path}: download indoor_ds_new.ckpt (LoFTR indoor dual-softmax, the file "
            "One-2-3-45 uses) and pass its path (matcher.loftr_weights / --loftr-weights), or use --matcher sift"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise LoFTRWeightsError(f"cannot read LoFTR weights {path}: {exc}") from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise LoFTRWeightsError(f"{path} holds no state dict (expected {{'state_dict': ...}})")
    return {(k[len("matcher."):] if k.startswith("matcher.") else k): v for k, v in state.items()}


class LoFTRMatcher(Matcher):
    """Dense LoFTR matching of the prepared grayscale images.

    Keypoints are returned in the reference implementation's pixel frame (the one the official code rescales
    to 256 px); confidence is LoFTR's coarse dual-softmax score (only matches above 0.2 are returned).

    Args:
        model: a kornia ``LoFTR`` (see :func:`build_loftr`).
        device: where to run it.
    """

    name = "loftr"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> "LoFTRMatcher":
        return cls(build_loftr(load_loftr_state_dict(path)), device)

    def _tensor(self, gray: np.ndarray) -> torch.Tensor:
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"LoFTR expects (H, W) uint8 grayscale images, got {gray.shape} {gray.dtype}")
        return torch.from_numpy(np.ascontiguousarray(gray))[None, None].to(self.device) / 255.0

    @torch.no_grad()
    def match_all_pairs(self, gray: list[np.ndarray]) -> dict[tuple[int, int], RawPairMatches]:
        # The backbone features of an image do not depend on its partner (eval mode): compute them once.
        features = [self.model.extract_features(self._tensor(g)) for g in gray]
        out = {}
        for i, j in PAIRS:
            result = self.model({"features0": features[i], "features1": features[j]})
            out[(i, j)] = (
                result["keypoints0"].float().cpu().numpy().reshape(-1, 2),
                result["keypoints1"].float().cpu().numpy().reshape(-1, 2),
                result["confidence"].float().cpu().numpy().reshape(-1),
            )
        return out
