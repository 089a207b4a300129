"""Weight folders (both diffusers layouts, ours), round trips, and named errors for bad checkpoints."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from zero123 import CheckpointError, Zero123Pipeline
from zero123.checkpoints.ldm import convert_ldm_state_dict, export_ldm_state_dict, read_checkpoint_file
from zero123.config import load_zero123_config

TINY = "fixtures/zero123_parity/tiny"
TINY_CFG = "configs/zero123/tiny.yaml"


@pytest.fixture(scope="module")
def official():
    from conftest import require_shared

    root = require_shared(TINY)
    pipe = Zero123Pipeline.from_pretrained(root / "zero123_tiny.ckpt", original_config=root / "zero123_tiny.yaml")
    return root, dict(np.load(root / "tiny_parity.npz")), pipe


def eps_pose0(pipe, ref):
    """Guided noise for pose 0, t = 981 from the recorded conditioning."""
    ctx = torch.from_numpy(ref["c_crossattn"][0])
    concat = torch.from_numpy(ref["c_concat"][0])
    with torch.no_grad():
        return pipe.model.guided_noise(torch.from_numpy(ref["x_noisy"]), torch.tensor([981]), ctx, concat, 3.0)


def write_diffusers_layout(pipe, root, folder, prefix, configs, variant=None):
    suffix = f".{variant}" if variant else ""
    m = pipe.model
    m.unet.save_pretrained(root / "unet", variant=variant)
    m.vae.save_pretrained(root / "vae", variant=variant)
    m.image_encoder.save_pretrained(root / "image_encoder", variant=variant)
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(configs["scheduler"]))
    (root / folder).mkdir()
    tensors = {prefix + k: v.contiguous() for k, v in m.cc_projection.state_dict().items()}
    save_file(tensors, str(root / folder / f"diffusion_pytorch_model{suffix}.safetensors"))
    key = "model_index_formatA" if folder == "cc_projection" else "model_index_formatB"
    (root / "model_index.json").write_text(json.dumps(configs[key]))


@pytest.mark.parametrize("folder, prefix, variant", [
    ("cc_projection", "projection.", None),
    ("clip_camera_projection", "proj.", None),
    ("clip_camera_projection", "proj.", "fp16_ema"),
])
def test_both_diffusers_layouts_load_and_match_official(official, tmp_path, folder, prefix, variant):
    root, ref, pipe = official
    configs = json.loads((root / "tiny_diffusers_configs.json").read_text())
    write_diffusers_layout(pipe, tmp_path, folder, prefix, configs, variant)
    loaded = Zero123Pipeline.from_pretrained(tmp_path, variant=variant)
    assert loaded.cfg.model == pipe.cfg.model
    torch.testing.assert_close(eps_pose0(loaded, ref), torch.from_numpy(ref["eps_cfg"][0, 0]), atol=1e-4, rtol=0)


def test_wrong_projector_keys_are_named(official, tmp_path):
    root, _, pipe = official
    configs = json.loads((root / "tiny_diffusers_configs.json").read_text())
    write_diffusers_layout(pipe, tmp_path, "cc_projection", "proj.", configs)  # Format B keys in a Format A folder
    with pytest.raises(CheckpointError, match="projection.weight"):
        Zero123Pipeline.from_pretrained(tmp_path)


def test_save_pretrained_round_trip(official, tmp_path):
    _, ref, pipe = official
    out = pipe.save_pretrained(tmp_path / "saved")
    assert (out / "zero123_config.yaml").is_file()
    again = Zero123Pipeline.from_pretrained(out)
    assert again.cfg == pipe.cfg
    for a, b in zip(pipe.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    torch.testing.assert_close(eps_pose0(again, ref), torch.from_numpy(ref["eps_cfg"][0, 0]), atol=1e-4, rtol=0)


def test_export_to_official_layout_inverts_the_diffusers_conversion():
    cfg = load_zero123_config(TINY_CFG)
    pipe = Zero123Pipeline.from_config(cfg, seed=3)
    ema = {k: v + 1.0 for k, v in pipe.model.unet.state_dict().items()}
    state = export_ldm_state_dict(pipe.model, ema_unet=ema)
    for use_ema in (False, True):
        parts = convert_ldm_state_dict(state, cfg.model, use_ema=use_ema)
        expected_unet = ema if use_ema else pipe.model.unet.state_dict()
        assert parts["unet"].keys() == expected_unet.keys()
        assert all(torch.equal(parts["unet"][k], expected_unet[k]) for k in expected_unet)
        for name in ("vae", "image_encoder", "cc_projection"):
            own = getattr(pipe.model, name).state_dict()
            assert parts[name].keys() == own.keys(), name
            assert all(torch.equal(parts[name][k], own[k]) for k in own), name


# ------------------------------------------------------------------------------------------------ errors
def _tiny_state(official):
    root, _, _ = official
    return dict(read_checkpoint_file(root / "zero123_tiny.ckpt")), root


def test_missing_key_is_named(official, tmp_path):
    state, root = _tiny_state(official)
    del state["model.diffusion_model.input_blocks.1.0.in_layers.0.weight"]
    del state["cond_stage_model.model.visual.ln_post.bias"]
    torch.save({"state_dict": state}, tmp_path / "cut.ckpt")
    with pytest.raises(CheckpointError) as err:
        Zero123Pipeline.from_pretrained(tmp_path / "cut.ckpt", original_config=root / "zero123_tiny.yaml", ema=False)
    assert "model.diffusion_model.input_blocks.1.0.in_layers.0.weight" in str(err.value)
    assert "cond_stage_model.model.visual.ln_post.bias" in str(err.value)


def test_unexpected_key_and_missing_ema_are_named(official, tmp_path):
    state, root = _tiny_state(official)
    state["model.diffusion_model.extra_block.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "extra.ckpt")
    with pytest.raises(CheckpointError, match="model.diffusion_model.extra_block.weight"):
        Zero123Pipeline.from_pretrained(tmp_path / "extra.ckpt", original_config=root / "zero123_tiny.yaml")
    no_ema = {k: v for k, v in state.items() if not k.startswith("model_ema.") and "extra_block" not in k}
    torch.save(no_ema, tmp_path / "raw.ckpt")
    with pytest.raises(CheckpointError, match="model_ema"):
        Zero123Pipeline.from_pretrained(tmp_path / "raw.ckpt", original_config=root / "zero123_tiny.yaml", ema=True)


def test_mismatched_geometry_names_keys_and_shapes(official):
    _, root = _tiny_state(official)
    with pytest.raises(CheckpointError) as err:  # full-size default geometry vs the tiny file
        Zero123Pipeline.from_pretrained(root / "zero123_tiny.ckpt")
    msg = str(err.value)
    assert "model.diffusion_model.input_blocks.0.0.weight" in msg and "[32, 8, 3, 3]" in msg and "[320, 8, 3, 3]" in msg


def test_truncated_and_absent_files(official, tmp_path):
    _, root = _tiny_state(official)
    data = (root / "zero123_tiny.ckpt").read_bytes()
    (tmp_path / "half.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        Zero123Pipeline.from_pretrained(tmp_path / "half.ckpt", original_config=root / "zero123_tiny.yaml")
    with pytest.raises(CheckpointError, match="not found"):
        Zero123Pipeline.from_pretrained(tmp_path / "absent.ckpt")
    with pytest.raises(CheckpointError, match="hub"):
        Zero123Pipeline.from_pretrained("nobody/zero123-missing")
