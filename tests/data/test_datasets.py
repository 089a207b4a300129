"""Rendered training data (CPU backend): both layouts on real meshes, reloaded through the datasets."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import require_shared

from data import conventions as conv
from data import layout
from data.assets import load_asset
from data.datasets.datamodule import RenderedDataConfig, RenderedDataModule
from data.datasets.generate import DatasetRenderConfig, generate, object_ids, shard
from data.datasets.one2345_official import OfficialLayoutError
from data.datasets.reconstruction_layout import ReconstructionLayoutConfig, main_views
from data.datasets.rendered import DatasetError, RenderedReconstructionDataset, Zero123PairsDataset
from data.datasets.zero123_layout import ZERO123_FOV_DEG, Zero123LayoutConfig, read_zero123_object
from data.render import RayCaster, pixel_centers
from data.render.backends import BackendConfig
from data.render.config import RenderConfig

ASSETS = ["hope/bbq_sauce/bbq_sauce.obj", "khronos/Duck/Duck.glb"]
FAST_CPU = BackendConfig("cpu", RenderConfig(light="world", normals=False, supersample=1))


def _surface_distance(mesh, points: np.ndarray) -> np.ndarray:
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.double().numpy(), mesh.faces.numpy(), process=False)
    return trimesh.proximity.ProximityQuery(tm).on_surface(points)[1]


@pytest.fixture(scope="module")
def assets():
    root = require_shared("data/meshes")
    return [root / a for a in ASSETS]


@pytest.fixture(scope="module")
def recon_root(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    cfg = DatasetRenderConfig(layout="reconstruction", reconstruction=ReconstructionLayoutConfig(num_main_views=2),
                              backend=FAST_CPU)
    records = generate(assets, out, cfg, progress=False)
    assert [r["status"] for r in records] == ["ok", "ok"], records
    return out


@pytest.fixture(scope="module")
def zero123_root(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("zero123")
    cfg = DatasetRenderConfig(layout="zero123", zero123=Zero123LayoutConfig(num_views=3, image_size=96),
                              backend=FAST_CPU)
    records = generate(assets, out, cfg, progress=False)
    assert [r["status"] for r in records] == ["ok", "ok"], records
    return out


def test_reconstruction_depth_back_projects_onto_normalised_mesh(recon_root, assets):
    data = RenderedReconstructionDataset(recon_root, source_kind="gt")
    assert data.ids == sorted(object_ids(assets))
    for index, object_id in enumerate(data.ids):
        meta = json.loads((recon_root / object_id / "meta.json").read_text())
        mesh = load_asset(meta["asset"], up_axis=meta["up_axis"], framing=meta["framing"])
        assert meta["framing"] == "rig"
        obj = data.load(index)
        assert len(obj.targets) == 2 and len(obj.sources) == 8
        depth = obj.target_depths[:, 0].reshape(2, -1).double()
        cams = obj.targets.cameras.to(dtype=torch.float64)
        points = cams.unproject(pixel_centers(256, 256).expand(2, -1, -1), depth)[depth > 0].numpy()
        assert len(points) > 5000
        points = points[np.random.default_rng(0).permutation(len(points))[:4000]]
        dist = _surface_distance(mesh, points)
        # millimetre PNG depth: half a millimetre of quantisation
        assert dist.max() < 1e-3 * conv.OBJECT_BBOX_SIZE, dist.max()
        # masks are the depth support and agree with the rendered alpha
        assert torch.equal(obj.targets.masks, (obj.target_depths > 0).float())


def test_reconstruction_rig_is_the_inference_rig(recon_root):
    data = RenderedReconstructionDataset(recon_root)
    meta = json.loads((recon_root / data.ids[0] / "meta.json").read_text())
    mains = [layout.ViewSpec(v["name"], v["polar_deg"], v["azimuth_deg"], 0.0, 0.0, "object")
             for v in meta["main_views"]]
    expected = layout.cameras_for(mains + [v for m in mains for v in layout.nearby_views(m)], torch.float64)
    cams, names = data.cameras(0)
    assert names[:2] == ["0", "1"] and names[2:6] == ["0_0", "0_1", "0_2", "0_3"]
    assert torch.allclose(cams.c2w, expected.c2w, atol=1e-9)
    assert torch.allclose(cams.intrinsics[0], torch.tensor([[conv.FOCAL_PX, 0, 128], [0, conv.FOCAL_PX, 128],
                                                            [0, 0, 1]], dtype=torch.float64))
    assert torch.allclose(cams.centers.norm(dim=1), torch.tensor(conv.CAMERA_RADIUS, dtype=torch.float64))
    pose = json.loads((recon_root / data.ids[0] / "pose.json").read_text())
    assert pose["near_far"] == list(conv.RIG_NEAR_FAR)


def test_reconstruction_source_kinds(recon_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(recon_root, root)
    data = RenderedReconstructionDataset(root, source_kind="predicted")
    with pytest.raises(OfficialLayoutError, match="view_0_0_10.png"):
        data.load(0)
    folder = root / data.ids[0]
    # a Zero123 prediction for one nearby view: 'auto' uses it, 'gt' ignores it
    from PIL import Image

    Image.new("RGB", (256, 256), (255, 0, 0)).save(folder / "view_0_0_10.png")
    auto = RenderedReconstructionDataset(root, source_kind="auto").load(0)
    gt = RenderedReconstructionDataset(root, source_kind="gt").load(0)
    assert torch.allclose(auto.sources.images[0, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(auto.sources.images[1:], gt.sources.images[1:])
    assert "zero123-stage2" in auto.sources.source and gt.sources.source == "render"


def test_zero123_views_match_their_stored_cameras(zero123_root):
    """Official layout files; pixels the camera rays hit are opaque, pixels they miss are transparent."""
    for object_id in sorted(object_ids([zero123_root / "x" / a for a in ("bbq_sauce", "Duck")])):
        folder = zero123_root / object_id
        assert sorted(p.name for p in folder.iterdir()) == [
            "000.npy", "000.png", "001.npy", "001.png", "002.npy", "002.png", "meta.json"]
        assert np.load(folder / "000.npy").shape == (3, 4)
        n, cams = read_zero123_object(folder)
        assert n == 3 and cams.width == 96
        assert abs(conv.focal_to_fov(float(cams.intrinsics[0, 0, 0]), 96) - ZERO123_FOV_DEG) < 1e-9
        radius = cams.centers.norm(dim=1)
        assert ((radius >= 1.5) & (radius <= 2.2)).all()
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["framing"] == "bbox"  # the official Zero123 scale: longest side 1
        mesh = load_asset(meta["asset"], up_axis=meta["up_axis"], framing=meta["framing"])
        cast = RayCaster(mesh).render(cams)
        from PIL import Image

        alpha = torch.stack([torch.from_numpy(np.asarray(Image.open(folder / f"{i:03d}.png"))[..., 3].copy())
                             for i in range(n)]).reshape(n, -1)
        assert Image.open(folder / "000.png").mode == "RGBA"
        opaque, clear = alpha == 255, alpha == 0
        assert opaque.sum() > 200
        # an edge passing exactly through a pixel centre may flip that pixel: allow a couple per object
        mismatched = int((~cast.hit[opaque]).sum()) + int(cast.hit[clear].sum())
        assert mismatched <= max(2, int(0.002 * opaque.sum())), mismatched


def test_zero123_pairs_dataset_and_datamodule(zero123_root, tmp_path):
    data = Zero123PairsDataset(zero123_root, image_size=64, seed=3)
    item = data[0]
    assert item["cond_image"].shape == (3, 64, 64) and 0 <= float(item["cond_image"].min())
    assert float(item["cond_image"].max()) <= 1 and item["cond_index"] != item["target_index"]
    _, cams = read_zero123_object(zero123_root / item["object_id"])
    p, a, r = cams.spherical()
    c, t = item["cond_index"], item["target_index"]
    assert float(item["delta_polar_deg"]) == pytest.approx(float(p[t] - p[c]), abs=1e-6)
    assert float(item["delta_radius"]) == pytest.approx(float(r[t] - r[c]), abs=1e-6)
    assert data[0]["target_index"] == item["target_index"]  # seeded: fixed pairs
    (tmp_path / "train.txt").write_text("# train split\nDuck\n")
    (tmp_path / "val.txt").write_text("bbq_sauce\n")
    dm = RenderedDataModule(RenderedDataConfig(layout="zero123", root=str(zero123_root), batch_size=1,
                                               train_list=str(tmp_path / "train.txt"),
                                               val_list=str(tmp_path / "val.txt"), image_size=32))
    train, val = next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))
    assert train["object_id"] == ["Duck"] and val["object_id"] == ["bbq_sauce"]
    assert train["target_image"].shape == (1, 3, 32, 32)
    (tmp_path / "bad.txt").write_text("Duck\nnot_rendered\n")
    with pytest.raises(DatasetError, match="not_rendered"):
        Zero123PairsDataset(zero123_root, tmp_path / "bad.txt")


def test_reconstruction_datamodule_yields_objects(recon_root, tmp_path):
    (tmp_path / "train.txt").write_text("Duck\n")
    dm = RenderedDataModule(RenderedDataConfig(layout="reconstruction", root=str(recon_root), batch_size=1,
                                               train_list=str(tmp_path / "train.txt"), image_size=128))
    (obj,) = next(iter(dm.train_dataloader()))
    assert obj.uid == "Duck" and obj.targets.images.shape == (2, 3, 128, 128)
    assert float(obj.targets.cameras.intrinsics[0, 0, 0]) == pytest.approx(conv.FOCAL_PX / 2)


def test_main_view_selections():
    rng = np.random.default_rng(0)
    sphere = main_views(ReconstructionLayoutConfig(num_main_views=8), rng)
    polar = np.array([v.polar_deg for v in sphere])
    assert len(sphere) == 8 and polar.min() >= 25 and polar.max() <= 155
    assert (polar < 90).sum() == 4  # spread over both hemispheres
    inference = main_views(ReconstructionLayoutConfig(view_selection="inference"), rng)
    ref = layout.first_stage_views(inference[0].polar_deg)
    assert [(v.polar_deg, v.azimuth_deg) for v in inference] == [(v.polar_deg, v.azimuth_deg) for v in ref]
    with pytest.raises(ValueError):
        ReconstructionLayoutConfig(view_selection="inference", num_main_views=6)


def test_shards_partition_and_ids_are_unique(tmp_path):
    paths = [tmp_path / d / "textured.obj" for d in ("milk", "ketchup", "soup")] + [tmp_path / "duck.glb"]
    ids = object_ids(sorted(paths))
    assert len(set(ids)) == 4 and "milk__textured" in ids and "duck" in ids
    parts = [shard(ids, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(parts)
    with pytest.raises(ValueError):
        shard(ids, 3, 3)


def test_zero123_npy_gives_the_official_relative_pose(zero123_root):
    """Spec section 2.1: C = -R^T t from NNN.npy, polar = atan2(|C_xy|, C_z), azimuth = atan2(C_y, C_x)."""
    data = Zero123PairsDataset(zero123_root, seed=11)
    for i in range(len(data)):
        item = data[i]
        folder = zero123_root / item["object_id"]

        def spherical(index):
            rt = np.load(folder / f"{index:03d}.npy")
            c = -rt[:, :3].T @ rt[:, 3]
            return np.arctan2(np.hypot(c[0], c[1]), c[2]), np.arctan2(c[1], c[0]), np.linalg.norm(c)

        (p0, a0, r0), (p1, a1, r1) = spherical(item["cond_index"]), spherical(item["target_index"])
        assert float(item["delta_polar_deg"]) == pytest.approx(np.rad2deg(p1 - p0), abs=1e-6)
        d_az = np.deg2rad(float(item["delta_azimuth_deg"]))
        assert np.sin(d_az) == pytest.approx(np.sin((a1 - a0) % (2 * np.pi)), abs=1e-9)
        assert np.cos(d_az) == pytest.approx(np.cos((a1 - a0) % (2 * np.pi)), abs=1e-9)
        assert float(item["delta_radius"]) == pytest.approx(r1 - r0, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["sphere", "inference"])
def test_reconstruction_layout_never_cuts_an_object_by_the_frame(selection, tmp_path):
    """Every mesh of ../shared/data, all 40 views (8 main + 32 nearby): no mask pixel on the image border, and the
    object's silhouette spans at most the 75 % of the image a preprocessed input fills (+ 2 px of rasterisation)."""
    from PIL import Image

    root = require_shared("data/meshes")
    from data.datasets.generate import list_assets

    assets = list_assets(root)
    assert len(assets) >= 20
    cfg = DatasetRenderConfig(layout="reconstruction", up_axis="+y", backend=FAST_CPU,
                              reconstruction=ReconstructionLayoutConfig(view_selection=selection))
    records = generate(assets, tmp_path, cfg, progress=False)
    assert all(r["status"] == "ok" for r in records), [r for r in records if r["status"] != "ok"]
    limit = conv.INPUT_OBJECT_FILL * conv.IMAGE_SIZE + 2
    for record in records:
        folder = tmp_path / record["object_id"]
        files = sorted(f for f in folder.glob("view_*.png") if "depth" not in f.name)
        assert len(files) == 40
        alpha = np.stack([np.asarray(Image.open(f))[..., 3] for f in files]) > 0
        border = alpha[:, 0, :].any(1) | alpha[:, -1, :].any(1) | alpha[:, :, 0].any(1) | alpha[:, :, -1].any(1)
        assert not border.any(), f"{record['object_id']}: {[files[i].name for i in np.flatnonzero(border)]} cut"
        rows, cols = alpha.any(2), alpha.any(1)
        extent = [max(np.ptp(np.flatnonzero(r)), np.ptp(np.flatnonzero(c))) + 1 for r, c in zip(rows, cols)]
        assert max(extent) <= limit, (record["object_id"], max(extent))
