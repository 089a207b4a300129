"""Loading the official reconstruction checkpoint ``ckpt_215000.pth`` (spec section 12).

The file is a ``torch.save`` of a plain dict with the module state dicts under ``sdf_network_lod0``,
``rendering_network_lod0``, ``variance_network_lod0`` and ``pyramid_feature_network`` (plus optimizer state and
counters, ignored here). Every model key must be present with the exact shape; only the normalisation layers'
``num_batches_tracked`` buffers may be missing. Anything else is an error naming the offending keys.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reconstruction.model import CHECKPOINT_KEYS, ReconstructionModel

#: Where the official weights come from (HF repo ``One-2-3-45/code``).
CHECKPOINT_HINT = (
    "download ckpt_215000.pth from the Hugging Face repo One-2-3-45/code "
    "(file SparseNeuS_demo_v1/exp/lod0/checkpoints/ckpt_215000.pth) and pass its local path"
)
OPTIONAL_SUFFIX = "num_batches_tracked"


class CheckpointError(ValueError):
    """A reconstruction checkpoint is unreadable or does not match the model (the message names the keys)."""


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` the checkpoint dict on CPU with clear errors for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reconstruction checkpoint not found: {path}; {CHECKPOINT_HINT}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on truncated / foreign files
        raise CheckpointError(
            f"cannot read reconstruction checkpoint {path} (truncated or not a PyTorch file?): {exc}; "
            f"{CHECKPOINT_HINT}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict of state dicts, got {type(ckpt).__name__}")
    return ckpt


def check_state_dict(model: ReconstructionModel, ckpt: dict, source: str = "checkpoint") -> dict:
    """Validate a checkpoint dict against the model; returns the flat state dict to load.

    Raises :class:`CheckpointError` listing missing top-level entries, missing / unexpected keys and shape
    mismatches (as ``<top-level>.<key>``).
    """
    absent = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt.get(k), dict)]
    if absent:
        raise CheckpointError(f"{source}: missing network state dicts {absent} (found keys {sorted(ckpt)})")
    expected = model.state_dict()
    flat = {f"{top}.{k}": v for top in CHECKPOINT_KEYS for k, v in ckpt[top].items()}
    missing = [k for k in expected if k not in flat and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in flat if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(flat[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in flat and (not torch.is_tensor(flat[k]) or flat[k].shape != expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatch {mismatched}")
    if problems:
        raise CheckpointError(f"{source} does not match the reconstruction model: " + "; ".join(problems))
    return flat


def load_official_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> ReconstructionModel:
    """Build the inference model from an official-format checkpoint (``ckpt_215000.pth`` layout).

    Returns the model on ``device`` in batch-statistics mode (as the official inference).
    """
    ckpt = read_checkpoint(path)
    model = ReconstructionModel()
    flat = check_state_dict(model, ckpt, source=str(path))
    model.load_state_dict(flat, strict=False)  # strictness checked above (num_batches_tracked optional)
    return model.to(device).use_batch_statistics()
