"""Compatibility with the official key layouts (full-size manifests, checked on the 'meta' device: no memory)."""
import csv
import json

import pytest
import torch

from zero123.checkpoints.ldm import check_layout, convert_ldm_state_dict, expected_layout, infer_image_encoder_config
from zero123.checkpoints.folders import model_config_from_folder
from zero123.checkpoints.loading import load_components
from zero123.config import ModelConfig
from zero123.model import Zero123Model

MANIFESTS = "fixtures/zero123_parity/manifests"


def read_manifest(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def shape_of(row):
    return tuple(json.loads(row["shape"]))


@pytest.fixture(scope="module")
def full_layout():
    return expected_layout(ModelConfig())


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):
        return Zero123Model(ModelConfig())


def test_official_ldm_manifest_loads_without_missing_or_unexpected_keys(shared, meta_model):
    rows = read_manifest(shared(MANIFESTS) / "ldm_state_dict_full.tsv")
    dtypes = {"float32": torch.float32, "int32": torch.int32}
    state = {r["key"]: torch.empty(shape_of(r), dtype=dtypes[r["dtype"]], device="meta") for r in rows}
    assert infer_image_encoder_config(state) == ModelConfig().image_encoder
    for use_ema in (True, False):
        check_layout({k: tuple(v.shape) for k, v in state.items()}, ModelConfig(), use_ema)
        parts = convert_ldm_state_dict(state, ModelConfig(), use_ema=use_ema)
        load_components(meta_model, parts, "manifest")  # strict: raises on any missing / unexpected / shape


@pytest.mark.parametrize("component, manifest", [
    ("unet", "diffusers_unet_full.tsv"),
    ("vae", "diffusers_vae_full.tsv"),
    ("image_encoder", "diffusers_image_encoder_full.tsv"),
])
def test_diffusers_component_manifests_match_our_modules(shared, meta_model, component, manifest):
    rows = read_manifest(shared(MANIFESTS) / manifest)
    ours = {k: tuple(v.shape) for k, v in getattr(meta_model, component).state_dict().items()}
    assert {r["key"]: shape_of(r) for r in rows} == ours


@pytest.mark.parametrize("manifest, prefix", [
    ("diffusers_formatA_cc_projection_full.tsv", "projection."),
    ("diffusers_formatB_clip_camera_projection_full.tsv", "proj."),
])
def test_projector_manifests_match(shared, meta_model, manifest, prefix):
    rows = read_manifest(shared(MANIFESTS) / manifest)
    ours = {prefix + k: tuple(v.shape) for k, v in meta_model.cc_projection.state_dict().items()}
    assert {r["key"]: shape_of(r) for r in rows} == ours
    assert {r["ldm_key"] for r in rows} == {"cc_projection.weight", "cc_projection.bias"}


@pytest.mark.parametrize("component, manifest", [("unet", "diffusers_unet_full.tsv"), ("vae", "diffusers_vae_full.tsv")])
def test_our_ldm_names_equal_the_official_converter_mapping(shared, full_layout, component, manifest):
    rows = read_manifest(shared(MANIFESTS) / manifest)
    ours = full_layout.unet_map if component == "unet" else full_layout.vae_map
    assert {r["key"]: r.get("ldm_key") or r["source_ldm_key"] for r in rows} == ours
    if component == "unet":
        from zero123.checkpoints.ldm_keys import ema_key

        assert all(ema_key(r["ldm_key"]) == r["ldm_key_ema"] for r in rows)


def test_clip_mapping_matches_manifest(shared, full_layout):
    rows = read_manifest(shared(MANIFESTS) / "diffusers_image_encoder_full.tsv")
    assert {r["ldm_key"] for r in rows} == set(full_layout.clip)
    # converting a state dict whose tensors are tagged by value reproduces the manifest's row transforms
    from zero123.checkpoints.ldm_keys import CLIP_PREFIX, clip_from_openai

    visual = {k[len(CLIP_PREFIX):]: torch.zeros(s) for k, s in full_layout.clip.items()}
    hf = clip_from_openai(visual, 24)
    assert {r["key"]: shape_of(r) for r in rows} == {k: tuple(v.shape) for k, v in hf.items()}
    # q/k/v are the row thirds of the packed in_proj tensors; visual.proj is transposed
    packed = torch.arange(3 * 1024, dtype=torch.float32)[:, None].expand(-1, 1024)
    visual["transformer.resblocks.0.attn.in_proj_weight"] = packed
    visual["proj"] = torch.arange(1024 * 768, dtype=torch.float32).reshape(1024, 768)
    hf = clip_from_openai(visual, 24)
    for r in rows:
        if r["ldm_key"] == CLIP_PREFIX + "transformer.resblocks.0.attn.in_proj_weight":
            lo = int(r["transform"].split()[1].split(":")[0])
            assert torch.equal(hf[r["key"]], packed[lo:lo + 1024]), r["key"]
        if r["transform"] == "transpose":
            assert torch.equal(hf[r["key"]], visual["proj"].t())


def test_full_diffusers_configs_give_the_default_geometry(shared, tmp_path):
    configs = json.loads((shared(MANIFESTS) / "diffusers_configs_full.json").read_text())
    for name in ("unet", "vae", "image_encoder", "scheduler"):
        (tmp_path / name).mkdir()
        fname = "scheduler_config.json" if name == "scheduler" else "config.json"
        (tmp_path / name / fname).write_text(json.dumps(configs[name]))
    assert model_config_from_folder(tmp_path) == ModelConfig()
