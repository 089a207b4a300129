"""reconstruction stage package (imports only `data`).

Public API: ``Reconstructor`` (views -> coloured mesh), ``ReconstructionConfig``, ``ReconstructionOutput``,
``load_official_checkpoint`` (official ``ckpt_215000.pth`` layout -> ``ReconstructionModel``).
"""
from reconstruction.checkpoint import CheckpointError, load_official_checkpoint
from reconstruction.config import ReconstructionConfig
from reconstruction.model import ReconstructionModel
from reconstruction.reconstructor import (
    ReconstructionError,
    ReconstructionOutput,
    Reconstructor,
    SceneInputs,
)

__all__ = [
    "CheckpointError",
    "ReconstructionConfig",
    "ReconstructionError",
    "ReconstructionModel",
    "ReconstructionOutput",
    "Reconstructor",
    "SceneInputs",
    "load_official_checkpoint",
]
