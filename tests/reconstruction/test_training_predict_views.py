"""scripts/predict_nearby_views.py with a tiny random Zero123 on a reconstruction-layout dataset."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from _training_synthetic import render_sphere
from data import layout
from data.cameras import Cameras
from data.datasets.reconstruction_layout import all_views, write_reconstruction_object
from data.datasets.one2345_official import OfficialLayoutError
from data.datasets.rendered import RenderedReconstructionDataset
from data.render.rasterizer import RenderOutput

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import predict_nearby_views  # noqa: E402

SIZE = 64


def write_dataset(root: Path, names=("obj_a", "obj_b"), size: int = SIZE) -> Path:
    for i, name in enumerate(names):
        mains = [layout.ViewSpec(str(k), v.polar_deg, v.azimuth_deg, 0.0, 0.0, "object")
                 for k, v in enumerate(layout.first_stage_views(60.0 + 10 * i))]
        views = all_views(mains)
        cams = layout.cameras_for(views)
        k = cams.intrinsics.clone()
        k[:, :2] *= size / cams.width
        cams = Cameras(cams.c2w, k, size, size)
        rgb, mask, depth = render_sphere(cams)
        folder = root / name
        folder.mkdir(parents=True)
        write_reconstruction_object(folder, RenderOutput(rgb, mask, depth, None, cams), views,
                                    {"object_id": name})
    return root


@pytest.mark.slow
def test_predicts_resumes_and_shards(tmp_path, capsys):
    data = write_dataset(tmp_path / "ds")
    tiny = str(ROOT / "configs/zero123/tiny.yaml")
    args = ["--zero123-config", tiny, "--steps", "2", "--num-shards", "2", "--shard", "1"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert predict_nearby_views.main([str(data), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    assert len(list((data / "obj_b").glob("view_*_*_10.png"))) == 32  # object 1 belongs to shard 1 of 2
    assert not list((data / "obj_a").glob("view_*_*_10.png"))
    capsys.readouterr()
    assert predict_nearby_views.main([str(data), *args]) == 0  # resumable: nothing left to do
    assert "1 already done" in capsys.readouterr().out

    ds = RenderedReconstructionDataset(data, source_kind="predicted")
    pred = ds.load(1)
    gt = ds.load(1, "gt")
    assert pred.sources.images.shape == gt.sources.images.shape == (32, 3, SIZE, SIZE)
    assert pred.sources.source == "zero123-stage2"
    assert not torch.allclose(pred.sources.images, gt.sources.images)  # random weights predict something else
    assert 0.0 <= pred.sources.images.min() and pred.sources.images.max() <= 1.0


def test_bad_inputs(tmp_path, capsys):
    assert predict_nearby_views.main([str(tmp_path / "missing"), "--zero123-config", "x.yaml"]) == 2
    assert "not found" in capsys.readouterr().err
    assert predict_nearby_views.main([str(tmp_path), "--zero123-config", "x.yaml", "--shard", "3",
                                      "--num-shards", "2"]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="main_views"):
        predict_nearby_views.main_view_specs(tmp_path / "broken")


def test_renders_layout_feeds_the_trainer(tmp_path):
    from reconstruction.training.fit import build_loaders, build_readers, load_training_config

    data = write_dataset(tmp_path / "ds", names=("obj_a", "obj_b"), size=32)
    (data / "train.txt").write_text("obj_a\n")
    cfg = load_training_config(ROOT / "configs/train/reconstruction.yaml", [
        "data.layout=renders", f"data.root={data}", "data.train_split=train.txt", "data.val_split=",
        "data.image_size=32", "data.num_workers=0", "data.gt_source_probability=1.0"])
    train, val = build_readers(cfg)
    assert len(train) == 1 and val is None
    loader, val_loader = build_loaders(cfg, train, val)
    batch = next(iter(loader))
    assert batch["source_images"].shape == (1, 32, 3, 32, 32) and val_loader is None
    assert batch["target_mask"].sum() > 0
    predicted_only = build_loaders(dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, gt_source_probability=0.0)), train, None)[0]
    with pytest.raises(OfficialLayoutError, match="missing Zero123 prediction"):
        next(iter(predicted_only))  # official recipe (predicted sources) before predict_nearby_views.py ran
