"""Matching inputs as upstream prepares them, the foreground filter, SIFT, the LoFTR wrapper, the fallback."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from elevation import ElevationConfig, ElevationError, ElevationEstimator, build_matcher
from elevation.loftr import LoFTRMatcher, LoFTRWeightsError, build_loftr, load_loftr_state_dict
from elevation.matcher import (
    Matcher,
    filter_foreground,
    foreground_mask,
    match_nearby_views,
    official_grayscale,
)
from elevation.matches import PAIRS
from elevation.sift import SiftMatcher

pytestmark = pytest.mark.usefixtures("single_thread")


def test_grayscale_is_bit_identical_to_opencv_png_reading(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    rgb[:8] = 255  # include white and grey pixels
    rgb[8:16] = 77
    path = tmp_path / "view.png"
    Image.fromarray(rgb).save(path)
    expected = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(official_grayscale(rgb), expected)


def test_foreground_mask_threshold():
    rgb = np.full((2, 3, 3), 255, np.uint8)
    rgb[0, 0] = (246, 246, 246)  # all > 245: background
    rgb[0, 1] = (245, 255, 255)  # one channel not > 245: foreground
    rgb[1, 2] = (0, 0, 0)
    np.testing.assert_array_equal(foreground_mask(rgb), [[False, True, False], [False, False, True]])


def test_upstream_mask_indexing_bug_and_fix():
    mask0 = np.zeros((10, 10), bool)
    mask0[2, 3] = True  # the first keypoint's own pixel
    mask1 = np.ones((10, 10), bool)
    kp0 = np.array([[3.5, 2.2]], np.float32)  # (x, y)
    kp1 = np.array([[7.1, 5.0]], np.float32)
    # Upstream reads mask0 at (row y0 = 2, column x1 = 7): background, the match is dropped.
    assert not filter_foreground(kp0, kp1, mask0, mask1)[0]
    assert filter_foreground(kp0, kp1, mask0, mask1, fix_mask_indexing=True)[0]


class _FixedMatcher(Matcher):
    """Returns the same two correspondences for every pair (in the resized frame)."""

    name = "fixed"

    def __init__(self):
        self.seen_shapes = []

    def match_all_pairs(self, gray):
        self.seen_shapes = [(g.shape, g.dtype) for g in gray]
        kp0 = np.array([[240.0, 240.0], [5.0, 5.0]], np.float32)
        kp1 = np.array([[241.0, 239.0], [6.0, 6.0]], np.float32)
        return {pair: (kp0, kp1, np.array([0.9, 0.5], np.float32)) for pair in PAIRS}


def test_match_nearby_views_rescales_and_filters():
    images = torch.ones(4, 3, 256, 256)
    images[:, :, 96:160, 96:160] = 0.3  # grey square in the middle, white elsewhere
    matcher = _FixedMatcher()
    matches = match_nearby_views(images, matcher, resize_px=480)
    assert matcher.seen_shapes == [((480, 480), np.uint8)] * 4
    for pair in PAIRS:
        arr = matches.pairs[pair]
        assert arr.dtype == np.float32 and arr.shape == (1, 5)  # the corner match lies on the white background
        expected_x0 = np.float32(240.0) * 256 / 480
        assert arr[0, 0] == expected_x0 and arr[0, 2] == np.float32(241.0) * 256 / 480
        assert arr[0, 4] == np.float32(0.9)
    assert matches.directed(2, 0)[0, 0] == matches.pairs[(0, 2)][0, 2]


def _textured(seed: int, shift=(0, 0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (40, 40), dtype=np.uint8), (320, 320), interpolation=cv2.INTER_CUBIC)
    return np.roll(base, shift, axis=(0, 1))[40:280, 40:280].copy()


def test_sift_finds_a_known_shift_and_shares_keypoints():
    gray = [_textured(1, (0, 0)), _textured(1, (3, 0)), _textured(1, (0, 5)), _textured(1, (4, 4))]
    raw = SiftMatcher().match_all_pairs(gray)
    kp0, kp1, conf = raw[(0, 1)]
    assert len(kp0) > 50 and kp0.dtype == np.float32 and conf.dtype == np.float32
    assert np.all((conf > 0) & (conf <= 1))
    displacement = np.median(kp1 - kp0, axis=0)
    np.testing.assert_allclose(displacement, [0.0, 3.0], atol=0.1)
    # Keypoints of image 0 are detected once: the same points appear in pairs (0, 1) and (0, 2).
    common = set(map(tuple, raw[(0, 1)][0])) & set(map(tuple, raw[(0, 2)][0]))
    assert len(common) > 20


def _tiny_loftr_checkpoint(path, prefix=""):
    torch.manual_seed(0)
    state = {prefix + k: v for k, v in build_loftr().state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0}, path)


def test_loftr_wrapper_loads_official_layout_and_returns_typed_matches(tmp_path):
    ckpt = tmp_path / "indoor_ds_new.ckpt"
    _tiny_loftr_checkpoint(ckpt)
    matcher = LoFTRMatcher.from_checkpoint(ckpt, "cpu")
    assert not matcher.model.training
    matcher.model.coarse_matching.thr = 0.0  # random weights: let every mutual nearest neighbour through
    gray = [_textured(2, (k, k))[:96, :96].copy() for k in range(4)]
    raw = matcher.match_all_pairs(gray)
    assert set(raw) == set(PAIRS)
    assert sum(len(conf) for _, _, conf in raw.values()) > 0
    for kp0, kp1, conf in raw.values():
        assert kp0.dtype == kp1.dtype == conf.dtype == np.float32
        assert kp0.shape == kp1.shape == (conf.shape[0], 2)
        assert np.all((conf > 0) & (conf <= 1))
        # image-0 keypoints lie on the coarse grid (multiples of 8 px), both inside the 96 px image
        np.testing.assert_array_equal(kp0 % 8, 0)
        assert np.all((kp0 >= 0) & (kp0 < 96)) and np.all((kp1 > -8) & (kp1 < 104))


def test_loftr_checkpoint_prefix_and_errors(tmp_path):
    ckpt = tmp_path / "lightning.ckpt"
    _tiny_loftr_checkpoint(ckpt, prefix="matcher.")
    state = load_loftr_state_dict(ckpt)
    assert all(not k.startswith("matcher.") for k in state)
    build_loftr(state)  # loads strictly

    with pytest.raises(LoFTRWeightsError, match="not found"):
        load_loftr_state_dict(tmp_path / "absent.ckpt")
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"backbone.unknown": torch.zeros(1)}}, bad)
    with pytest.raises(LoFTRWeightsError, match="key layout"):
        build_loftr(load_loftr_state_dict(bad))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(LoFTRWeightsError, match="cannot read"):
        load_loftr_state_dict(garbage)


def test_missing_loftr_weights_fall_back_to_sift_with_a_warning(tmp_path):
    cfg = ElevationConfig()
    cfg.matcher.loftr_weights = str(tmp_path / "absent.ckpt")
    with pytest.warns(RuntimeWarning, match="SIFT"):
        assert build_matcher(cfg).name == cfg.matcher.fallback_matcher == "sift+orb"
    cfg.matcher.fallback_matcher = "sift"
    with pytest.warns(RuntimeWarning, match="SIFT"):
        assert isinstance(build_matcher(cfg), SiftMatcher)
    with pytest.warns(RuntimeWarning, match="SIFT"):  # the estimator switches to the weight-free settings
        est = ElevationEstimator(cfg)
        assert isinstance(est.matcher, SiftMatcher)
    assert est.cfg.solver.robust and est.cfg.matcher.fix_mask_indexing and est.cfg.matcher.name == "sift"
    assert not cfg.solver.robust  # the caller's config is not modified
    cfg.matcher.fallback_to_sift = False
    with pytest.raises(ElevationError, match="LoFTR weights not found"):
        build_matcher(cfg)
