"""The official ``3drec`` input-image path (``voxnerf.data.load_blender`` + ``sjc_3d``), for parity and for users
who hand in an RGBA render the way the official scenes are given.

RGBA uint8 -> ``cv2.resize`` to 800x800 (INTER_CUBIC, on uint8) -> /255 as float32 -> alpha-blended on white
(``rgb a + 1 - a``) -> ``cv2.resize`` to 256x256 (INTER_CUBIC, float32). The alpha is not used afterwards.
"""
from __future__ import annotations

import numpy as np


def official_input_image(rgba: np.ndarray, size: int = 256) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (size, size, 3) float32 RGB on white, values about [0, 1] (cubic overshoot kept)."""
    import cv2

    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 RGBA image, got {rgba.shape} {rgba.dtype}")
    im = cv2.resize(rgba, (800, 800), interpolation=cv2.INTER_CUBIC)
    im = (im / 255.0).astype(np.float32)
    rgb = im[..., :3] * im[..., 3:] + (1.0 - im[..., 3:])
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
