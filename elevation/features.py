"""Weight-free OpenCV matchers beside SIFT: AKAZE, ORB and unions of detectors (e.g. ``"sift+akaze"``).

Every detector runs once per image, so a keypoint shared by two pairs of the same detector has identical
coordinates in both (the solver's 1-px three-view association relies on that, see :mod:`elevation.sift`). A union
concatenates the matches of its detectors pair by pair. Binary descriptors (AKAZE, ORB) are compared with the
Hamming norm; matching is mutual nearest neighbours with Lowe's ratio test, confidence ``1 - ratio``, as SIFT.
"""
from __future__ import annotations

import cv2
import numpy as np

from elevation.matcher import Matcher, RawPairMatches
from elevation.matches import PAIRS
from elevation.sift import SiftMatcher

#: Detectors a weight-free matcher name may combine with "+".
DETECTORS = ("sift", "akaze", "orb")


class BinaryFeatureMatcher(SiftMatcher):
    """AKAZE or ORB keypoints with Hamming-distance mutual-NN + ratio matching (SIFT's matching otherwise)."""

    norm, descriptor_width, descriptor_dtype = cv2.NORM_HAMMING, 32, np.uint8

    def __init__(self, detector: str, ratio: float = 0.8, max_features: int = 0) -> None:
        self.ratio = float(ratio)
        self.name = detector
        if detector == "akaze":
            if not hasattr(cv2, "AKAZE_create"):  # OpenCV 5 moved AKAZE out of the main modules
                raise ValueError(f"AKAZE is not in this OpenCV build ({cv2.__version__}); use 'sift' or 'orb'")
            self._detector = cv2.AKAZE_create(threshold=0.0005)
        elif detector == "orb":
            self._detector = cv2.ORB_create(nfeatures=int(max_features) or 5000, fastThreshold=5, edgeThreshold=15)
        else:
            raise ValueError(f"unknown binary detector {detector!r}; use 'akaze' or 'orb'")


class UnionMatcher(Matcher):
    """The matches of several detectors, concatenated per pair (name ``"sift+akaze"`` etc.)."""

    def __init__(self, matchers: list[Matcher]) -> None:
        self.matchers = list(matchers)
        self.name = "+".join(m.name for m in self.matchers)

    def match_all_pairs(self, gray: list[np.ndarray]) -> dict[tuple[int, int], RawPairMatches]:
        parts = [m.match_all_pairs(gray) for m in self.matchers]
        out = {}
        for pair in PAIRS:
            out[pair] = tuple(np.concatenate([p[pair][k] for p in parts], axis=0) for k in range(3))
        return out


def parse_detectors(name: str) -> list[str]:
    """``"sift+akaze"`` -> ["sift", "akaze"]; ValueError for an unknown or repeated detector."""
    parts = [p.strip() for p in name.split("+")]
    if not parts or any(p not in DETECTORS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"a weight-free matcher is one or more of {DETECTORS} joined by '+', got {name!r}")
    return parts


def build_opencv_matcher(name: str, ratio: float = 0.8, max_features: int = 0,
                         contrast_threshold: float = 0.02) -> Matcher:
    """The weight-free matcher named ``name`` (``"sift"``, ``"akaze"``, ``"orb"`` or a '+' union)."""
    matchers: list[Matcher] = []
    for det in parse_detectors(name):
        if det == "sift":
            matchers.append(SiftMatcher(ratio, max_features, contrast_threshold))
        else:
            matchers.append(BinaryFeatureMatcher(det, ratio, max_features))
    return matchers[0] if len(matchers) == 1 else UnionMatcher(matchers)
