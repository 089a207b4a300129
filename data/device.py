"""The one rule for choosing a compute device from a config string.

``"auto"`` (or None) -> the first CUDA device when one is available, else the CPU; any other value is passed to
``torch.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``...). Asking for CUDA on a machine without it is a
:class:`~data.config.ConfigError` naming the fix, rather than a failure deep inside the first ``.to()``.
"""
from __future__ import annotations

import torch

from data.config import ConfigError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Config value -> ``torch.device`` (see the module docstring)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available; use device cpu (or auto)")
    return resolved
