"""reconstruction stage package (imports only `data`).

Public API: ``Reconstructor`` (views -> coloured mesh), ``ReconstructionConfig``, ``ReconstructionOutput``,
``load_official_checkpoint`` (official ``ckpt_215000.pth`` layout -> ``ReconstructionModel``),
``texture_reconstruction`` (bake a texture for a reconstruction's mesh).
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
from reconstruction.texture import texture_reconstruction

__all__ = [
    "CheckpointError",
    "ReconstructionConfig",
    "ReconstructionError",
    "ReconstructionModel",
    "ReconstructionOutput",
    "Reconstructor",
    "SceneInputs",
    "load_official_checkpoint",
    "texture_reconstruction",
]
