"""Reading and writing Zero123 weights: official LDM checkpoints, both diffusers layouts, our own folders."""
from zero123.checkpoints.errors import CheckpointError

__all__ = ["CheckpointError"]
