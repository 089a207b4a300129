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


# ------------------------------------------------------------------ image modes: 8-bit RGB(A) or refused by name
def _gradient16(h=8, w=64, seed=0):
    """(h, w) uint16 covering 0..65535 (both ends included) plus seeded random values."""
    g = np.linspace(0, 65535, w).round().astype(np.uint16)[None].repeat(h, 0)
    g[h // 2:] = np.random.default_rng(seed).integers(0, 65536, (h - h // 2, w), dtype=np.uint16)
    return g


def _as8(values16):
    return np.round(values16.astype(np.float64) / 257.0)


def _loaded(path):
    im = load_image(path)
    assert im.mode in ("RGB", "RGBA"), f"load_image returned mode {im.mode}"
    return np.asarray(im).astype(np.int64)


def _close(a, b):
    assert np.abs(np.asarray(a, np.int64) - np.asarray(b, np.int64)).max() <= 1


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    g = _gradient16()
    Image.fromarray(g).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    out = _loaded(tmp_path / "g16.png")
    assert out.shape == (*g.shape, 3)
    for c in range(3):
        _close(out[..., c], _as8(g))
    assert 100 < out[0, 32, 0] < 155  # mid-grey stays mid-grey (clipping made it 255)


def test_16bit_big_endian_tiff_is_scaled(tmp_path):
    g = _gradient16(seed=1)
    Image.frombytes("I;16B", (g.shape[1], g.shape[0]), g.astype(">u2").tobytes()).save(tmp_path / "b.tif")
    assert Image.open(tmp_path / "b.tif").mode == "I;16B"
    _close(_loaded(tmp_path / "b.tif")[..., 1], _as8(g))


def test_16bit_pgm_mode_I_is_scaled(tmp_path):
    g = _gradient16(seed=2)
    path = tmp_path / "g.pgm"
    path.write_bytes(b"P5\n%d %d\n65535\n" % (g.shape[1], g.shape[0]) + g.astype(">u2").tobytes())
    assert Image.open(path).mode == "I"
    _close(_loaded(path)[..., 2], _as8(g))


def test_32bit_int_tiff_in_16bit_range_is_scaled_and_outside_it_refused(tmp_path):
    g = _gradient16(seed=3).astype(np.int32)
    Image.fromarray(g).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    _close(_loaded(tmp_path / "i.tif")[..., 0], _as8(g))
    g[0, 0] = 70000
    Image.fromarray(g).save(tmp_path / "big.tif")
    with pytest.raises(PreprocessError, match=r"big\.tif.*mode 'I'.*70000.*8-bit RGB"):
        load_image(tmp_path / "big.tif")


def test_float_tiff_in_unit_range_is_scaled_and_outside_it_refused(tmp_path):
    f = np.random.default_rng(4).random((8, 32)).astype(np.float32)
    f[0, :2] = (0.0, 1.0)
    Image.fromarray(f).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    _close(_loaded(tmp_path / "f.tif")[..., 0], np.round(f * 255))
    Image.fromarray(f * 255).save(tmp_path / "f255.tif")
    with pytest.raises(PreprocessError, match=r"f255\.tif.*mode 'F'.*\[0, 1\].*8-bit RGB"):
        load_image(tmp_path / "f255.tif")


def test_grey_with_alpha_becomes_rgba(tmp_path):
    rng = np.random.default_rng(5)
    la = rng.integers(0, 256, (8, 16, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = _loaded(tmp_path / "la.png")
    assert out.shape == (8, 16, 4)
    assert (out[..., :3] == la[..., :1]).all() and (out[..., 3] == la[..., 1]).all()


def test_palette_with_transparency_becomes_rgba(tmp_path):
    p = Image.fromarray(np.array([[0, 1, 2, 1]], np.uint8), "P")
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    p.save(tmp_path / "p.png", transparency=1)
    out = _loaded(tmp_path / "p.png")
    assert out.tolist() == [[[255, 0, 0, 255], [0, 255, 0, 0], [0, 0, 255, 255], [0, 255, 0, 0]]]
    assert preprocess_image(tmp_path / "p.png", PreprocessConfig(min_object_px=1)).method == "alpha"


def test_cmyk_becomes_rgb(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 128, 64, 0], [0, 0, 0, 255]]], np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    assert _loaded(tmp_path / "c.tif").tolist() == [[[255, 255, 255], [0, 255, 255], [255, 127, 191], [0, 0, 0]]]


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_is_scaled(tmp_path, channels):
    import cv2

    rng = np.random.default_rng(6 + channels)
    rgba16 = rng.integers(0, 65536, (8, 16, channels), dtype=np.uint16)
    rgba16[0, 0] = 65535
    rgba16[0, 1] = 0
    order = [2, 1, 0, 3][:channels]  # OpenCV writes BGR(A)
    assert cv2.imwrite(str(tmp_path / "c16.png"), rgba16[..., order])
    out = _loaded(tmp_path / "c16.png")
    assert out.shape == rgba16.shape
    _close(out, _as8(rgba16))


def test_16bit_grey_key_transparency_is_kept(tmp_path):
    g = np.array([[0, 1000, 65535, 1000]], np.uint16)
    Image.fromarray(g).save(tmp_path / "t.png", transparency=1000)
    out = _loaded(tmp_path / "t.png")
    assert out[..., 3].tolist() == [[255, 0, 255, 0]]
    assert out[..., 0].tolist() == [[0, 4, 255, 4]]


def test_pil_image_passed_directly_is_converted_too():
    g = np.full((64, 64), 32896, np.uint16)  # 128 * 257
    result = preprocess_image(Image.fromarray(g), PreprocessConfig(segmenter="none"))
    assert (result.image == 128).all()


def test_unconvertible_mode_is_refused_by_name(tmp_path):
    with pytest.raises(PreprocessError, match=r"mode 'LAB'.*8-bit RGB/RGBA PNG"):
        preprocess_image(Image.new("LAB", (32, 32), (50, 0, 0)), source_name="lab.tif")
