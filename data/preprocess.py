"""Input photo -> the 256x256 white-background RGB image the pipeline conditions on.

Steps (official ``run.py: preprocess`` + ``utils.image_preprocess_nosave``, spec section 3):

1. Load (EXIF orientation applied), convert to 8-bit RGB / RGBA (:func:`to_rgb8`: 16-bit and float images are
   scaled, not clipped; modes without a faithful conversion are refused by name), then
   ``thumbnail((512, 512), LANCZOS)``: longer side <= 512, never upscaled.
2. Foreground alpha:
   * an image with a non-opaque alpha channel keeps its own alpha;
   * otherwise rembg (U^2-Net, the ``rembg`` extra) when installed and its weights are available, refined by
     SAM ViT-H (the ``sam`` extra, GPU installs) on the rembg box using the LAST of the three masks;
   * otherwise a weight-free fallback, OpenCV GrabCut seeded with the image border as background, with a
     warning (it is much weaker than rembg on cluttered scenes).
3. Recentre: bounding box of alpha > 0, square side ``int(max(w, h) / 0.75)``, crop pasted at
   ``(side//2 - h//2, side//2 - w//2)`` on a transparent canvas, LANCZOS resize to 256, composite on white
   (``rgb a + (1 - a)``), truncating cast to uint8.

All errors are :class:`PreprocessError` naming the file and the fix.
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from data import conventions as conv
from data import weights as weights_mod
from data.device import resolve_device

SEGMENTERS = ("auto", "alpha", "rembg", "sam", "grabcut", "none")


class PreprocessError(ValueError):
    """The input image cannot be turned into a pipeline input; the message names the file and the fix."""


@dataclass
class PreprocessConfig:
    """How an input image becomes the 256x256 conditioning image."""

    segmenter: str = "auto"
    """auto (own alpha, else rembg[+SAM], else GrabCut) | alpha | rembg | sam (rembg box + SAM) | grabcut |
    none (no segmentation, no recentring: the image, padded white to a square, is resized as it is)."""
    max_input_side: int = 512
    """The input is first shrunk (never enlarged) so its longer side is at most this (official: 512)."""
    object_fill: float = conv.INPUT_OBJECT_FILL
    """Fraction of the square canvas covered by the object's longer side (official: 0.75, data.conventions)."""
    output_size: int = conv.IMAGE_SIZE
    """Side of the output image in pixels."""
    min_object_px: int = 16
    """Objects whose bounding box's longer side is below this (pixels, after step 1) are rejected as too tiny."""
    lower_contrast: bool = False
    """Official demo option: scale RGBA by 0.8, then reset alpha > 200 to 255."""
    grabcut_iterations: int = 5
    """GrabCut iterations of the weight-free fallback."""
    device: str = "auto"
    """Device for SAM (auto: CUDA when available; SAM is only chosen automatically on CUDA)."""


@dataclass(frozen=True)
class PreprocessedImage:
    """Result of :func:`preprocess_image`.

    Attributes:
        image: (S, S, 3) uint8 RGB on white, the conditioning image.
        segmented: (H, W, 4) uint8 RGBA of the (thumbnailed) input with the foreground alpha used.
        method: which segmenter produced the alpha ("alpha", "rembg", "sam", "grabcut").
        bbox: (x, y, w, h) of alpha > 0 in ``segmented``.
        warnings: human-readable notes (e.g. that the GrabCut fallback was used).
    """

    image: np.ndarray
    segmented: np.ndarray
    method: str
    bbox: tuple[int, int, int, int]
    warnings: tuple[str, ...] = field(default=())

    def to_tensor(self) -> torch.Tensor:
        """(1, 3, S, S) float32 in [0, 1] (values k / 255)."""
        return torch.from_numpy(self.image).permute(2, 0, 1)[None].float() / 255.0


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_PIL_CONVERTS = ("1", "L", "P", "PA", "LA", "La", "RGBa", "RGBX", "CMYK", "YCbCr", "HSV")
"""8-bit modes whose Pillow conversion to RGB(A) is exact (LAB is not: Pillow copies its channels unconverted)."""


def _unsupported(name: str, detail: str) -> PreprocessError:
    return PreprocessError(f"{name} {detail}; convert it to an 8-bit RGB/RGBA PNG (e.g. in an image editor, or "
                           "Pillow's Image.convert) and pass that")


def to_rgb8(image: Image.Image, name: str = "the input image") -> Image.Image:
    """Any PIL image -> 8-bit ``"RGB"``, or ``"RGBA"`` when it carries alpha (a channel or a transparency key).

    Rules (values are scaled, never clipped):

    * RGB / RGBA: unchanged. 16-bit-per-channel RGB(A) PNG/TIFF files are opened by Pillow as 8-bit RGB(A)
      holding the high byte (``v >> 8``, within one level of ``round(v / 257)``).
    * 1, L, P, PA, LA, La, RGBa, RGBX, CMYK, YCbCr, HSV: Pillow's conversion (exact for these); palette / grey /
      RGB images with a ``transparency`` key become RGBA.
    * I;16, I;16L, I;16B, I;16N (16-bit grey): ``round(v / 257)`` (65535 -> 255).
    * I (32-bit integer grey; Pillow's mode for 16-bit PGM and 32-bit TIFF): the 16-bit rule when all values are in
      [0, 65535], otherwise refused.
    * F (32-bit float grey): ``round(v * 255)`` when all values are finite and in [0, 1], otherwise refused.
    * anything else (LAB, I;16S, ...): refused. Refusals are :class:`PreprocessError` naming ``name``, the
      mode and the fix.
    """
    mode = image.mode
    keyed = "transparency" in image.info
    if mode in ("RGB", "RGBA") and not keyed:
        return image
    if mode in ("RGB",) + _PIL_CONVERTS:
        if mode == "La":  # premultiplied: Pillow only converts it to LA
            image = image.convert("LA")
        return image.convert("RGBA" if mode in _ALPHA_MODES or keyed else "RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image)
        if mode == "I;16S" or values.dtype.kind not in "uif":
            raise _unsupported(name, f"has PIL image mode {mode!r} (signed 16-bit), which has no display scale")
        values = values.astype(np.float64)
        if values.size == 0:
            raise PreprocessError(f"{name} is empty (0 pixels); supply a real image")
        lo, hi = float(values.min()), float(values.max())
        if mode == "F":
            if not np.isfinite(values).all() or lo < 0.0 or hi > 1.0:
                raise _unsupported(name, f"has PIL image mode 'F' (32-bit float) with values in [{lo:g}, {hi:g}]; "
                                         "float images must hold values in [0, 1] (scaled by 255)")
            grey = values * 255.0
        else:
            if lo < 0 or hi > 65535:
                raise _unsupported(name, f"has PIL image mode {mode!r} (integer grey) with values in "
                                         f"[{lo:.0f}, {hi:.0f}]; integer images must hold 16-bit values in "
                                         "[0, 65535] (scaled by 1/257)")
            grey = values / 257.0
        grey8 = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        if keyed and isinstance(image.info["transparency"], (int, float)):
            alpha = np.where(values == image.info["transparency"], 0, 255).astype(np.uint8)
            return Image.fromarray(np.stack([grey8, alpha], -1), "LA").convert("RGBA")
        return Image.fromarray(grey8, "L").convert("RGB")
    raise _unsupported(name, f"has PIL image mode {mode!r}, which this loader cannot convert to colours faithfully")


def load_image(path: str | Path) -> Image.Image:
    """Open an image file fully (EXIF orientation applied) as 8-bit RGB or RGBA (:func:`to_rgb8`).

    Raises :class:`PreprocessError` with the fix."""
    path = Path(path)
    if not path.exists():
        raise PreprocessError(f"input image not found: {path} (check the path)")
    if path.is_dir():
        raise PreprocessError(f"{path} is a folder, not an image file")
    try:
        with Image.open(path) as im:
            im.load()
            image = ImageOps.exif_transpose(im)
    except UnidentifiedImageError as exc:
        raise PreprocessError(
            f"{path} is not an image file that Pillow can read; supply a PNG, JPEG or WebP image"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PreprocessError(f"cannot read image {path}: {exc} (the file may be truncated or corrupt)") from exc
    return to_rgb8(image, str(path))


def has_transparency(image: Image.Image) -> bool:
    """True when the image carries an alpha channel (or palette transparency) that is not fully opaque."""
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return False
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return bool(alpha.min() < 255)


# ---------------------------------------------------------------------------------------------- segmenters
def grabcut_alpha(rgb: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Weight-free foreground estimate: GrabCut with a border strip as sure background.

    Args:
        rgb: (H, W, 3) uint8.

    Returns:
        (H, W) uint8 alpha in {0, 255}: the largest connected foreground component, holes filled.
    """
    import cv2

    h, w = rgb.shape[:2]
    margin = max(2, round(0.02 * min(h, w)))
    if min(h, w) <= 4 * margin:
        raise PreprocessError(f"image of {w}x{h} pixels is too small to segment")
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    rect = (margin, margin, w - 2 * margin, h - 2 * margin)
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), mask, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return np.zeros((h, w), np.uint8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fg = (labels == largest).astype(np.uint8)
    # fill holes: background pixels not connected to the border become foreground
    inv = 1 - fg
    count, labels = cv2.connectedComponents(inv, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = (inv == 1) & ~np.isin(labels, border)
    return ((fg == 1) | holes).astype(np.uint8) * 255


@functools.lru_cache(maxsize=1)
def _rembg_session(model_path: Path):
    import os

    os.environ["U2NET_HOME"] = str(model_path.parent)  # rembg looks for <U2NET_HOME>/u2net.onnx
    import rembg

    return rembg.new_session("u2net")


def rembg_alpha(image: Image.Image, model_path: Path) -> np.ndarray:
    """rembg (U^2-Net) alpha with alpha matting, as the official rough box. (H, W) uint8."""
    import rembg

    out = rembg.remove(image.convert("RGBA"), alpha_matting=True, session=_rembg_session(Path(model_path)))
    return np.asarray(out)[..., 3].copy()


@functools.lru_cache(maxsize=1)
def _sam_predictor(checkpoint: Path, device: str):
    from segment_anything import SamPredictor, sam_model_registry

    return SamPredictor(sam_model_registry["vit_h"](checkpoint=str(checkpoint)).to(device))


def sam_alpha(rgb: np.ndarray, box_xyxy: tuple[int, int, int, int], checkpoint: Path, device: str) -> np.ndarray:
    """SAM ViT-H mask inside a box; the LAST of the three multimask outputs (official). (H, W) uint8."""
    predictor = _sam_predictor(Path(checkpoint), str(resolve_device(device)))
    predictor.set_image(rgb)
    masks, _, _ = predictor.predict(box=np.asarray(box_xyxy), multimask_output=True)
    return masks[-1].astype(np.uint8) * 255


def _box_xyxy(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    cols, rows = np.nonzero(alpha.sum(axis=0))[0], np.nonzero(alpha.sum(axis=1))[0]
    if cols.size == 0:
        return None
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


def available_segmenter(cfg: PreprocessConfig, download: bool = True) -> tuple[str, dict[str, Path], str]:
    """Pick the segmenter for an opaque image.

    Returns:
        ``(method, weight paths, warning)``; ``warning`` is non-empty when the GrabCut fallback is chosen
        automatically. An explicitly requested method whose package or weights are missing raises.
    """
    method = cfg.segmenter
    if method not in SEGMENTERS:
        raise PreprocessError(f"unknown segmenter {method!r}; choose one of {SEGMENTERS}")
    if method == "grabcut":
        return "grabcut", {}, ""
    need = ["u2net"] + (["sam"] if method == "sam" else [])
    if method in ("rembg", "sam"):
        for pkg, extra in (("rembg", "rembg"), ("segment_anything", "sam")):
            if (pkg == "rembg" or method == "sam") and importlib.util.find_spec(pkg) is None:
                raise PreprocessError(
                    f"segmenter '{method}' needs the Python package '{pkg}' (pip install -e .[{extra}]); "
                    "or use --segmenter grabcut / an RGBA input"
                )
        return method, weights_mod.resolve_all({n: None for n in need}, download=download), ""
    # auto: rembg (+ SAM when installed, its weights are present and a GPU is used), else GrabCut
    reasons = []
    if importlib.util.find_spec("rembg") is None:
        reasons.append("rembg is not installed (pip install -e .[rembg])")
    else:
        u2net, why = weights_mod.try_resolve("u2net", download=download)
        if u2net is not None:
            paths = {"u2net": u2net}
            if importlib.util.find_spec("segment_anything") is not None and resolve_device(cfg.device).type == "cuda":
                sam, _ = weights_mod.try_resolve("sam", download=download)
                if sam is not None:
                    return "sam", {**paths, "sam": sam}, ""
            return "rembg", paths, ""
        reasons.append(f"rembg's U^2-Net weights are unavailable ({why})")
    note = (
        "background removal fell back to OpenCV GrabCut seeded from the image border because "
        + "; ".join(reasons)
        + ". It works for plain backgrounds; for cluttered photos install rembg or pass an RGBA image."
    )
    return "grabcut", {}, note


# ---------------------------------------------------------------------------------------------- recentring
def recentre_on_white(rgba: np.ndarray, object_fill: float = conv.INPUT_OBJECT_FILL, size: int = conv.IMAGE_SIZE,
                      lower_contrast: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Official crop + recentre + white composite.

    Args:
        rgba: (H, W, 4) uint8; the object is where alpha > 0.

    Returns:
        ``(image, bbox)``: (size, size, 3) uint8 RGB and the (x, y, w, h) box of alpha > 0.
    """
    import cv2

    arr = rgba.copy()
    if lower_contrast:
        arr = cv2.convertScaleAbs(arr, alpha=0.8, beta=0)
        arr[arr[..., -1] > 200, -1] = 255
    _, mask = cv2.threshold(np.ascontiguousarray(rgba[..., 3]), 0, 255, cv2.THRESH_BINARY)
    x, y, w, h = cv2.boundingRect(mask)
    side = int(max(w, h) / object_fill)
    canvas = np.zeros((side, side, 4), np.uint8)
    top, left = side // 2 - h // 2, side // 2 - w // 2
    canvas[top:top + h, left:left + w] = arr[y:y + h, x:x + w]
    resized = np.asarray(Image.fromarray(canvas).resize((size, size), Image.LANCZOS))
    return composite_on_white(resized), (x, y, w, h)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 ``rgb a + (1 - a)`` in [0, 1] units, truncated (official cast)."""
    arr = rgba / 255.0
    rgb = arr[..., :3] * arr[..., 3:] + (1.0 - arr[..., 3:])
    return (rgb * 255).astype(np.uint8)


def preprocess_image(image: Image.Image | str | Path, cfg: PreprocessConfig | None = None,
                     *, source_name: str | None = None, download: bool = True) -> PreprocessedImage:
    """Full preprocessing of one input (see the module docstring).

    Args:
        image: a PIL image or a path.
        cfg: options; defaults reproduce the official pipeline.
        source_name: how errors name the input (defaults to the path or "the input image").
        download: allow weight downloads for rembg / SAM.
    """
    cfg = cfg or PreprocessConfig()
    if isinstance(image, Image.Image):
        name = source_name or "the input image"
        image = to_rgb8(image, name)
    else:
        name = source_name or str(image)
        image = load_image(image)  # 8-bit RGB(A) already
    if cfg.segmenter not in SEGMENTERS:
        raise PreprocessError(f"unknown segmenter {cfg.segmenter!r}; choose one of {SEGMENTERS}")
    if cfg.segmenter == "none":
        return _as_is(image, cfg.output_size)
    image = image.copy()
    image.thumbnail((cfg.max_input_side, cfg.max_input_side), Image.LANCZOS)
    notes: list[str] = []
    if cfg.segmenter in ("auto", "alpha") and has_transparency(image):
        rgba, method = np.asarray(image.convert("RGBA")).copy(), "alpha"
        if not rgba[..., 3].any():
            raise PreprocessError(
                f"{name} is fully transparent (its alpha channel is 0 everywhere): there is no object; "
                "supply an image where the object is visible (RGB images get automatic background removal)"
            )
    elif cfg.segmenter == "alpha":
        raise PreprocessError(f"{name} has no transparency but segmenter 'alpha' was requested; use 'auto'")
    else:
        rgb = np.asarray(image.convert("RGB")).copy()
        method, paths, note = available_segmenter(cfg, download=download)
        if note:
            warnings.warn(note, stacklevel=2)
            notes.append(note)
        if method == "grabcut":
            alpha = grabcut_alpha(rgb, cfg.grabcut_iterations)
        else:
            alpha = rembg_alpha(image, paths["u2net"])
            box = _box_xyxy(alpha)
            if method == "sam" and box is not None:
                alpha = sam_alpha(rgb, box, paths["sam"], cfg.device)
        rgba = np.concatenate([rgb, alpha[..., None]], -1)
        if not alpha.any():
            raise PreprocessError(
                f"background removal ({method}) found no object in {name}; supply an RGBA image with the "
                "object cut out, or a photo with the object clearly separated from the background"
            )
    box = _box_xyxy(rgba[..., 3])
    longest = max(box[2] - box[0], box[3] - box[1]) + 1
    if longest < cfg.min_object_px:
        raise PreprocessError(
            f"the object in {name} is tiny ({longest} px across after resizing to at most "
            f"{cfg.max_input_side} px; at least {cfg.min_object_px} px needed): crop the photo closer to the "
            "object or check the alpha channel for stray pixels"
        )
    out, bbox = recentre_on_white(rgba, cfg.object_fill, cfg.output_size, cfg.lower_contrast)
    return PreprocessedImage(out, rgba, method, bbox, tuple(notes))


def _as_is(image: Image.Image, size: int) -> PreprocessedImage:
    """Segmenter "none": composite any alpha on white, pad to a white square, LANCZOS resize to ``size``."""
    rgba = np.asarray(image.convert("RGBA"))
    h, w = rgba.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 4), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = rgba
    resized = np.asarray(Image.fromarray(canvas).resize((size, size), Image.LANCZOS))
    return PreprocessedImage(composite_on_white(resized), rgba, "none", (0, 0, w, h))
