"""zero123 stage package (imports only `data`): Zero123 view-conditioned diffusion, weights, sampling, training."""
from zero123.checkpoints.errors import CheckpointError
from zero123.config import Zero123Config, load_zero123_config
from zero123.model import Zero123Model
from zero123.pipeline import Zero123Pipeline, whiten_near_white
from zero123.pose import pose_vector

__all__ = ["CheckpointError", "Zero123Config", "Zero123Model", "Zero123Pipeline", "load_zero123_config", "pose_vector",
           "whiten_near_white"]
