"""The orchestrator: official schedule and hand-offs, elevation policy, seeds, weights check (tiny random stages)."""
from __future__ import annotations

import pytest
import torch

from data import layout
from data.weights import MissingWeightsError

pipeline = pytest.importorskip("pipeline")  # needs the three stage packages
from pipeline import (  # noqa: E402
    One2345Pipeline,
    PipelineError,
    load_pipeline_config,
    required_weights,
    stage2_conditioning,
    view_seed,
)

TINY = "configs/infer/tiny.yaml"
DEFAULT = "configs/infer/default.yaml"
IMAGE = "data/images/dreamgaussian/ghost_rgba.png"


def test_stage2_conditioning_is_8_bit_and_whitened():
    values = torch.tensor([0, 100, 252, 253, 254, 255], dtype=torch.float64) / 255
    images = values.view(1, 1, 1, 6).expand(1, 3, 1, 6).float()
    out = stage2_conditioning(images) * 255
    assert torch.equal(out[0, 0, 0].round(), torch.tensor([0.0, 100, 252, 255, 255, 255]))
    noisy = stage2_conditioning(images + 1e-6) * 255  # float noise must not push k/255 to k+1
    assert torch.equal(noisy.round(), out.round())


def test_view_seeds_are_distinct_and_per_view():
    names = [str(k) for k in range(12)] + [f"{k}_{j}" for k in range(12) for j in range(4)]
    seeds = [view_seed(7, n) for n in names]
    assert len(set(seeds)) == len(names)
    assert view_seed(None, "0") is None
    assert not set(seeds) & {view_seed(8, n) for n in names}  # neighbouring run seeds do not share view seeds


def test_weights_section_names_registry_entries():
    from data.weights import REGISTRY
    from pipeline import WeightsConfig

    assert set(WeightsConfig.__dataclass_fields__) - {"trust_pickled_checkpoints"} == set(REGISTRY)


def test_required_weights_follow_the_config():
    default = load_pipeline_config(DEFAULT)
    assert set(required_weights(default)) == {"zero123", "reconstruction", "loftr"}
    given = load_pipeline_config(DEFAULT, overrides=["elevation_policy.polar_deg=60"])
    assert set(required_weights(given)) == {"zero123", "reconstruction"}  # no LoFTR when the angle is given
    assert required_weights(load_pipeline_config(TINY)) == {}
    sam = load_pipeline_config(DEFAULT, overrides=["preprocess.segmenter=sam"])
    assert {"u2net", "sam"} <= set(required_weights(sam))


def test_bad_config_values_fail_early():
    from data.config import ConfigError

    with pytest.raises(ConfigError, match="on_failure"):
        load_pipeline_config(TINY, overrides=["elevation_policy.on_failure=ignore"])
    with pytest.raises(ConfigError):
        load_pipeline_config(TINY, overrides=["no_such_key=1"])
    with pytest.raises(ConfigError, match="polar_deg"):
        load_pipeline_config(TINY, overrides=["elevation_policy.polar_deg=200"])


def test_missing_weights_stop_before_any_model_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    built = []
    monkeypatch.setattr(pipeline.Zero123Pipeline, "from_pretrained", classmethod(lambda *a, **k: built.append(1)))
    with pytest.raises(MissingWeightsError) as info:
        One2345Pipeline.from_config(load_pipeline_config(DEFAULT))
    assert [s.name for s, _, _ in info.value.missing] == ["zero123", "reconstruction", "loftr"]
    assert not built


def test_weights_in_the_official_layouts_are_loaded(tmp_path):
    """Local files in the official key layouts (LDM .ckpt, ckpt_215000.pth dict, LoFTR Lightning ckpt) go through
    the registry into the stages: the loaded parameters are the written ones."""
    from elevation.loftr import LoFTRMatcher, build_loftr
    from reconstruction.model import CHECKPOINT_KEYS, ReconstructionModel
    from zero123 import Zero123Pipeline
    from zero123.checkpoints.ldm import export_ldm_state_dict

    cfg_tiny = load_pipeline_config(TINY)
    torch.manual_seed(123)
    z = Zero123Pipeline.from_config(cfg_tiny.zero123, seed=123)
    torch.save({"state_dict": export_ldm_state_dict(z.model)}, tmp_path / "zero123-xl.ckpt")
    rec = ReconstructionModel()
    flat = rec.state_dict()
    torch.save({top: {k[len(top) + 1:]: v for k, v in flat.items() if k.startswith(top + ".")}
                for top in CHECKPOINT_KEYS}, tmp_path / "ckpt_215000.pth")
    loftr = build_loftr(None)
    torch.save({"state_dict": {f"matcher.{k}": v for k, v in loftr.state_dict().items()}},
               tmp_path / "indoor_ds_new.ckpt")
    cfg = load_pipeline_config(TINY, overrides=[f"weights.zero123={tmp_path / 'zero123-xl.ckpt'}",
                                                f"weights.reconstruction={tmp_path / 'ckpt_215000.pth'}",
                                                f"weights.loftr={tmp_path / 'indoor_ds_new.ckpt'}"])
    assert cfg.random_weight_stages == ()
    pipe = One2345Pipeline.from_config(cfg)

    def same(a, b):
        return all(torch.equal(a[k].float().cpu(), b[k].float().cpu()) for k in b)

    assert same(pipe.zero123.model.unet.state_dict(), z.model.unet.state_dict())
    assert same(pipe.zero123.model.image_encoder.state_dict(), z.model.image_encoder.state_dict())
    assert same(pipe.reconstructor.model.state_dict(), {k: v for k, v in flat.items() if "num_batches" not in k})
    assert isinstance(pipe.estimator.matcher, LoFTRMatcher)
    assert same(pipe.estimator.matcher.model.state_dict(), loftr.state_dict())


class _NotATensor:
    pass


def test_refused_pickle_says_how_to_allow_it(tmp_path):
    ckpt = tmp_path / "zero123-xl.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callbacks": _NotATensor()}, ckpt)
    cfg = load_pipeline_config(TINY, overrides=[f"weights.zero123={ckpt}"])
    with pytest.raises(PipelineError, match="weights.trust_pickled_checkpoints=true"):
        One2345Pipeline.from_config(cfg)


class Spy:
    """Records the Zero123 calls of a real (tiny) Zero123 pipeline and passes them through."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, cond, pose, **kw):
        out = self.inner.generate(cond, pose, **kw)
        self.calls.append({"cond": cond.clone(), "pose": pose, "out": out.clone(), **kw})
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def tiny_pipe():
    return One2345Pipeline.from_config(load_pipeline_config(TINY))


def _estimate(polar):
    from elevation import ElevationEstimate

    return ElevationEstimate(polar, 90.0 - polar, 0.5, (60, 70), (1.0, 2.0), (64, 65), (0.5, 0.6))


@pytest.mark.slow
def test_schedule_and_hand_offs(tiny_pipe, shared, monkeypatch):
    spy = Spy(tiny_pipe.zero123)
    monkeypatch.setattr(tiny_pipe, "zero123", spy)
    seen = []
    monkeypatch.setattr(tiny_pipe.estimator, "estimate", lambda images: seen.append(images) or _estimate(64.7))
    out = tiny_pipe(shared(IMAGE))
    steps = tiny_pipe.cfg.schedule
    assert [len(c["pose"]) for c in spy.calls] == [4, 4, 4, 28]
    assert [c["num_inference_steps"] for c in spy.calls] == [steps.stage1_steps, steps.stage2_steps,
                                                             steps.stage1_steps, steps.stage2_steps]
    # the estimator sees the 4 nearby views of view 0; its 64.7 deg is truncated as upstream's int()
    assert torch.equal(seen[0], spy.calls[1]["out"])
    assert out.polar_source == "estimated" and out.polar_deg == 64.0 and out.estimate.polar_deg == 64.7
    specs = layout.schedule(64.0)  # polar <= 75: second ring 30 deg lower, ids 4..7
    expected = [specs[:4], layout.nearby_views(specs[0]), specs[4:8], specs[12:]]
    for call, views in zip(spy.calls, expected):
        want = layout.RelativePose.from_views(views)
        assert torch.allclose(call["pose"].delta_polar_deg, want.delta_polar_deg)
        assert torch.allclose(call["pose"].delta_azimuth_deg, want.delta_azimuth_deg)
    # stage 1 is conditioned on the preprocessed input, stage 2 on whitened 8-bit first-stage views
    inp = out.input.to_tensor()
    assert torch.equal(spy.calls[0]["cond"].cpu(), inp.expand(4, -1, -1, -1))
    assert torch.equal(spy.calls[2]["cond"].cpu(), inp.expand(4, -1, -1, -1))
    assert torch.equal(spy.calls[1]["cond"].cpu(), stage2_conditioning(spy.calls[0]["out"][:1]).expand(4, -1, -1, -1))
    parents = torch.cat([spy.calls[0]["out"][1:], spy.calls[2]["out"]])
    assert torch.equal(spy.calls[3]["cond"].cpu(), stage2_conditioning(parents).repeat_interleave(4, 0))
    # one seed per target, a function of the run seed and the view id only
    assert spy.calls[0]["seeds"] == [view_seed(tiny_pipe.cfg.seed, str(k)) for k in range(4)]
    assert spy.calls[3]["seeds"] == [view_seed(tiny_pipe.cfg.seed, v.name) for v in specs[12:]]
    # outputs: official names, cameras, images
    assert out.first_stage.names == ("0", "1", "2", "3", "4", "5", "6", "7")
    assert out.nearby.names == tuple(v.name for v in specs[8:])
    assert torch.allclose(out.nearby.cameras.c2w, layout.cameras_for(specs[8:]).c2w)
    assert torch.equal(out.nearby.images[4:], spy.calls[3]["out"])
    assert out.mesh.num_faces > 0 and out.random_weight_stages == ("zero123", "reconstruction", "elevation")
    assert set(out.timings) >= {"preprocess", "zero123_stage1_views_0_3", "elevation", "reconstruction"}


@pytest.mark.slow
def test_abort_policy_stops_the_run(tiny_pipe, shared, monkeypatch):
    from elevation import ElevationError

    def fail(images):
        raise ElevationError("no matches between views 1 and 3")

    monkeypatch.setattr(tiny_pipe.estimator, "estimate", fail)
    monkeypatch.setattr(tiny_pipe.cfg.elevation_policy, "on_failure", "abort")
    with pytest.raises(PipelineError, match="no matches.*--polar-deg"):
        tiny_pipe(shared(IMAGE))


def _truncated_loftr(folder):
    """A LoFTR checkpoint in the official layout, cut in half (an interrupted download)."""
    from elevation.loftr import build_loftr

    path = folder / "indoor_ds_new.ckpt"
    torch.save({"state_dict": build_loftr(None).state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_loftr_named_explicitly_stops_before_zero123_is_built(tmp_path, monkeypatch):
    path = _truncated_loftr(tmp_path)
    built = []
    monkeypatch.setattr(pipeline.Zero123Pipeline, "from_config", classmethod(lambda *a, **k: built.append(1)))
    cfg = load_pipeline_config(TINY, overrides=[f"weights.loftr={path}"])
    with pytest.raises(PipelineError, match="LoFTR") as info:
        One2345Pipeline.from_config(cfg)
    message = str(info.value)
    assert str(path) in message and "elevation.matcher.name=sift" in message and "--polar-deg" in message
    assert not built


def test_half_on_cpu_runs_float32_and_records_it():
    cfg = load_pipeline_config(TINY, overrides=["half=true", "elevation_policy.polar_deg=90"])
    with pytest.warns(UserWarning, match="half precision needs CUDA"):
        pipe = One2345Pipeline.from_config(cfg)
    assert pipe.zero123.dtype == torch.float32
    assert pipe.ran == {"matcher": None, "zero123_dtype": "float32", "device": "cpu"}
    assert any("half precision needs CUDA" in w for w in pipe.load_warnings)
