"""CLI error paths: unreadable, missing and wrong-size images, failed estimates (exit code 2), alpha input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from elevation.__main__ import main as cli_main
from elevation.__main__ import read_view


def write_pngs(images: torch.Tensor, folder: Path) -> list[str]:
    """Save (4, 3, H, W) images in [0, 1] as 0_0.png .. 0_3.png; returns the paths."""
    paths = []
    for k, image in enumerate(images):
        path = folder / f"0_{k}.png"
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_cli_failed_estimate_exits_2(tmp_path, capsys):
    blank = torch.ones(4, 3, 256, 256)  # white views: no foreground, no matches
    paths = write_pngs(blank, tmp_path)
    assert cli_main([*paths, "--matcher", "sift"]) == 2
    err = capsys.readouterr().err
    assert "too few matches" in err and "too_few_matches" in err


def test_cli_unreadable_and_wrong_size_images_exit_2(tmp_path, capsys):
    good = write_pngs(torch.ones(4, 3, 256, 256), tmp_path)
    assert cli_main([*good[:3], str(tmp_path / "missing.png"), "--matcher", "sift"]) == 2
    assert "not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image")
    assert cli_main([*good[:3], str(corrupt), "--matcher", "sift"]) == 2
    assert "cannot read image" in capsys.readouterr().err
    small = tmp_path / "small.png"
    Image.new("RGB", (128, 128), "white").save(small)
    assert cli_main([*good[:3], str(small), "--matcher", "sift"]) == 2
    assert "256x256" in capsys.readouterr().err


def test_cli_composites_alpha_on_white(tmp_path):
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[100:150, 100:150] = (10, 20, 30, 255)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    view = read_view(path)
    assert view.shape == (3, 256, 256)
    assert torch.all(view[:, 0, 0] == 1.0)
    assert torch.allclose(view[:, 120, 120], torch.tensor([10, 20, 30]) / 255.0)


def test_16bit_grey_view_is_scaled_not_clipped(tmp_path):
    g = np.random.default_rng(0).integers(0, 65536, (256, 256), dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(g).save(path)
    view = read_view(path)
    assert torch.allclose(view, torch.from_numpy(np.round(g / 257.0) / 255.0).float()[None].expand(3, -1, -1),
                          atol=1.01 / 255)
    bad = tmp_path / "lab.tif"
    Image.new("LAB", (256, 256)).save(bad)
    assert cli_main([str(path)] * 3 + [str(bad), "--matcher", "sift"]) == 2
