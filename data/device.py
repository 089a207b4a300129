"""The one rule for choosing a compute device from a config string.

``"auto"`` (or None) -> the first CUDA device when one is available, else the CPU; any other value is passed to
``torch.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``...). Asking for CUDA on a machine without it is a
:class:`~data.config.ConfigError` naming the fix, rather than a failure deep inside the first ``.to()``.
"""
from __future__ import annotations

import contextlib

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


@contextlib.contextmanager
def strict_fp32(enabled: bool = True):
    """Inside: CUDA float32 convolutions and matrix products in full IEEE float32 (no TF32); restored on exit.

    PyTorch lets cuDNN convolutions use TF32 by default (``torch.backends.cudnn.allow_tf32 = True``: a 10-bit
    mantissa on Ampere and later GPUs), which moves float32 results by ~1e-3 relative: far outside the parity
    tolerances (1e-4) that hold on a CPU. Parity tests and any float32 comparison with CPU results run inside
    this; inference keeps PyTorch's defaults. A no-op on machines without CUDA. ``enabled=False`` does nothing.
    """
    if not enabled:
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before
