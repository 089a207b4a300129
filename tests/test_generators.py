"""The pluggable view generators (pipeline.registry): camera layouts, what each builds and loads, what the
reconstruction receives, infer.py end to end, the missing-weights message, and an oracle run (real mesh renders at
the generator's layout in place of the generated views) that fails when cameras and images are paired wrongly."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_shared
from data import conventions as conv
from data import layout
from data.config import ConfigError
from data.views import Views

pipeline = pytest.importorskip("pipeline")
from pipeline import build_pipeline, load_pipeline_config, required_weights, stage2_conditioning  # noqa: E402
from pipeline.registry import GENERATORS, generator_class  # noqa: E402

TINY = "configs/infer/tiny.yaml"
DEFAULT = "configs/infer/default.yaml"
IMAGE = "data/images/dreamgaussian/ghost_rgba.png"
NEW = ("zero123plus", "zero123plus_nearby")


# ------------------------------------------------------------------------------------------ camera layouts
@pytest.mark.parametrize("pose_set", ["v1.1", "v1.2"])
def test_nearby_layout_round_trips_through_cameras(pose_set):
    """The 24 nearby views: their rig cameras give back the absolute angles, and the relative pose from the parent
    Zero123++ view's camera (same angles on the rig) is the spec's delta, i.e. what Zero123 is conditioned on."""
    parents = layout.zero123plus_rig_views(pose_set)
    specs = layout.zero123plus_nearby_views(pose_set)
    assert [v.name for v in specs] == [f"{k}_{j}" for k in range(6) for j in range(4)]
    cams = layout.cameras_for(specs)
    polar, azimuth, radius = cams.spherical()
    assert torch.allclose(polar.double(), torch.tensor([v.polar_deg for v in specs], dtype=torch.float64), atol=1e-4)
    daz = torch.remainder(azimuth.double() - torch.tensor([v.azimuth_deg for v in specs], dtype=torch.float64)
                          + 180, 360) - 180
    assert daz.abs().max() < 1e-4 and torch.allclose(radius, torch.full_like(radius, conv.CAMERA_RADIUS))
    parent_cams = layout.cameras_for([parents[int(v.parent)] for v in specs])
    rel = layout.RelativePose.between(parent_cams, cams)
    want = layout.RelativePose.from_views(specs)
    assert torch.allclose(rel.delta_polar_deg.double(), want.delta_polar_deg, atol=1e-4)
    assert torch.allclose(rel.delta_azimuth_deg.double(), want.delta_azimuth_deg, atol=1e-4)
    # the six parents sit at the Zero123++ table's angles: elevations fixed by the variant, azimuths 30 + offsets
    six = layout.zero123plus_cameras(pose_set, tile_px=64)
    p6, a6, r6 = six.spherical()
    assert torch.allclose(90 - p6.double(), torch.tensor(layout.ZERO123PLUS_ELEVATION_DEG[pose_set],
                                                         dtype=torch.float64), atol=1e-4)
    assert torch.allclose(torch.remainder(a6.double() - 30, 360),
                          torch.tensor(layout.ZERO123PLUS_DELTA_AZIMUTH_DEG, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(p6, torch.tensor([v.polar_deg for v in parents], dtype=p6.dtype), atol=1e-4)


def test_reference_cameras_sit_at_the_input_azimuth_on_the_horizon():
    ref = layout.zero123plus_reference_camera("v1.2", tile_px=64)
    p, a, r = ref.spherical()
    assert len(ref) == 1 and float(p[0]) == pytest.approx(90.0, abs=1e-4)
    assert float(a[0]) == pytest.approx(conv.INPUT_AZIMUTH_DEG, abs=1e-4)
    assert float(r[0]) == pytest.approx(layout.zero123plus_radius("v1.2"), abs=1e-5)
    six = layout.zero123plus_cameras("v1.2", tile_px=64)
    assert torch.allclose(ref.intrinsics[0], six.intrinsics[0]) and ref.width == six.width == 64
    rig = layout.cameras_for(layout.zero123plus_nearby_reference())
    assert float(rig.spherical()[2][0]) == pytest.approx(conv.CAMERA_RADIUS, abs=1e-5)


# ------------------------------------------------------------------------------------------ config and weights
def test_registry_names_every_generator_and_refuses_unknown_ones():
    assert set(GENERATORS) == {"one2345", *NEW}
    for name in GENERATORS:
        assert generator_class(name).name == name
    with pytest.raises(ConfigError, match="unknown generator 'zero12345'.*one2345"):
        load_pipeline_config(TINY, overrides=["generator=zero12345"])


def test_each_generator_needs_only_its_weights():
    def need(*overrides):
        return set(required_weights(load_pipeline_config(DEFAULT, overrides=list(overrides))))

    assert need() == {"zero123", "reconstruction", "loftr"}
    assert need("generator=zero123plus") == {"zero123plus_v12", "reconstruction_zero123plus"}
    assert need("generator=zero123plus", "zero123plus.variant=v1.1") == {"zero123plus_v11",
                                                                         "reconstruction_zero123plus"}
    assert need("generator=zero123plus", "zero123plus.variant=instantmesh") == {
        "zero123plus_v12", "instantmesh_unet", "reconstruction_zero123plus"}
    assert need("generator=zero123plus_nearby") == {"zero123plus_v12", "zero123", "reconstruction"}
    for gen in NEW:  # no elevation estimation, whatever the elevation settings
        cfg = load_pipeline_config(TINY, overrides=[f"generator={gen}"])
        assert required_weights(cfg) == {} and "elevation" not in cfg.random_weight_stages
    assert load_pipeline_config(TINY, overrides=["generator=zero123plus_nearby"]).random_weight_stages == (
        "zero123plus", "zero123", "reconstruction")


def test_variant_presets_apply_inside_the_pipeline_config():
    cfg = load_pipeline_config(DEFAULT, overrides=["zero123plus.variant=instantmesh"])
    assert cfg.zero123plus.preprocess.background == 255 and cfg.zero123plus.sampling.num_inference_steps == 75
    tiny = load_pipeline_config(TINY)
    assert tiny.zero123plus.sampling.height == 192 and tiny.zero123plus.random_weights


def test_one_device_and_one_mesh_resolution_setting():
    cfg = load_pipeline_config(TINY, overrides=["mesh_resolution=24"])
    assert cfg.reconstruction.mesh_resolution == 24  # the run's value is copied in
    with pytest.raises(ConfigError, match="reconstruction.mesh_resolution.*one mesh_resolution setting"):
        load_pipeline_config(TINY, overrides=["reconstruction.mesh_resolution=64"])
    with pytest.raises(ConfigError, match="reconstruction.device.*one device setting"):
        load_pipeline_config(TINY, overrides=["reconstruction.device=cuda"])
    assert load_pipeline_config(TINY, overrides=["preprocess.device=cpu"]).preprocess.device == "cpu"


def test_missing_weights_name_the_zero123plus_files_and_how_to_train(tmp_path, capsys, monkeypatch):
    import infer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    for gen in NEW:
        monkeypatch.setattr(generator_class(gen), "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    image = require_shared(IMAGE)
    assert infer.main([str(image), "--output", str(tmp_path / "o"), "--config", DEFAULT,
                       "--generator", "zero123plus"]) == 2
    err = capsys.readouterr().err
    assert err.count("model weight file(s) are missing") == 1
    assert "zero123plus_v12:" in err and "reconstruction_zero123plus:" in err and "loftr" not in err
    assert "bench_train_reconstruction.py --layout zero123plus" in err
    assert "configs/train/reconstruction_zero123plus_cpu.yaml" in err
    assert infer.main([str(image), "--output", str(tmp_path / "o"), "--config", DEFAULT,
                       "--generator", "zero123plus_nearby"]) == 2
    err = capsys.readouterr().err
    for name in ("zero123plus_v12:", "zero123:", "reconstruction:"):
        assert name in err
    assert "loftr" not in err and "reconstruction_zero123plus" not in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ runs (tiny models)
class SpyReconstructor:
    """Records what the reconstruction receives and passes it to the real (tiny) reconstructor."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def reconstruct(self, sources, reference, mesh_resolution=None):
        self.calls.append({"sources": sources, "reference": reference, "mesh_resolution": mesh_resolution})
        return self.inner.reconstruct(sources, reference, mesh_resolution=mesh_resolution)


class SpyZero123:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, cond, pose, **kw):
        out = self.inner.generate(cond, pose, **kw)
        self.calls.append({"cond": cond.clone(), "pose": pose, "out": out.clone(), **kw})
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def tiny_generators():
    return {gen: build_pipeline(load_pipeline_config(TINY, overrides=[f"generator={gen}"])) for gen in NEW}


def test_from_config_builds_only_what_the_generator_needs(tiny_generators, monkeypatch):
    assert tiny_generators["zero123plus"].zero123 is None
    assert tiny_generators["zero123plus_nearby"].zero123 is not None
    assert not hasattr(tiny_generators["zero123plus"], "estimator")
    monkeypatch.setattr(pipeline.Zero123Pipeline, "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    build_pipeline(load_pipeline_config(TINY, overrides=["generator=zero123plus"]))  # no Zero123, no LoFTR


@pytest.mark.slow
def test_zero123plus_hands_its_six_posed_views_to_the_reconstruction(tiny_generators, shared, monkeypatch):
    pipe = tiny_generators["zero123plus"]
    spy = SpyReconstructor(pipe.reconstructor)
    monkeypatch.setattr(pipe, "reconstructor", spy)
    out = pipe(shared(IMAGE))
    (call,) = spy.calls
    sources, reference = call["sources"], call["reference"]
    assert sources.names == ("0", "1", "2", "3", "4", "5") and call["mesh_resolution"] == 32
    want = layout.zero123plus_cameras("v1.2", tile_px=64)
    assert torch.allclose(sources.cameras.c2w.cpu(), want.c2w) and torch.allclose(sources.cameras.intrinsics.cpu(),
                                                                                  want.intrinsics)
    assert torch.allclose(reference.c2w.cpu(), layout.zero123plus_reference_camera("v1.2", tile_px=64).c2w)
    assert torch.equal(sources.images.cpu(), out.first_stage.images) and out.nearby is None
    assert out.polar_deg is None and out.polar_source == "not_needed" and out.estimate is None
    assert out.generator == "zero123plus" and out.mesh.num_faces > 0
    assert set(out.timings) >= {"preprocess", "zero123plus", "reconstruction"} and "elevation" not in out.timings


@pytest.mark.slow
def test_zero123plus_nearby_conditions_zero123_on_the_six_views(tiny_generators, shared, monkeypatch):
    pipe = tiny_generators["zero123plus_nearby"]
    rec, z = SpyReconstructor(pipe.reconstructor), SpyZero123(pipe.zero123)
    monkeypatch.setattr(pipe, "reconstructor", rec)
    monkeypatch.setattr(pipe, "zero123", z)
    out = pipe(shared(IMAGE))
    specs = layout.zero123plus_nearby_views("v1.2")
    (zc,) = z.calls  # one batched Zero123 call for the 24 nearby views
    want = layout.RelativePose.from_views(specs)
    assert torch.allclose(zc["pose"].delta_polar_deg, want.delta_polar_deg)
    assert torch.allclose(zc["pose"].delta_azimuth_deg, want.delta_azimuth_deg)
    resized = torch.nn.functional.interpolate(out.first_stage.images, size=(256, 256), mode="bilinear",
                                              antialias=True, align_corners=False).clamp(0, 1)
    assert torch.equal(zc["cond"].cpu(), stage2_conditioning(resized).repeat_interleave(4, 0))
    assert zc["num_inference_steps"] == pipe.cfg.schedule.stage2_steps and len(set(zc["seeds"])) == 24
    (call,) = rec.calls
    assert call["sources"].names == tuple(v.name for v in specs)
    assert torch.allclose(call["sources"].cameras.c2w.cpu(), layout.cameras_for(specs).c2w)
    assert torch.equal(call["sources"].images.cpu(), zc["out"].float().cpu())
    assert torch.allclose(call["reference"].c2w.cpu(), layout.cameras_for(layout.zero123plus_nearby_reference()).c2w)
    assert out.ran["zero123_dtype"] == "float32" and out.ran["zero123plus_variant"] == "v1.2"


@pytest.mark.slow
@pytest.mark.parametrize("generator", NEW)
def test_infer_runs_each_generator_end_to_end(generator, tmp_path):
    import infer

    image = require_shared(IMAGE)
    assert infer.main([str(image), "--output", str(tmp_path), "--config", TINY, "--generator", generator]) == 0
    folder = tmp_path / image.stem
    assert {p.name for p in folder.iterdir()} == {"mesh.ply", "input.png", "views.png", "turntable.png",
                                                  "result.json", "config.yaml"}
    result = json.loads((folder / "result.json").read_text())
    assert result["generator"] == generator and "RANDOM WEIGHTS" in result["label"]
    assert result["polar_source"] == "not_needed" and result["polar_deg"] is None and not result["fallback_used"]
    assert "elevation" not in result["timings_s"] and result["ran"]["device"] == "cpu"
    assert result["ran"]["sdf_grid"] == "narrow_band"
    first = result["cameras"]["first_stage"]
    assert list(first) == [str(k) for k in range(6)]
    for k, spec in enumerate(layout.zero123plus_views("v1.2")):
        assert first[str(k)]["polar_deg"] == pytest.approx(spec.polar_deg, abs=1e-3)
        assert first[str(k)]["azimuth_deg"] == pytest.approx(spec.azimuth_deg, abs=1e-3)
    views = Image.open(folder / "views.png")
    if generator == "zero123plus":
        assert set(result["random_weights"]) == {"zero123plus", "reconstruction"}
        assert result["weights"] == {"zero123plus_v12": "random initialisation",
                                     "reconstruction_zero123plus": "random initialisation"}
        assert result["cameras"]["reconstruction_sources"] == list(first) and result["cameras"]["nearby"] == {}
        assert views.size == (2 * 64, 3 * 64) and result["views_grid"]["rows"] == 3
    else:
        assert set(result["random_weights"]) == {"zero123plus", "zero123", "reconstruction"}
        near = result["cameras"]["nearby"]
        assert list(near) == result["cameras"]["reconstruction_sources"] and len(near) == 24
        assert near["2_1"]["polar_deg"] == pytest.approx(first["2"]["polar_deg"] + 10, abs=1e-3)
        assert near["2_1"]["radius"] == pytest.approx(conv.CAMERA_RADIUS, abs=1e-5)
        assert views.size == (6 * 256, 5 * 256) and result["views_grid"]["columns"] == list(first)
    assert result["cameras"]["reference"]["polar_deg"] == pytest.approx(90.0, abs=1e-3)
    reloaded = load_pipeline_config(folder / "config.yaml")
    assert reloaded.generator == generator


# ------------------------------------------------------------------------------------------ oracle views
ORACLE_MESH = ("geometry_only/cow/cow.obj", "+y")


def _oracle_hook(mesh, true_cameras, shuffle=False):
    """Hook: render ``mesh`` at each view's TRUE camera (looked up by name in the layout, independently of the
    generator) and hand those renders over with the cameras the generator attached (``shuffle``: a wrong pairing)."""
    from data.render import MeshRenderer, RenderConfig

    def hook(views: Views) -> Views:
        cams = true_cameras(views)
        with MeshRenderer(mesh, RenderConfig(normals=False)) as renderer:
            out = renderer.render(cams)
        order = torch.roll(torch.arange(len(views)), 1) if shuffle else torch.arange(len(views))
        return Views(out.rgb[order], views.cameras, (out.alpha[order] > 0.5).float(), views.names, "oracle")

    return hook


class HullReconstructor:
    """Stands in for the (random-weight) network: the visual hull of the views it receives, with their cameras."""

    def reconstruct(self, sources, reference, mesh_resolution=None):
        from reconstruction.visual_hull import visual_hull

        try:
            mesh = visual_hull(sources.to("cpu"), None, resolution=48, bbox=(-0.7, 0.7))
        except ValueError:  # an empty hull: the silhouettes do not agree at all
            mesh = None
        return SimpleNamespace(mesh=mesh)


def _fscore(pred, gt) -> float:
    from evaluation import compare_point_clouds, sample_surface

    if pred is None:
        return 0.0
    p = sample_surface(pred.vertices.double().numpy(), pred.faces.numpy(), 5000, seed=1)
    g = sample_surface(gt.vertices.double().numpy(), gt.faces.numpy(), 5000, seed=2)
    return float(compare_point_clouds(p, g, (0.05,)).fscore[0.05])


@pytest.mark.slow
@pytest.mark.parametrize("generator", NEW)
def test_oracle_views_at_the_generator_layout_reconstruct_the_mesh(generator, tiny_generators, shared,
                                                                   monkeypatch):
    from data.assets import load_asset

    rel, up = ORACLE_MESH
    gt = load_asset(shared(f"data/meshes/{rel}"), up_axis=up, framing="rig")
    pipe = tiny_generators[generator]
    if generator == "zero123plus":
        def true_cameras(views):
            by_name = {v.name: v for v in layout.zero123plus_views("v1.2")}
            idx = [int(by_name[n].name) for n in views.names]
            return layout.zero123plus_cameras("v1.2", tile_px=views.cameras.width)[torch.tensor(idx)]
    else:
        def true_cameras(views):
            by_name = {v.name: v for v in layout.zero123plus_nearby_views("v1.2")}
            return layout.cameras_for([by_name[n] for n in views.names])
    monkeypatch.setattr(pipe, "reconstructor", HullReconstructor())
    scores = {}
    for shuffle in (False, True):
        monkeypatch.setattr(pipe, "source_views_hook", _oracle_hook(gt, true_cameras, shuffle))
        scores[shuffle] = _fscore(pipe(shared(IMAGE)).mesh, gt)
    assert scores[False] > 0.5, scores  # the hull of correctly posed silhouettes is close to the mesh
    assert scores[True] < scores[False] - 0.2, scores  # images paired with the wrong cameras are not


def test_render_dataset_selection_places_the_input_and_six_zero123plus_views():
    """``scripts/render_dataset.py --layout reconstruction --set reconstruction.view_selection=zero123plus
    reconstruction.num_main_views=7``: view 0 = the input (random polar, azimuth 30), views 1-6 = the table."""
    from data.datasets.reconstruction_layout import ReconstructionLayoutConfig, all_views, main_views

    with pytest.raises(ValueError, match="exactly 7 main views"):
        ReconstructionLayoutConfig(view_selection="zero123plus")
    cfg = ReconstructionLayoutConfig(num_main_views=7, view_selection="zero123plus")
    mains = main_views(cfg, np.random.default_rng(3))
    assert cfg.input_polar_min_deg <= mains[0].polar_deg <= cfg.input_polar_max_deg
    assert mains[0].azimuth_deg == conv.INPUT_AZIMUTH_DEG
    table = layout.zero123plus_views("v1.2")
    assert [(v.polar_deg, v.azimuth_deg) for v in mains[1:]] == [(v.polar_deg, v.azimuth_deg) for v in table]
    nearby = all_views(mains)[7:]
    want = layout.zero123plus_nearby_views("v1.2")
    assert [(v.polar_deg, v.azimuth_deg) for v in nearby[4:]] == [(v.polar_deg, v.azimuth_deg) for v in want]
