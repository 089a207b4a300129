"""Matching the 4 nearby views: the official input preparation, the matcher interface, the foreground filter.

Preparation (as ``elevation_estimate/utils/elev_est_api.py`` upstream does with the PNG files):

1. 8-bit RGB -> grayscale exactly as OpenCV's ``imread(..., IMREAD_GRAYSCALE)`` decodes an RGB PNG (libpng's
   integer conversion ``(9797 R + 19234 G + 3737 B) >> 15``, see :func:`official_grayscale`);
2. ``cv2.resize`` to ``resize_px`` x ``resize_px`` (bilinear), values / 255 for the network;
3. keypoints are mapped back with ``x * 256 / resize_px`` (float32);
4. a match is kept when both keypoints fall on the foreground, foreground = NOT(all three channels > 245).
   Upstream looks up the first image's mask at (row of the first keypoint, **column of the second**); that is the
   default here too, ``fix_mask_indexing`` uses the first keypoint's own column.
"""
from __future__ import annotations

import abc

import cv2
import numpy as np
import torch

from elevation.matches import NUM_VIEWS, PAIRS, MatchSet

#: Raw pair matches in the prepared (resized) frame: keypoints in image i, in image j (N, 2), confidence (N,).
RawPairMatches = tuple[np.ndarray, np.ndarray, np.ndarray]


class Matcher(abc.ABC):
    """Finds correspondences between prepared grayscale images."""

    #: Short name reported in results ("loftr", "sift").
    name: str = "matcher"

    @abc.abstractmethod
    def match_all_pairs(self, gray: list[np.ndarray]) -> dict[tuple[int, int], RawPairMatches]:
        """Match every pair of :data:`elevation.matches.PAIRS`.

        Args:
            gray: 4 prepared images, (R, R) uint8 each.

        Returns:
            ``{(i, j): (keypoints_i (N, 2) float32, keypoints_j (N, 2) float32, confidence (N,) float32)}``,
            keypoints as (x, y) pixels of the R x R images, confidence in [0, 1].
        """


def to_uint8_rgb(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 (rounded; exact for values k / 255)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) RGB, got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    arr = images.detach().to("cpu", torch.float64).clamp(0.0, 1.0).permute(0, 2, 3, 1).numpy()
    return np.round(arr * 255.0).astype(np.uint8)


def official_grayscale(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 gray, bit-identical to OpenCV reading an RGB PNG as grayscale.

    OpenCV's PNG decoder asks libpng for the conversion (``png_set_rgb_to_gray`` with 0.299 / 0.587), which
    uses the 15-bit integer weights (9797, 19234, 3737) and truncates; ``cv2.cvtColor`` rounds instead and
    differs by 1 grey level on about half the pixels.
    """
    r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
    return ((9797 * r + 19234 * g + 3737 * b) >> 15).astype(np.uint8)


def foreground_mask(rgb: np.ndarray, background_threshold: int = 245) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool, False where all channels are > ``background_threshold`` (white)."""
    return ~(rgb > background_threshold).all(axis=-1)


def prepare_for_matching(rgb: np.ndarray, resize_px: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (resize_px, resize_px) uint8 grayscale (official grayscale, bilinear resize)."""
    return cv2.resize(official_grayscale(rgb), (resize_px, resize_px))


def _to_original_frame(keypoints: np.ndarray, width: int, height: int, resize_px: int) -> np.ndarray:
    """Map keypoints from the resized frame back with the official float32 arithmetic ``x * W / R``."""
    out = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2).copy()
    out[:, 0] = out[:, 0] * width / resize_px
    out[:, 1] = out[:, 1] * height / resize_px
    return out


def _mask_lookup(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mask values at truncated integer pixel positions (clipped into the image)."""
    h, w = mask.shape
    r = np.clip(rows.astype(int), 0, h - 1)
    c = np.clip(cols.astype(int), 0, w - 1)
    return mask[r, c]


def filter_foreground(
    kp0: np.ndarray, kp1: np.ndarray, mask0: np.ndarray, mask1: np.ndarray, fix_mask_indexing: bool = False
) -> np.ndarray:
    """(N,) bool: both keypoints on the foreground (upstream indexing unless ``fix_mask_indexing``)."""
    column0 = kp0[:, 0] if fix_mask_indexing else kp1[:, 0]
    return _mask_lookup(mask0, kp0[:, 1], column0) & _mask_lookup(mask1, kp1[:, 1], kp1[:, 0])


def match_nearby_views(
    images: torch.Tensor,
    matcher: Matcher,
    resize_px: int = 480,
    background_threshold: int = 245,
    fix_mask_indexing: bool = False,
) -> MatchSet:
    """Correspondences between the 4 nearby views, prepared and filtered as upstream.

    Args:
        images: (4, 3, H, W) float RGB in [0, 1], white background, official order 0_0..0_3.
        matcher: any :class:`Matcher`.

    Returns:
        :class:`MatchSet` in H x W pixel coordinates.
    """
    raw, masks = raw_nearby_matches(images, matcher, resize_px, background_threshold)
    return filter_raw_matches(raw, masks, resize_px, fix_mask_indexing)


def raw_nearby_matches(
    images: torch.Tensor, matcher: Matcher, resize_px: int = 480, background_threshold: int = 245
) -> tuple[dict[tuple[int, int], RawPairMatches], list[np.ndarray]]:
    """The matcher's raw pair matches (prepared frame) and the 4 foreground masks (H, W) bool, before filtering."""
    if images.ndim != 4 or images.shape[0] != NUM_VIEWS:
        raise ValueError(f"expected the {NUM_VIEWS} nearby views as (4, 3, H, W), got {tuple(images.shape)}")
    rgb = to_uint8_rgb(images)
    masks = [foreground_mask(im, background_threshold) for im in rgb]
    gray = [prepare_for_matching(im, resize_px) for im in rgb]
    return matcher.match_all_pairs(gray), masks


def filter_raw_matches(
    raw: dict[tuple[int, int], RawPairMatches], masks: list[np.ndarray], resize_px: int = 480,
    fix_mask_indexing: bool = False,
) -> MatchSet:
    """Raw matches mapped back to the H x W frame and filtered on the foreground (upstream or fixed lookup)."""
    height, width = masks[0].shape
    pairs = {}
    for i, j in PAIRS:
        kp0, kp1, conf = raw[(i, j)]
        kp0 = _to_original_frame(kp0, width, height, resize_px)
        kp1 = _to_original_frame(kp1, width, height, resize_px)
        conf = np.asarray(conf, dtype=np.float32).reshape(-1)
        keep = filter_foreground(kp0, kp1, masks[i], masks[j], fix_mask_indexing)
        pairs[(i, j)] = np.concatenate([kp0[keep], kp1[keep], conf[keep, None]], axis=1)
    return MatchSet(pairs)
