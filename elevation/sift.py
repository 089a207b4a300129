"""SIFT matcher (OpenCV, no weights): the fallback when LoFTR's weights are not available.

Differences from LoFTR that matter to the solver: SIFT keypoints are detected once per image, so the keypoint
of image ``s`` shared by pairs ``(s, a)`` and ``(s, b)`` has identical coordinates in both (the solver's 1-px
association works as with LoFTR's coarse grid); matches are sparser (textureless regions give none); the
confidence is ``1 - d1 / d2`` (Lowe's ratio of the two nearest descriptor distances), not a learned score.
Only mutual nearest neighbours passing the ratio test are kept.
"""
from __future__ import annotations

import cv2
import numpy as np

from elevation.matcher import Matcher, RawPairMatches
from elevation.matches import PAIRS


def mutual_ratio_matches(desc0: np.ndarray, desc1: np.ndarray, ratio_max: float, norm: int):
    """Indices into both descriptor sets and confidences ``1 - ratio`` of mutual nearest neighbours passing
    Lowe's ratio test (brute force, ``norm`` = cv2.NORM_L2 or cv2.NORM_HAMMING)."""
    empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32))
    if len(desc0) < 2 or len(desc1) < 2:
        return empty
    matcher = cv2.BFMatcher(norm)
    forward = matcher.knnMatch(desc0, desc1, k=2)
    backward = {m[0].queryIdx: m[0].trainIdx for m in matcher.knnMatch(desc1, desc0, k=1) if m}
    idx0, idx1, conf = [], [], []
    for pair in forward:
        if len(pair) < 2:
            continue
        best, second = pair
        ratio = best.distance / max(second.distance, 1e-12)
        if ratio < ratio_max and backward.get(best.trainIdx) == best.queryIdx:
            idx0.append(best.queryIdx)
            idx1.append(best.trainIdx)
            conf.append(1.0 - ratio)
    if not idx0:
        return empty
    return np.array(idx0), np.array(idx1), np.array(conf, dtype=np.float32)


class SiftMatcher(Matcher):
    """Mutual-nearest-neighbour SIFT matching with Lowe's ratio test.

    Args:
        ratio: maximum ratio of the best to the second-best descriptor distance (0.8 as in Lowe 2004).
        max_features: keep at most this many keypoints per image (0 = all).
        contrast_threshold: detector contrast threshold (OpenCV's default is 0.04; lower finds more keypoints
            on the smooth shading of rendered or generated views).
    """

    name = "sift"
    #: Descriptor distance, width and dtype (subclasses with binary descriptors change them).
    norm, descriptor_width, descriptor_dtype = cv2.NORM_L2, 128, np.float32

    def __init__(self, ratio: float = 0.8, max_features: int = 0, contrast_threshold: float = 0.02) -> None:
        self.ratio = float(ratio)
        self._detector = cv2.SIFT_create(nfeatures=int(max_features), contrastThreshold=float(contrast_threshold))

    def detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R, R) uint8 -> keypoints (K, 2) float32 (x, y) and descriptors (K, descriptor_width)."""
        keypoints, descriptors = self._detector.detectAndCompute(gray, None)
        if descriptors is None or not keypoints:
            return np.zeros((0, 2), np.float32), np.zeros((0, self.descriptor_width), self.descriptor_dtype)
        xy = np.array([k.pt for k in keypoints], dtype=np.float32)
        return xy, descriptors.astype(self.descriptor_dtype)

    def match_descriptors(self, desc0: np.ndarray, desc1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into both sets and confidences of mutual nearest neighbours that pass the ratio test."""
        return mutual_ratio_matches(desc0, desc1, self.ratio, self.norm)

    def match_all_pairs(self, gray: list[np.ndarray]) -> dict[tuple[int, int], RawPairMatches]:
        features = [self.detect(g) for g in gray]
        out = {}
        for i, j in PAIRS:
            (xy0, d0), (xy1, d1) = features[i], features[j]
            a, b, conf = self.match_descriptors(d0, d1)
            out[(i, j)] = (xy0[a].reshape(-1, 2), xy1[b].reshape(-1, 2), conf)
        return out
