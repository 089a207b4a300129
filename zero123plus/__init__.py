"""zero123plus stage package (imports only `data`): Zero123++ six-view diffusion, hub-layout weights, sampling."""
from zero123plus.config import VARIANTS, Zero123PlusConfig, load_zero123plus_config
from zero123plus.loading import Zero123PlusWeightsError
from zero123plus.model import Zero123PlusModel
from zero123plus.pipeline import Zero123PlusOutput, Zero123PlusPipeline

__all__ = ["VARIANTS", "Zero123PlusConfig", "Zero123PlusModel", "Zero123PlusOutput", "Zero123PlusPipeline",
           "Zero123PlusWeightsError", "load_zero123plus_config"]
