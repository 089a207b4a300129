"""infer.py --texture / --texture-size with the tiny random-weight config: textured .obj (+ .mtl + .png) and .glb
in the export frame, result.json's texture record, and the refused combinations."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from conftest import require_shared
from data import conventions as conv
from data.mesh import Mesh

infer = pytest.importorskip("infer")
pytest.importorskip("xatlas")

TINY = "configs/infer/tiny.yaml"
IMAGE = "data/images/dreamgaussian/ghost_rgba.png"


def run(*argv):
    return infer.main([str(a) for a in argv])


@pytest.mark.slow
def test_texture_flag_writes_a_textured_glb_in_the_export_frame(tmp_path):
    image = require_shared(IMAGE)
    # --texture alone: .glb (the default 1024^2 would be slow here, so the size is given; it implies --texture)
    assert run(image, "--output", tmp_path, "--config", TINY, "--polar-deg", 90, "--texture-size", 32) == 0
    folder = tmp_path / image.stem
    result = json.loads((folder / "result.json").read_text())
    assert result["mesh"]["file"] == "mesh.glb" and "export frame" in result["mesh"]["frame"]
    tex = result["mesh"]["texture"]
    assert tex["size"] == 32 and tex["texels"] > 0 and tex["source"].startswith("colour network")
    assert tex["file"].startswith("mesh.glb")
    assert "texture" in result["timings_s"] and "texture" in result["cpu_timings_s"]
    tm = trimesh.load(folder / "mesh.glb", process=False, force="mesh")
    assert tm.visual.uv is not None and tm.visual.uv.shape == (len(tm.vertices), 2)
    assert tm.visual.material.baseColorTexture.size == (32, 32)
    assert len(tm.faces) == result["mesh"]["faces"]
    # the export frame (x, y, z) -> (x, z, y): back in the world frame the object sits where the turntable sees it
    world = Mesh.load(folder / "mesh.glb").transformed(
        torch.from_numpy(np.linalg.inv(conv.EXPORT_FRAME_FROM_WORLD)).float())
    assert world.texture.shape == (32, 32, 3) and float(world.vertices.abs().max()) < 2.0


@pytest.mark.parametrize("extra", [["--format", "ply"], ["--method", "sjc"], ["--texture-size", "8"]])
def test_refused_combinations(tmp_path, capsys, extra):
    assert run("x.png", "--output", tmp_path, "--config", TINY, "--texture", *extra) == 2
    assert "--texture" in capsys.readouterr().err
