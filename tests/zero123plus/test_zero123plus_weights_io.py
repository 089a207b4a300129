"""Hub-layout loading is strict (missing / reshaped / unexpected keys named), corrupt files are refused by name,
``save_pretrained`` round-trips, the InstantMesh UNet file (plain or wrapper-prefixed keys) loads."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from zero123plus import Zero123PlusPipeline, Zero123PlusWeightsError, load_zero123plus_config

FIX = "fixtures/zero123plus_parity"
UNET = "unet/diffusion_pytorch_model.safetensors"
TEXT = "text_encoder/model.safetensors"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import require_shared

    return require_shared(FIX) / "tiny_pipeline"


def _copy(tiny, tmp_path):
    dst = tmp_path / "pipe"
    shutil.copytree(tiny, dst)
    for path in dst.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return dst


def test_tiny_hub_folder_loads(tiny):
    pipe = Zero123PlusPipeline.from_pretrained(tiny)
    assert list(pipe.model.unet.unet.config.block_out_channels) == [32, 64, 64]
    assert pipe.model.ramping_coefficients.shape == (77,)
    assert pipe.model.scheduler_config["prediction_type"] == "v_prediction"


@pytest.mark.parametrize("file, key", [(UNET, "conv_in.weight"), (TEXT, "final_layer_norm.weight")])
def test_missing_key_is_named(tiny, tmp_path, file, key):
    dst = _copy(tiny, tmp_path)
    sd = load_file(dst / file)
    del sd[key]
    save_file(sd, dst / file)
    with pytest.raises(Zero123PlusWeightsError, match=f"missing keys '{key}'"):
        Zero123PlusPipeline.from_pretrained(dst)


def test_transformers4_text_encoder_keys_load(tiny, tmp_path):
    """Hub text encoders were saved by transformers 4: ``text_model.``-prefixed keys and a ``position_ids`` buffer."""
    dst = _copy(tiny, tmp_path)
    sd = load_file(dst / TEXT)
    old = {f"text_model.{k}": v for k, v in sd.items()}
    old["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    save_file(old, dst / TEXT)
    pipe = Zero123PlusPipeline.from_pretrained(dst)
    got = pipe.model.text_encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())


def test_reshaped_and_unexpected_keys_are_named(tiny, tmp_path):
    dst = _copy(tiny, tmp_path)
    sd = load_file(dst / UNET)
    sd["conv_out.bias"] = torch.zeros(5)
    sd["extra.weight"] = torch.zeros(2)
    save_file(sd, dst / UNET)
    with pytest.raises(Zero123PlusWeightsError) as err:
        Zero123PlusPipeline.from_pretrained(dst)
    msg = str(err.value)
    assert "'conv_out.bias' [5] (expected [4])" in msg and "unexpected keys 'extra.weight'" in msg and UNET in msg


def test_corrupt_and_missing_files_are_refused(tiny, tmp_path):
    dst = _copy(tiny, tmp_path)
    data = (dst / UNET).read_bytes()
    (dst / UNET).write_bytes(data[: len(data) // 2])
    with pytest.raises(Zero123PlusWeightsError, match="truncated"):
        Zero123PlusPipeline.from_pretrained(dst)
    shutil.rmtree(dst / "vae")
    with pytest.raises(Zero123PlusWeightsError, match="missing sub-folders vae"):
        Zero123PlusPipeline.from_pretrained(dst)


def test_missing_hub_weights_give_the_project_message(monkeypatch):
    from data.weights import MissingWeightsError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-cache")
    with pytest.raises(MissingWeightsError, match="zero123plus_v12"):
        Zero123PlusPipeline.from_pretrained("sudo-ai/zero123plus-v1.2")
    with pytest.raises(MissingWeightsError, match="local path /no/such/folder does not exist"):
        Zero123PlusPipeline.from_pretrained("/no/such/folder")


def test_save_pretrained_round_trip(tiny, tmp_path):
    pipe = Zero123PlusPipeline.from_pretrained(tiny)
    out = pipe.save_pretrained(tmp_path / "saved")
    again = Zero123PlusPipeline.from_pretrained(out)
    for name in ("unet", "vae", "text_encoder", "vision_encoder"):
        a, b = getattr(pipe.model, name).state_dict(), getattr(again.model, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(pipe.model.ramping_coefficients, again.model.ramping_coefficients)
    assert again.model.vae_processor == pipe.model.vae_processor
    assert again.model.clip_processor == pipe.model.clip_processor
    assert torch.equal(again.model.tokenize("a cat"), pipe.model.tokenize("a cat"))
    assert again.model.scheduler_config["timestep_spacing"] == pipe.model.scheduler_config["timestep_spacing"]


@pytest.mark.parametrize("prefix", ["", "unet.unet.", "model.unet.unet."])
def test_instantmesh_unet_file(tiny, tmp_path, prefix):
    """A plain UNet state dict (.bin, InstantMesh) or the UNet of a Lightning checkpoint (InstantMesh's
    ``unet.unet.``, ours ``model.unet.unet.``, beside other modules' keys) replaces the UNet."""
    pipe = Zero123PlusPipeline.from_pretrained(tiny)
    sd = {k: v + 1.0 for k, v in pipe.model.unet.unet.state_dict().items()}
    path = tmp_path / "diffusion_pytorch_model.bin"
    saved = {f"{prefix}{k}": v for k, v in sd.items()}
    if prefix:
        saved = {"state_dict": {**saved, "model.vae.encoder.conv_in.weight": torch.zeros(1), "ema.shadow_0": torch.zeros(1)}}
    torch.save(saved, path)
    cfg = load_zero123plus_config(variant="instantmesh")
    im = Zero123PlusPipeline.from_pretrained(tiny, cfg, unet=path)
    got = im.model.unet.unet.state_dict()
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    assert im.cfg.preprocess.background == 255 and im.cfg.sampling.timestep_spacing == "trailing"
    bad = {k: v for k, v in sd.items() if k != "conv_in.bias"}
    torch.save(bad, path)
    with pytest.raises(Zero123PlusWeightsError, match="'conv_in.bias'"):
        im.load_unet_weights(path)
