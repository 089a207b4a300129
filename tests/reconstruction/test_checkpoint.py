"""The model matches the official checkpoint manifest, and checkpoint loading fails loudly on mismatches."""
from __future__ import annotations

import ast

import pytest
import torch

from reconstruction import load_official_checkpoint
from reconstruction.checkpoint import CheckpointError
from reconstruction.model import CHECKPOINT_KEYS, ReconstructionModel


def manifest(shared) -> dict[str, list[int]]:
    lines = (shared("docs/one2345-recon-state-dict.tsv")).read_text().splitlines()
    assert lines[0] == "key\tshape"
    return {key: ast.literal_eval(shape) for key, shape in (line.split("\t") for line in lines[1:])}


def checkpoint_from_manifest(rows: dict[str, list[int]], seed: int = 0) -> dict:
    """An official-layout checkpoint dict with random tensors of the manifest's shapes."""
    gen = torch.Generator().manual_seed(seed)
    ckpt: dict = {top: {} for top in CHECKPOINT_KEYS}
    for key, shape in rows.items():
        top, sub = key.split(".", 1)
        if sub.endswith("num_batches_tracked"):
            ckpt[top][sub] = torch.tensor(7, dtype=torch.long)
        else:
            ckpt[top][sub] = torch.rand(shape, generator=gen) + 0.5
    ckpt.update(optimizer={"state": {}, "param_groups": []}, iter_step=215000, val_step=3)
    return ckpt


def test_model_has_exactly_the_manifest_keys_and_shapes(shared):
    rows = manifest(shared)
    state = ReconstructionModel().state_dict()
    assert len(rows) == 157
    assert sorted(state) == sorted(rows)
    for key, shape in rows.items():
        assert list(state[key].shape) == shape, key
    params = sum(p.numel() for p in ReconstructionModel().parameters())
    assert params == 430_912  # spec section 12's hand count


def test_checkpoint_written_from_manifest_loads(shared, tmp_path):
    ckpt = checkpoint_from_manifest(manifest(shared))
    path = tmp_path / "ckpt_215000.pth"
    torch.save(ckpt, path)
    model = load_official_checkpoint(path)
    loaded = model.state_dict()
    for top in CHECKPOINT_KEYS:
        for key, value in ckpt[top].items():
            torch.testing.assert_close(loaded[f"{top}.{key}"], value, msg=f"{top}.{key}")
    assert model.training  # batch statistics, as the official inference


def test_num_batches_tracked_is_optional(shared, tmp_path):
    ckpt = checkpoint_from_manifest(manifest(shared))
    for top in CHECKPOINT_KEYS:
        ckpt[top] = {k: v for k, v in ckpt[top].items() if not k.endswith("num_batches_tracked")}
    torch.save(ckpt, tmp_path / "c.pth")
    load_official_checkpoint(tmp_path / "c.pth")


def test_missing_key_fails_naming_it(shared, tmp_path):
    ckpt = checkpoint_from_manifest(manifest(shared))
    del ckpt["sdf_network_lod0"]["sdf_layer.lin1.weight_g"]
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['sdf_network_lod0.sdf_layer.lin1.weight_g'\]"):
        load_official_checkpoint(tmp_path / "c.pth")


def test_misshaped_key_fails_naming_it(shared, tmp_path):
    ckpt = checkpoint_from_manifest(manifest(shared))
    ckpt["sdf_network_lod0"]["sparse_costreg_net.conv3.net.0.kernel"] = torch.zeros(27, 32, 16)
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"sdf_network_lod0.sparse_costreg_net.conv3.net.0.kernel: "
                                              r"checkpoint \(27, 32, 16\) vs model \(27, 16, 32\)"):
        load_official_checkpoint(tmp_path / "c.pth")


def test_unexpected_key_and_missing_network_fail(shared, tmp_path):
    ckpt = checkpoint_from_manifest(manifest(shared))
    ckpt["rendering_network_lod0"]["extra.weight"] = torch.zeros(3)
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['rendering_network_lod0.extra.weight'\]"):
        load_official_checkpoint(tmp_path / "c.pth")
    del ckpt["variance_network_lod0"]
    torch.save(ckpt, tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="variance_network_lod0"):
        load_official_checkpoint(tmp_path / "d.pth")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ckpt_215000.pth"):
        load_official_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_official_checkpoint(bad)
    good = tmp_path / "trunc.pth"
    torch.save({"a": torch.zeros(1000)}, good)
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_official_checkpoint(good)


def test_fixture_state_dict_loads(shared):
    model = load_official_checkpoint(shared("fixtures/one2345_parity/recon") / "model_state.pth")
    assert model.rendering_network_lod0.s.item() == pytest.approx(1.5)
    assert model.variance_network_lod0.variance.item() == pytest.approx(0.3)
