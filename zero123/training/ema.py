"""The EMA of the UNet weights (defined in :mod:`data.ema`, shared with the Zero123++ trainer)."""
from data.ema import ModuleEMA

__all__ = ["ModuleEMA"]
