"""Preprocessing: official crop/recentre geometry, alpha handling, the GrabCut fallback, and clear errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from data.preprocess import (
    PreprocessConfig,
    PreprocessError,
    composite_on_white,
    grabcut_alpha,
    has_transparency,
    load_image,
    preprocess_image,
    recentre_on_white,
)

REAL = ["zero123_nerf_wild/minion.png", "dreamgaussian/ghost_rgba.png", "threestudio/hamburger_rgba.png"]


def _rect_rgba(size=(100, 100), box=(10, 20, 60, 30), colour=(255, 0, 0)):
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    x, y, w, h = box
    arr[y:y + h, x:x + w, :3] = colour
    arr[y:y + h, x:x + w, 3] = 255
    return arr


def test_recentre_geometry_follows_the_official_rule():
    # 60x30 object -> side int(60 / 0.75) = 80, pasted at (40 - 15, 40 - 30) = (25, 10), then x 3.2 to 256.
    out, bbox = recentre_on_white(_rect_rgba())
    assert bbox == (10, 20, 60, 30)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
    cols, rows = np.nonzero(red.any(0))[0], np.nonzero(red.any(1))[0]
    assert abs(cols.min() - 10 * 3.2) <= 1 and abs(cols.max() + 1 - 70 * 3.2) <= 1  # spans 75 % = 192 px
    assert abs(rows.min() - 25 * 3.2) <= 1 and abs(rows.max() + 1 - 55 * 3.2) <= 1
    assert (out[:20] == 255).all() and (out[:, :20] == 255).all()  # white outside the object


def test_composite_on_white_truncates():
    rgba = np.array([[[1, 1, 1, 128], [0, 0, 0, 255], [7, 8, 9, 0], [200, 100, 0, 255]]], np.uint8)
    out = composite_on_white(rgba)
    # 1/255 * 128/255 + 127/255 = 127.502/255: truncated to 127 (rounding would give 128)
    assert out.tolist() == [[[127, 127, 127], [0, 0, 0], [255, 255, 255], [200, 100, 0]]]


@pytest.mark.parametrize("name", REAL)
def test_rgba_input_uses_its_alpha(shared, name):
    path = shared(f"data/images/{name}")
    result = preprocess_image(path)
    assert result.method == "alpha" and result.image.shape == (256, 256, 3)
    # the object's longer side covers 75 % of the square (to within LANCZOS fringes)
    fg = (result.image < 250).any(-1)
    cols, rows = np.nonzero(fg.any(0))[0], np.nonzero(fg.any(1))[0]
    longest = max(cols.max() - cols.min(), rows.max() - rows.min()) + 1
    assert abs(longest - 192) <= 4
    # the input is shrunk to <= 512 px before cropping (official thumbnail)
    assert max(result.segmented.shape[:2]) <= 512


@pytest.mark.parametrize("name", REAL[:2])
@pytest.mark.parametrize("background", [(255, 255, 255), (110, 125, 140)])
def test_rgb_input_falls_back_to_grabcut_with_a_warning(shared, name, background, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda n, *a: None if n == "rembg" else object())
    rgba = Image.open(shared(f"data/images/{name}")).convert("RGBA")
    rgba.thumbnail((512, 512), Image.LANCZOS)
    arr = np.asarray(rgba).astype(np.float64)
    a = arr[..., 3:] / 255
    rgb = (arr[..., :3] * a + np.asarray(background) * (1 - a)).astype(np.uint8)
    with pytest.warns(UserWarning, match="GrabCut"):
        result = preprocess_image(Image.fromarray(rgb))
    assert result.method == "grabcut" and result.warnings
    truth, found = arr[..., 3] > 127, result.segmented[..., 3] > 127
    iou = (truth & found).sum() / (truth | found).sum()
    assert iou > 0.85, f"GrabCut IoU {iou:.3f} against the true alpha"


def test_grabcut_on_plain_background_finds_the_square():
    rgb = np.full((120, 120, 3), 240, np.uint8)
    rgb[30:90, 40:100] = (20, 90, 200)
    alpha = grabcut_alpha(rgb)
    assert (alpha[30:90, 40:100] == 255).mean() > 0.95 and (alpha[:25] == 0).all()


def test_opaque_rgba_counts_as_rgb():
    assert not has_transparency(Image.new("RGBA", (8, 8), (1, 2, 3, 255)))
    assert has_transparency(Image.new("RGBA", (8, 8), (1, 2, 3, 0)))
    assert not has_transparency(Image.new("RGB", (8, 8)))


def test_fully_transparent_rgba_is_rejected(tmp_path):
    path = tmp_path / "empty.png"
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(path)
    with pytest.raises(PreprocessError, match="fully transparent"):
        preprocess_image(path)


def test_tiny_object_is_rejected():
    arr = _rect_rgba(size=(400, 400), box=(200, 200, 5, 4))
    with pytest.raises(PreprocessError, match="tiny"):
        preprocess_image(Image.fromarray(arr))


def test_non_image_and_missing_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(PreprocessError, match="not an image"):
        load_image(text)
    with pytest.raises(PreprocessError, match="not found"):
        load_image(tmp_path / "nope.png")
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(PreprocessError):
        load_image(truncated)


def test_explicit_rembg_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda n, *a: None)
    with pytest.raises(PreprocessError, match=r"pip install -e \.\[rembg\]"):
        preprocess_image(Image.new("RGB", (64, 64)), PreprocessConfig(segmenter="rembg"))


def test_to_tensor_is_k_over_255():
    result = preprocess_image(Image.fromarray(_rect_rgba()))
    t = result.to_tensor()
    assert t.shape == (1, 3, 256, 256)
    assert np.allclose(t.numpy() * 255, np.round(t.numpy() * 255), atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess_image(Image.fromarray(_rect_rgba()))  # RGBA inputs never warn


def test_segmenter_none_keeps_the_image_as_it_is():
    rgb = np.zeros((50, 100, 3), np.uint8)
    rgb[..., 0] = 200
    result = preprocess_image(Image.fromarray(rgb), PreprocessConfig(segmenter="none"))
    assert result.method == "none" and result.image.shape == (256, 256, 3)
    assert (result.image[:50] == 255).all() and (result.image[-50:] == 255).all()  # white padding above/below
    assert (np.abs(result.image[128].astype(int) - (200, 0, 0)) <= 2).all()  # the image fills the width
