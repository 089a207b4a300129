"""infer.py end to end with the tiny random-weight config on a real image, plus its bad-input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_shared
from data import conventions as conv
from data.mesh import Mesh

infer = pytest.importorskip("infer")
pytest.importorskip("pipeline")

TINY = "configs/infer/tiny.yaml"
IMAGE = "data/images/dreamgaussian/ghost_rgba.png"


def run(*argv):
    return infer.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    """One run with elevation estimation: random LoFTR finds no match, so the official fallback is taken."""
    image = require_shared(IMAGE)
    out = tmp_path_factory.mktemp("estimated")
    assert run(image, "--output", out, "--config", TINY) == 0
    return out / image.stem


@pytest.mark.slow
def test_estimation_run_writes_every_output(estimated):
    names = {p.name for p in estimated.iterdir()}
    assert names == {"mesh.ply", "input.png", "views.png", "turntable.png", "result.json", "config.yaml"}
    result = json.loads((estimated / "result.json").read_text())
    assert result["polar_source"] == "fallback" and result["fallback_used"] is True
    assert result["polar_deg"] == 90.0 and result["elevation_deg"] == 0.0
    assert "too few matches" in result["elevation_failure"] and result["confidence"] is None
    assert any("fallback polar angle 90" in w for w in result["warnings"])
    assert "RANDOM WEIGHTS" in result["label"]
    assert set(result["random_weights"]) == {"zero123", "elevation", "reconstruction"}
    assert result["ran"] == {"matcher": "loftr", "segmenter": "alpha", "zero123_dtype": "float32", "device": "cpu",
                             "sdf_grid": "narrow_band"}
    assert result["weights"] == {"zero123": "random initialisation", "reconstruction": "random initialisation",
                                 "loftr": "random initialisation"}
    stages = {"preprocess", "zero123_stage1_views_0_3", "zero123_stage2_view_0", "elevation",
              "zero123_stage1_ring_2", "zero123_stage2_other_views", "reconstruction"}
    assert stages <= set(result["timings_s"]) and all(v >= 0 for v in result["timings_s"].values())
    assert result["views_grid"]["columns"] == ["0", "1", "2", "3", "8", "9", "10", "11"]  # polar 90 > 75
    mesh = Mesh.load(estimated / "mesh.ply")
    assert mesh.num_faces == result["mesh"]["faces"] > 0 and mesh.vertex_colors is not None
    assert Image.open(estimated / "views.png").size == (8 * 256, 5 * 256)
    assert Image.open(estimated / "turntable.png").size == (8 * 256, 256)
    assert Image.open(estimated / "input.png").size == (256, 256)


@pytest.mark.slow
def test_resolved_config_reloads(estimated):
    from pipeline import load_pipeline_config

    cfg = load_pipeline_config(estimated / "config.yaml")
    assert cfg.weights.zero123 is None and cfg.elevation.matcher.resize_px == 64
    assert cfg.zero123.model.unet.block_out_channels == load_pipeline_config(TINY).zero123.model.unet.block_out_channels


@pytest.mark.slow
def test_export_formats_use_the_official_frame(estimated, tmp_path):
    ply = Mesh.load(estimated / "mesh.ply")
    expected = ply.vertices.double() @ torch.from_numpy(conv.EXPORT_FRAME_FROM_WORLD)[:3, :3].T
    for fmt in ("obj", "glb"):
        path = infer.export_mesh(ply, tmp_path / f"mesh.{fmt}")
        back = Mesh.load(path)
        assert back.num_faces == ply.num_faces
        assert torch.allclose(back.bounds().double(), torch.stack([expected.min(0).values, expected.max(0).values]),
                              atol=1e-5)
        assert back.vertex_colors is not None


@pytest.mark.slow
def test_given_angle_skips_estimation(tmp_path):
    image = require_shared(IMAGE)
    # polar 60 <= 75: the second ring is 30 deg lower (ids 4..7)
    assert run(image, "--output", tmp_path, "--config", TINY, "--polar-deg", 60, "--format", "obj") == 0
    folder = tmp_path / image.stem
    result = json.loads((folder / "result.json").read_text())
    assert result["polar_source"] == "user" and result["polar_deg"] == 60.0 and not result["fallback_used"]
    assert result["elevation_failure"] is None and "elevation" not in result["random_weights"]
    assert result["views_grid"]["columns"] == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert Mesh.load(folder / "mesh.obj").num_faces == result["mesh"]["faces"]
    assert "export frame" in result["mesh"]["frame"]


@pytest.mark.slow
def test_result_json_records_what_ran_and_every_fallback(tmp_path, monkeypatch):
    """--half on a CPU runs float32; an RGB photo without rembg (or its weights) is cut out by GrabCut; a given
    angle runs no matcher. result.json says what ran, lists both warnings and only the weights that were loaded."""
    rgba = Image.open(require_shared(IMAGE)).convert("RGBA")
    photo = Image.new("RGB", rgba.size, (255, 255, 255))
    photo.paste(rgba, mask=rgba.getchannel("A"))
    photo.save(tmp_path / "ghost.png")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no_u2net"))  # rembg, if installed, finds no weights
    rc = run(tmp_path / "ghost.png", "--output", tmp_path / "o", "--config", TINY, "--polar-deg", 90, "--half",
             "--segmenter", "auto")
    assert rc == 0
    result = json.loads((tmp_path / "o" / "ghost" / "result.json").read_text())
    assert result["ran"] == {"matcher": None, "segmenter": "grabcut", "zero123_dtype": "float32", "device": "cpu",
                             "sdf_grid": "narrow_band"}
    assert result["half"] is False and result["preprocess"]["method"] == "grabcut"
    assert any("half precision needs CUDA" in w for w in result["warnings"])
    assert any("fell back to OpenCV GrabCut" in w for w in result["warnings"])
    assert set(result["weights"]) == {"zero123", "reconstruction"}  # no LoFTR ran: the angle was given


def test_truncated_loftr_named_on_the_command_line_stops_the_run(tmp_path, capsys):
    from elevation.loftr import build_loftr

    image = require_shared(IMAGE)
    ckpt = tmp_path / "indoor_ds_new.ckpt"
    torch.save({"state_dict": build_loftr(None).state_dict()}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100_000])  # an interrupted download
    assert run(image, "--output", tmp_path / "o", "--config", TINY, "--set", f"weights.loftr={ckpt}") == 2
    err = capsys.readouterr().err
    assert "LoFTR" in err and str(ckpt) in err
    assert not (tmp_path / "o").exists()


def _tiny_text_to_image(folder):
    """A randomly initialised Stable-Diffusion-shaped diffusers pipeline (tokenizer with a 54-token vocabulary)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                        projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd")
    return folder / "sd"


@pytest.mark.slow
def test_prompt_makes_the_input_image(tmp_path):
    model = _tiny_text_to_image(tmp_path)
    rc = run("--prompt", "a kungfu cat", "--output", tmp_path / "out", "--config", TINY, "--polar-deg", 90,
             "--segmenter", "none", "--set", f"weights.text2image={model}", "--set", "text_to_image.steps=2",
             "--set", "text_to_image.size=64")
    assert rc == 0
    folder = tmp_path / "out" / "a_kungfu_cat"
    result = json.loads((folder / "result.json").read_text())
    assert result["input"] == "prompt: a kungfu cat" and result["preprocess"]["method"] == "none"
    assert Image.open(folder / "prompt_image.png").size == (64, 64)
    assert Mesh.load(folder / "mesh.ply").num_faces > 0


# ------------------------------------------------------------------------------------------ bad inputs
def test_missing_input_path(tmp_path, capsys):
    assert run(tmp_path / "nope.png", "--output", tmp_path / "o", "--config", TINY) == 2
    assert "input not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_output_path_that_is_a_file(tmp_path, capsys):
    image = require_shared(IMAGE)
    (tmp_path / "taken").write_text("x")
    assert run(image, "--output", tmp_path / "taken", "--config", TINY) == 2
    assert "is a file" in capsys.readouterr().err


def test_non_image_file_stops_before_any_work(tmp_path, capsys, monkeypatch):
    import pipeline

    monkeypatch.setattr(pipeline.One2345Pipeline, "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    bad = tmp_path / "photo.png"
    bad.write_text("not really a png")
    assert run(bad, "--output", tmp_path / "o", "--config", TINY) == 2
    assert "not an image file" in capsys.readouterr().err


def test_missing_weights_one_message_before_any_work(tmp_path, capsys, monkeypatch):
    import pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(pipeline.One2345Pipeline, "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    image = require_shared(IMAGE)
    assert run(image, "--output", tmp_path / "o", "--config", "configs/infer/default.yaml") == 2
    err = capsys.readouterr().err
    assert err.count("model weight file(s) are missing") == 1
    for name in ("zero123:", "reconstruction:", "loftr:", "scripts/download_weights.py --only zero123 reconstruction loftr"):
        assert name in err
    assert not (tmp_path / "o").exists()


def test_bad_config_override(tmp_path, capsys):
    image = require_shared(IMAGE)
    assert run(image, "--output", tmp_path, "--config", TINY, "--set", "schedule.stage9_steps=3") == 2
    err = capsys.readouterr().err
    assert "command-line override: key 'schedule.stage9_steps'" in err and "<dict>" not in err


def test_fully_transparent_image_fails_with_its_reason(tmp_path, capsys):
    empty = tmp_path / "empty.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(empty)
    assert run(empty, "--output", tmp_path / "o", "--config", TINY, "--polar-deg", 90) == 1
    assert "fully transparent" in capsys.readouterr().err
    assert not (tmp_path / "o" / "empty").exists()


def test_angle_flags_become_the_polar_angle():
    parse = infer.build_parser().parse_args
    assert "elevation_policy.polar_deg=60.0" in infer.config_overrides(parse(["x.png", "--polar-deg", "60"]))
    assert "elevation_policy.polar_deg=100.0" in infer.config_overrides(parse(["x.png", "--elevation-deg", "-10"]))
    with pytest.raises(SystemExit):  # both at once is refused by argparse
        parse(["x.png", "--polar-deg", "60", "--elevation-deg", "30"])


def test_folder_lists_its_images(tmp_path):
    for name in ("b.png", "a.JPG"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    args = infer.build_parser().parse_args([str(tmp_path)])
    assert [p.name for p in infer.list_inputs(args)] == ["a.JPG", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(infer.UsageError, match="holds no images"):
        infer.list_inputs(infer.build_parser().parse_args([str(tmp_path / "empty")]))


def test_views_grid_layout():
    from types import SimpleNamespace

    from data import layout
    from data.views import Views

    specs = layout.first_stage_views(60.0)
    near = layout.all_nearby_views(60.0)
    first = Views(torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 4, 4) / 255, layout.cameras_for(specs).__class__(
        layout.cameras_for(specs).c2w, layout.cameras_for(specs).intrinsics, 4, 4), names=tuple(v.name for v in specs))
    cams = layout.cameras_for(near)
    nearby = Views((100 + torch.arange(32.0)).view(32, 1, 1, 1).expand(32, 3, 4, 4) / 255,
                   cams.__class__(cams.c2w, cams.intrinsics, 4, 4), names=tuple(v.name for v in near))
    grid = np.asarray(infer.views_grid(SimpleNamespace(first_stage=first, nearby=nearby)))
    assert grid.shape == (20, 32, 3)
    assert grid[0, 4 * 5, 0] == 5  # row 0, column 5 = first-stage view "5"
    assert grid[4 * 3, 4 * 2, 0] == 100 + 2 * 4 + 2  # row 3 = nearby j = 2 of view "2"


def test_config_mistakes_name_the_file_and_line_in_one_line_before_any_model(tmp_path, capsys, monkeypatch):
    import pipeline

    monkeypatch.setattr(pipeline.One2345Pipeline, "from_config", classmethod(lambda *a, **k: pytest.fail("built")))
    image = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(image)
    cfg = tmp_path / "run.yaml"
    cases = [
        ("seed: 0\nschedule:\n  stage1_stpes: 2\n", [], f"{cfg}, line 3: key 'schedule.stage1_stpes'"),
        ("seed: 0\nschedule:\n  stage1_steps: 2\n stage2_steps: [1\n", [], f"{cfg}, line 4, column 2: malformed YAML"),
        ("seed: 0\n", ["--set", "seed"], "expected key=value, got 'seed'"),
    ]
    for text, extra, expected in cases:
        cfg.write_text(text)
        assert run(image, "--output", tmp_path / "o", "--config", cfg, *extra) == 2
        err = capsys.readouterr().err
        assert expected in err and "<dict>" not in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    stage = tmp_path / "stage.yaml"
    stage.write_text("sampling:\n  num_inference_step: 3\n")
    cfg.write_text(f"stage_configs:\n  zero123: {stage}\n")
    assert run(image, "--output", tmp_path / "o", "--config", cfg) == 2
    assert f"{stage}, line 2: key 'sampling.num_inference_step'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
