"""Input image -> the two network inputs of Zero123++ (spec section 4), as the official pipeline computes them.

* :func:`to_rgb`: RGBA pasted (PIL ``paste`` with the alpha as mask) onto a constant grey canvas: 127 (official
  ``to_rgb_image``) or 255 (InstantMesh's pipeline copy). RGB is kept.
* :func:`resize_foreground` (InstantMesh, ratio 0.85): crop to the alpha > 0 box, pad to a square, pad again so the
  object's longer side is ``ratio`` of the side (transparent padding).
* :class:`ImageProcessor`: the arithmetic of transformers' ``CLIPImageProcessor`` on its PIL path (the path the
  official numbers come from, whatever backend transformers picks): shortest side -> ``size`` with PIL
  ``resample``, centre crop, ``float64(x) * rescale_factor -> float32``, ``(x - mean) / std``. The VAE processor
  gives (p - 0.5) / 0.8 at 512 px (bilinear), the CLIP one the OpenAI normalisation at 224 px (bicubic).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data.preprocess import PreprocessError, to_rgb8

#: Hub ``preprocessor_config.json`` values (``sudo-ai/zero123plus-v1.x``).
VAE_PROCESSOR = dict(size=512, crop=512, resample=2, mean=[0.5, 0.5, 0.5], std=[0.8, 0.8, 0.8])
CLIP_PROCESSOR = dict(
    size=224, crop=224, resample=3, mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711]
)


@dataclass(frozen=True)
class ImageProcessor:
    """Resize (shortest side), centre crop, rescale, normalise; output (3, crop, crop) float32 CHW."""

    size: int
    crop: int
    resample: int
    mean: list[float]
    std: list[float]
    rescale_factor: float = 1.0 / 255.0

    @classmethod
    def from_json(cls, path: str | Path) -> "ImageProcessor":
        """Read a hub ``preprocessor_config.json`` (``CLIPImageProcessor`` keys)."""
        c = json.loads(Path(path).read_text())
        size, crop = c.get("size", {}), c.get("crop_size", {})
        if not (c.get("do_resize", True) and c.get("do_center_crop", True) and "shortest_edge" in size
                and crop.get("height") == crop.get("width")):
            raise ValueError(f"{path}: expected a CLIPImageProcessor with shortest-edge resize and a square crop")
        mean, std = c["image_mean"], c["image_std"]
        mean = [float(mean)] * 3 if not isinstance(mean, list) else [float(m) for m in mean]
        std = [float(std)] * 3 if not isinstance(std, list) else [float(s) for s in std]
        return cls(int(size["shortest_edge"]), int(crop["height"]), int(c.get("resample", 3)), mean, std,
                   float(c.get("rescale_factor", 1.0 / 255.0)))

    def to_json(self) -> dict:
        """The hub ``preprocessor_config.json`` content (scalar mean/std kept scalar when all equal)."""
        mean = self.mean[0] if len(set(self.mean)) == 1 else self.mean
        std = self.std[0] if len(set(self.std)) == 1 else self.std
        return {
            "crop_size": {"height": self.crop, "width": self.crop}, "do_center_crop": True, "do_convert_rgb": True,
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": mean,
            "image_processor_type": "CLIPImageProcessor", "image_std": std, "resample": self.resample,
            "rescale_factor": self.rescale_factor, "size": {"shortest_edge": self.size},
        }

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """8-bit RGB PIL image -> (3, crop, crop) float32."""
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.size * long / short)
        new_w, new_h = (self.size, new_long) if w <= h else (new_long, self.size)
        arr = np.asarray(image.convert("RGB").resize((new_w, new_h), resample=self.resample))
        top, left = (new_h - self.crop) // 2, (new_w - self.crop) // 2
        if top < 0 or left < 0:
            raise PreprocessError(f"image of {w}x{h} px is too small for a {self.crop}px crop")
        arr = arr[top: top + self.crop, left: left + self.crop]
        x = (arr.astype(np.float64) * self.rescale_factor).astype(np.float32)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def as_dict(self) -> dict:
        return asdict(self)


def to_rgb(image: Image.Image, background: int = 127) -> Image.Image:
    """RGB kept; RGBA pasted onto a ``background`` grey canvas with its alpha as mask (official ``to_rgb_image``)."""
    image = to_rgb8(image)
    if image.mode == "RGB":
        return image
    canvas = Image.new("RGB", image.size, (background,) * 3)
    canvas.paste(image, mask=image.getchannel("A"))
    return canvas


def resize_foreground(image: Image.Image, ratio: float) -> Image.Image:
    """InstantMesh framing of an RGBA image (``src/utils/infer_util.py``): crop the alpha > 0 box, pad it to a
    square, then pad to ``int(side / ratio)`` (transparent padding, split evenly, the odd pixel after).

    As upstream, the crop is ``[y_min:y_max, x_min:x_max]``: the box's last row and column are cut (for a faithful
    input). Raises :class:`PreprocessError` for an image without alpha or with an empty alpha.
    """
    image = to_rgb8(image)
    if image.mode != "RGBA":
        raise PreprocessError("resize_foreground needs an RGBA image (remove the background first)")
    arr = np.asarray(image)
    ys, xs = np.nonzero(arr[..., 3] > 0)
    if len(ys) == 0:
        raise PreprocessError("the input image is fully transparent: there is no object to frame")
    fg = arr[ys.min(): ys.max(), xs.min(): xs.max()]
    if fg.size == 0:
        raise PreprocessError("the object is a single row or column of pixels: nothing to frame")
    size = max(fg.shape[:2])
    ph, pw = size - fg.shape[0], size - fg.shape[1]
    sq = np.pad(fg, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    new = int(size / ratio)
    p = new - size
    return Image.fromarray(np.pad(sq, ((p // 2, p - p // 2), (p // 2, p - p // 2), (0, 0))), "RGBA")


def prepare_input(image: Image.Image, background: int = 127, foreground_ratio: float | None = None) -> Image.Image:
    """A variant's input handling: optional re-framing (RGBA only), then :func:`to_rgb`.

    Fully transparent RGBA inputs are refused (:class:`PreprocessError`): nothing would be conditioned on.
    """
    image = to_rgb8(image)
    if image.mode == "RGBA" and not np.asarray(image.getchannel("A")).any():
        raise PreprocessError("the input image is fully transparent (empty alpha): there is no object")
    if foreground_ratio is not None and image.mode == "RGBA":
        image = resize_foreground(image, foreground_ratio)
    elif foreground_ratio is not None:
        warnings.warn("the input has no alpha channel: it is used as it is, without the foreground framing of this "
                      "variant (remove the background first, e.g. with rembg, as InstantMesh does)", stacklevel=2)
    return to_rgb(image, background)
