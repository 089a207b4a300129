"""The reader of the official training layout, on a tiny synthetic folder written in that layout."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data import layout
from data.datasets.one2345_official import (
    IMAGE_FOLDER,
    POSE_FILE,
    SPLIT_FILE,
    One2345OfficialDataset,
    OfficialLayoutError,
)

SIZE = 16


def _write_object(folder, rng, with_gt=True):
    folder.mkdir(parents=True)
    for k in range(8):
        rgba = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
        rgba[:4, :, 3] = 0  # transparent rows -> white
        rgba[4:, :, 3] = 255
        Image.fromarray(rgba, "RGBA").save(folder / f"view_{k}.png")
        depth = np.zeros((SIZE, SIZE), np.uint16)
        depth[6:10, 6:10] = 1200 + k  # millimetres
        Image.fromarray(depth).save(folder / f"view_{k}_depth_mm.png")
        for j in range(4):
            Image.fromarray(np.full((SIZE, SIZE, 3), 10 * k + j, np.uint8)).save(folder / f"view_{k}_{j}_10.png")
            if with_gt:
                Image.fromarray(np.full((SIZE, SIZE, 3), 200 + j, np.uint8)).save(
                    folder / f"view_{k}_{j}_10_gt.png")


def _write_layout(root, polar=70.0):
    rig = layout.pose_json(polar)
    scale = SIZE / 256
    k = np.array(rig["intrinsics"]) * np.array([[scale], [scale], [1.0]])
    rig = {"intrinsics": k.tolist(), "near_far": rig["near_far"],
           "c2ws": {f"view_{i}": m for i, m in enumerate(rig["c2ws"].values())}}
    (root / POSE_FILE).write_text(json.dumps(rig))
    split = {"train": [{"folder_id": "000-000", "uid": "aaa"}, {"folder_id": "000-001", "uid": "bbb"}],
             "val": [{"folder_id": "000-001", "uid": "ccc"}]}
    (root / SPLIT_FILE).write_text(json.dumps(split))
    rng = np.random.default_rng(0)
    _write_object(root / IMAGE_FOLDER / "000-000" / "aaa", rng)
    _write_object(root / IMAGE_FOLDER / "000-001" / "bbb", rng, with_gt=False)
    return polar


def test_reads_targets_masks_depths_sources_and_cameras(tmp_path):
    polar = _write_layout(tmp_path)
    ds = One2345OfficialDataset(tmp_path, "train")
    assert len(ds) == 2 and len(One2345OfficialDataset(tmp_path, "val")) == 1
    obj = ds.load(0)
    assert obj.uid == "aaa"
    assert obj.targets.images.shape == (8, 3, SIZE, SIZE) and obj.sources.images.shape == (32, 3, SIZE, SIZE)
    assert torch.all(obj.targets.images[:, :, :4] == 1.0)  # transparent -> white
    assert obj.targets.masks.sum().item() == 8 * 16
    assert obj.target_depths[3, 0, 7, 7].item() == pytest.approx(1.203)
    assert obj.sources.names[5] == "1_1" and obj.sources.images[5, 0, 0, 0].item() == pytest.approx(11 / 255)
    expected = layout.cameras_for(layout.schedule(polar))
    assert torch.allclose(obj.targets.cameras.c2w, expected.c2w[:8], atol=1e-5)
    assert torch.allclose(obj.sources.cameras.c2w, expected.c2w[8:], atol=1e-5)
    assert obj.targets.cameras.intrinsics[0, 0, 0].item() == pytest.approx(280 * SIZE / 256)
    gt = ds.load(0, "gt")
    assert gt.sources.images[5, 0, 0, 0].item() == pytest.approx(201 / 255)


def test_resizing_scales_intrinsics(tmp_path):
    _write_layout(tmp_path)
    obj = One2345OfficialDataset(tmp_path, "train", image_size=8).load(0)
    assert obj.targets.images.shape[-1] == 8 and obj.targets.masks.shape == (8, 1, 8, 8)
    assert obj.targets.cameras.width == 8
    assert obj.sources.cameras.intrinsics[0, 0, 2].item() == pytest.approx(4.0)


def test_clear_errors(tmp_path):
    with pytest.raises(OfficialLayoutError, match="not found"):
        One2345OfficialDataset(tmp_path / "nope")
    _write_layout(tmp_path)
    with pytest.raises(OfficialLayoutError, match="no split 'test'"):
        One2345OfficialDataset(tmp_path, "test")
    ds = One2345OfficialDataset(tmp_path, "train")
    with pytest.raises(OfficialLayoutError, match="view_0_0_10_gt.png"):
        ds.load(1, "gt")
    (tmp_path / POSE_FILE).write_text(json.dumps({"intrinsics": np.eye(3).tolist(), "c2ws": {}}))
    with pytest.raises(OfficialLayoutError, match="expected 40 c2ws"):
        One2345OfficialDataset(tmp_path, "train")
