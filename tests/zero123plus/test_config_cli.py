"""Variant presets, config validation, the two preprocessing variants, named input errors and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from data.config import ConfigError
from data.layout import zero123plus_cameras
from data.preprocess import PreprocessError
from zero123plus import Zero123PlusPipeline, load_zero123plus_config
from zero123plus.__main__ import main as cli
from zero123plus.preprocess import prepare_input, resize_foreground, to_rgb

TINY = "configs/zero123plus/tiny.yaml"


def _rgba(box=(30, 40, 70, 110), alpha=255, size=(128, 96)) -> Image.Image:
    arr = np.zeros((size[1], size[0], 4), np.uint8)
    y0, x0, y1, x1 = box
    arr[y0:y1, x0:x1] = (200, 50, 20, alpha)
    return Image.fromarray(arr, "RGBA")


def test_variant_presets_and_precedence(tmp_path):
    v12, v11, im = (load_zero123plus_config(variant=v) for v in ("v1.2", "v1.1", "instantmesh"))
    assert (v12.sampling.timestep_spacing, v12.sampling.num_inference_steps, v12.preprocess.background) == ("trailing", 28, 127)
    assert (v11.sampling.timestep_spacing, v11.pose_set, v11.weights.pipeline) == ("linspace", "v1.1", "zero123plus_v11")
    assert (im.preprocess.background, im.preprocess.foreground_ratio, im.sampling.num_inference_steps) == (255, 0.85, 75)
    assert im.weights.unet == "instantmesh_unet" and im.pose_set == "v1.2"
    p = tmp_path / "c.yaml"
    p.write_text("variant: instantmesh\nsampling:\n  num_inference_steps: 5\n")
    cfg = load_zero123plus_config(p, overrides=["sampling.guidance_scale=2"])
    assert (cfg.variant, cfg.sampling.num_inference_steps, cfg.sampling.guidance_scale) == ("instantmesh", 5, 2.0)
    assert cfg.preprocess.background == 255  # the file's variant preset applies under the file's own values
    assert load_zero123plus_config(p, variant="v1.1").preprocess.background == 127


@pytest.mark.parametrize("overrides, match", [
    (["variant=v2"], "unknown Zero123\\+\\+ variant 'v2'; choose one of v1.2, v1.1, instantmesh"),
    (["sampling.timestep_spacing=karras"], "timestep_spacing must be one of"),
    (["sampling.height=100"], "multiples of 24/16"),
    (["sampling.height=960", "sampling.width=320"], "3x2 grid of square tiles"),
    (["preprocess.foreground_ratio=1.5"], "foreground_ratio"),
    (["model.unet.cross_attention_dim=64"], "must be equal"),
    (["sampling.nonsense=1"], "nonsense"),
])
def test_bad_configs_are_named(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_zero123plus_config(overrides=overrides)


def test_official_and_instantmesh_preprocessing():
    img = _rgba(alpha=128)
    grey = np.asarray(to_rgb(img, 127))
    assert tuple(grey[0, 0]) == (127, 127, 127) and tuple(np.asarray(to_rgb(img, 255))[0, 0]) == (255, 255, 255)
    # PIL paste with alpha 128: ~ (fg * 128 + bg * 127) / 255 per channel
    assert np.abs(grey[50, 50].astype(int) - np.round((np.array([200, 50, 20]) * 128 + 127 * 127) / 255)).max() <= 1
    framed = resize_foreground(_rgba(), 0.85)
    alpha = np.asarray(framed)[..., 3]
    ys, xs = np.nonzero(alpha)
    side = framed.size[0]
    # box 40 x 70; upstream's crop [y1:y2, x1:x2] drops the last row and column -> 39 x 69 -> square 69 -> 69 / 0.85
    assert framed.size[0] == framed.size[1] == int(69 / 0.85)
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (39, 69)
    assert abs((ys.min() + ys.max()) / 2 - (side - 1) / 2) <= 1 and abs((xs.min() + xs.max()) / 2 - (side - 1) / 2) <= 1
    rgb = Image.new("RGB", (64, 64), (10, 20, 30))
    with pytest.warns(UserWarning, match="no alpha channel"):
        assert np.asarray(prepare_input(rgb, 255, 0.85)).shape == (64, 64, 3)
    assert np.asarray(prepare_input(rgb, 127))[0, 0].tolist() == [10, 20, 30]


def test_bad_inputs_get_named_errors(tmp_path):
    with pytest.raises(PreprocessError, match="fully transparent"):
        prepare_input(_rgba(alpha=0), 127)
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    pipe = Zero123PlusPipeline.from_config(TINY)
    with pytest.raises(PreprocessError, match="not an image file"):
        pipe.generate(bad, progress=False)
    with pytest.raises(PreprocessError, match="not found"):
        pipe.generate(tmp_path / "missing.png", progress=False)
    with pytest.raises(PreprocessError, match="PIL image or an image path"):
        pipe.generate(torch.zeros(3, 64, 64), progress=False)
    with pytest.raises(ValueError, match="needs a ControlNet"):
        pipe.generate(_rgba(), depth_image=Image.new("RGB", (128, 192)), progress=False)
    pipe.add_controlnet()
    with pytest.raises(PreprocessError, match="depth_image must be 192x128"):
        pipe.generate(_rgba(), depth_image=Image.new("RGB", (64, 64)), progress=False)


def test_cli_tiny_run_writes_grid_views_and_cameras(tmp_path, capsys):
    src = tmp_path / "in.png"
    _rgba().save(src)
    out = tmp_path / "out"
    assert cli([str(src), "--config", TINY, "--out", str(out), "--device", "cpu", "--seed", "3",
                "--variant", "instantmesh", "--no-progress"]) == 0
    meta = json.loads((out / "views.json").read_text())
    assert meta["random_weights"] and meta["variant"] == "instantmesh" and meta["seed"] == 3
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (192, 128, 3)
    cams = zero123plus_cameras("v1.2", tile_px=64, dtype=torch.float64)
    for k, view in enumerate(meta["views"]):
        tile = np.asarray(Image.open(out / view["file"]))
        assert np.array_equal(tile, grid[64 * (k // 2): 64 * (k // 2 + 1), 64 * (k % 2): 64 * (k % 2 + 1)])
        assert np.allclose(view["c2w_opencv"], cams.c2w[k].numpy(), atol=1e-12)
    assert [v["elevation_deg"] for v in meta["views"]] == [20, -10, 20, -10, 20, -10]
    assert (out / "config.yaml").read_text().startswith("variant: instantmesh")


def test_cli_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    src = tmp_path / "in.png"
    _rgba().save(src)
    assert cli([str(src), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "zero123plus_v12" in err and "--config configs/zero123plus/tiny.yaml" in err
    assert cli([str(tmp_path / "nope.png"), "--config", TINY, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli([str(src), "--config", TINY, "--set", "sampling.height=7", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
