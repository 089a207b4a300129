"""scripts/evaluate.py and scripts/run_benchmark.py end to end on generated meshes (no pipeline weights needed)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from evaluation import benchmark as bm
from evaluation.alignment import euler_zyx
from data.mesh import Mesh
from tiny_clip_fixture import tiny_clip  # noqa: E402,F401  (pytest fixture)

REPO = Path(__file__).resolve().parents[2]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shapes():
    box = trimesh.creation.box((0.4, 0.6, 1.0))
    capsule = trimesh.creation.capsule(height=0.5, radius=0.25)
    extra = trimesh.creation.box((0.2, 0.2, 0.2))
    extra.apply_translation((0.3, 0.0, 0.3))
    lump = trimesh.util.concatenate([capsule, extra])
    return {"box": box, "lump": lump}


def write_dataset(root: Path):
    gt, pred = root / "gt", root / "pred"
    gt.mkdir(parents=True)
    pred.mkdir()
    for name, m in shapes().items():
        m.export(gt / f"{name}.ply")
        moved = m.copy()
        moved.apply_transform(np.block([[euler_zyx(75, 0, 0), np.zeros((3, 1))], [np.zeros((1, 3)), 1]]))
        (pred / name).mkdir()
        moved.export(pred / name / "mesh.ply")  # pipeline layout
    trimesh.creation.icosphere(2).export(gt / "missing.ply")  # no prediction
    (gt / "broken.ply").write_bytes(trimesh.creation.icosphere(1).export(file_type="ply"))
    (pred / "broken.ply").write_text("not a mesh")
    return pred, gt


def test_evaluate_cli_writes_tables_and_reports_bad_objects(tmp_path):
    pred, gt = write_dataset(tmp_path)
    evaluate = load_script("evaluate")
    code = evaluate.main(["--pred", str(pred), "--gt", str(gt), "--protocol", "one2345", "--out",
                          str(tmp_path / "out"), "--no-render", "--no-progress", "--method", "oracle"])
    assert code == 3  # some objects failed, the rest evaluated
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["protocol"] == "one2345" and "F-score at 0.05" in data["definition"]
    recs = {r["object"]: r for r in data["objects"]}
    assert recs["box"]["status"] == "ok" and recs["lump"]["status"] == "ok"
    assert recs["lump"]["fscore@0.05"] == 1.0  # the 75 deg turn is found by the yaw search
    assert "no mesh for object 'missing'" in recs["missing"]["error"]
    assert "cannot read mesh" in recs["broken"]["error"]
    assert data["summary"]["objects_ok"] == 2 and data["summary"]["objects_total"] == 4
    md = (tmp_path / "out" / "results.md").read_text()
    assert "protocol `one2345`" in md and "**Definition.**" in md and "| oracle |" in md
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("protocol,object,status,chamfer,fscore@0.05,volume_iou")
    assert (tmp_path / "out" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a second run under another protocol, then the comparison refuses to mix protocols
    code = evaluate.main(["--pred", str(pred), "--gt", str(gt), "--protocol", "sf3d", "--out",
                          str(tmp_path / "out_sf3d"), "--objects", str(_list(tmp_path, ["box"])), "--no-progress",
                          "--set", "rotation_steps=6"])
    assert code == 0
    assert evaluate.main(["--compare", str(tmp_path / "out" / "results.json"),
                          str(tmp_path / "out_sf3d" / "results.json"), "--out", str(tmp_path / "cmp")]) == 2
    assert evaluate.main(["--compare", str(tmp_path / "out" / "results.json"),
                          str(tmp_path / "out" / "results.json"), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.md").read_text().count("| oracle |") == 2


def _list(root, names):
    path = root / "objects.txt"
    path.write_text("# objects\n" + "\n".join(names) + "\n")
    return path


def test_evaluate_cli_bad_command_lines(tmp_path, capsys):
    evaluate = load_script("evaluate")
    with pytest.raises(SystemExit):
        evaluate.main(["--pred", str(tmp_path / "nope"), "--gt", str(tmp_path), "--out", str(tmp_path / "o")])
    assert evaluate.main(["--pred", str(tmp_path), "--gt", str(tmp_path), "--protocol", "nonsense",
                          "--out", str(tmp_path / "o")]) == 2
    assert "unknown evaluation protocol" in capsys.readouterr().err


def test_render_metrics_with_a_tiny_clip(tiny_clip):
    from evaluation.clip_similarity import ClipSimilarity
    from evaluation.protocols import evaluate_meshes, load_protocol

    m = shapes()["lump"]
    mesh = Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces))
    cfg = load_protocol("one2345", ["render_size=32", "num_points=2000"])
    out = evaluate_meshes(mesh, mesh, cfg, clip=ClipSimilarity(*tiny_clip))
    assert len(out["per_view"]["psnr"]) == 24 and len(out["per_view"]["clip_similarity"]) == 24
    assert out["ssim"] > 0.99 and out["clip_similarity"] > 0.999


def test_shards_are_disjoint_and_complete():
    names = [f"obj{i:02d}" for i in range(11)]
    parts = [bm.shard(names, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(names)
    assert sum(len(p) for p in parts) == len(names)
    with pytest.raises(ValueError, match="shard index"):
        bm.shard(names, 3, 3)


def test_run_predictions_is_atomic_and_resumable(tmp_path):
    images = tmp_path / "images"
    for name in ("box", "lump", "bad"):
        (images / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), "white").save(images / name / "000.png")
    library = shapes()
    calls = []

    def predict(image_path, name):  # an oracle predictor: returns the true shape
        calls.append(name)
        if name == "bad":
            raise RuntimeError("elevation failed")
        m = library[name]
        return Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces)), {"polar_deg": 60}

    out = tmp_path / "bench"
    statuses = {s["object"]: s for s in bm.run_predictions(["bad", "box", "lump"], images, out, predict,
                                                           progress=False)}
    assert statuses["box"]["status"] == "done" and statuses["bad"]["status"] == "error"
    assert "elevation failed" in statuses["bad"]["error"]
    assert not (out / "predictions" / "bad").exists()  # nothing half-written
    info = json.loads((out / "predictions" / "box" / "result.json").read_text())
    assert info["polar_deg"] == 60 and info["input_image"].endswith("000.png")
    calls.clear()
    again = {s["object"]: s["status"] for s in bm.run_predictions(["bad", "box", "lump"], images, out, predict,
                                                                  progress=False)}
    assert calls == ["bad"] and again == {"box": "skipped", "lump": "skipped", "bad": "error"}
    with pytest.raises(RuntimeError, match="no pipeline"):
        bm.run_predictions(["bad"], images, out, None, progress=False)


def test_benchmark_runner_resumes_and_merges_shards(tmp_path):
    _, gt = write_dataset(tmp_path)
    out = tmp_path / "bench"
    # predictions already exist for box and lump (e.g. from an earlier interrupted run); none for the others
    for name, m in shapes().items():
        folder = out / "predictions" / name
        folder.mkdir(parents=True)
        m.export(folder / "mesh.ply")
        (folder / "result.json").write_text(json.dumps({"seconds": 42.0}))
    runner = load_script("run_benchmark")
    objects = _list(tmp_path, ["box", "lump", "missing"])
    common = ["--gt", str(gt), "--out", str(out), "--objects", str(objects), "--protocol", "sf3d",
              "--skip-inference", "--no-progress", "--eval-set", "rotation_steps=4", "--input-azimuth-deg", "30"]
    codes = [runner.main(common + ["--shard", str(i), "--num-shards", "2"]) for i in range(2)]
    assert sorted(codes) == [0, 3]  # the shard owning 'missing' reports it
    record = out / "evaluation" / "sf3d" / "box.json"
    first = record.stat().st_mtime_ns
    assert runner.main(common + ["--shard", "0", "--num-shards", "1"]) == 3
    assert record.stat().st_mtime_ns == first  # reused, not recomputed
    assert runner.main(common + ["--merge"]) == 3
    merged = json.loads((out / "evaluation" / "sf3d" / "results.json").read_text())
    recs = {r["object"]: r for r in merged["objects"]}
    assert recs["box"]["status"] == "ok" and recs["box"]["pipeline_seconds"] == 42.0
    assert recs["box"]["alignment"]["mode"] == "known" and recs["box"]["fscore@0.1"] == 1.0
    assert recs["missing"]["status"] == "error"


def test_yaw_transform_turns_the_input_camera_into_the_gt_frame():
    from data import conventions as conv

    m = bm.yaw_transforms(["x"], 90.0, conv.INPUT_AZIMUTH_DEG)["x"]
    cam = conv.spherical_to_position(90.0, conv.INPUT_AZIMUTH_DEG, 1.0).numpy()
    np.testing.assert_allclose(m[:3, :3] @ cam, conv.spherical_to_position(90.0, 90.0, 1.0).numpy(), atol=1e-12)


def test_random_weight_predictions_are_labelled():
    assert bm.method_label([{"object": "a"}]) == "one2345"
    label = bm.method_label([{"object": "a", "random_weight_stages": ["zero123"]}, {"object": "b"}])
    assert "RANDOM WEIGHTS: zero123" in label


@pytest.mark.slow  # ~15 s on an idle 2-core CPU (tiny random Zero123, 2 steps, 2 views)
def test_novel_view_benchmark_with_a_tiny_random_zero123(tmp_path):
    from data.cameras import Cameras
    from data.render import RenderConfig, render_mesh
    from data.render.io import save_render

    m = shapes()["lump"]
    mesh = Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces))
    polar, azimuth = [60.0, 60.0, 90.0], [30.0, 120.0, 300.0]  # view 000 is the input
    cams = Cameras.from_spherical(polar, azimuth, 1.2, 280.0, 256)
    save_render(render_mesh(mesh, cams, RenderConfig(supersample=1)), tmp_path / "views" / "lump")
    runner = load_script("run_benchmark")
    args = ["--novel-views", "--views", str(tmp_path / "views"), "--out", str(tmp_path / "bench"),
            "--zero123-config", str(REPO / "configs" / "zero123" / "tiny.yaml"), "--steps", "2", "--device", "cpu",
            "--no-progress"]
    assert runner.main(args) == 0
    gen = tmp_path / "bench" / "novel_views" / "lump"
    assert sorted(p.name for p in gen.glob("*.png")) == ["001.png", "002.png"]
    info = json.loads((gen / "generation.json").read_text())
    np.testing.assert_allclose(info["delta_polar_deg"], [0.0, 30.0], atol=1e-6)
    np.testing.assert_allclose(info["delta_azimuth_deg"], [90.0, -90.0], atol=1e-6)
    res_dir = tmp_path / "bench" / "evaluation" / "novel_views_zero123" / "shard_0_of_1"
    res = json.loads((res_dir / "results.json").read_text())
    assert "RANDOM WEIGHTS" in res["summary"]["method"] and res["objects"][0]["views"] == 2
    # resumed: nothing left to generate, so no generator is built (a bad config path is never read)
    resumed = [a if not a.endswith("tiny.yaml") else str(tmp_path / "absent.yaml") for a in args]
    assert runner.main(resumed) == 0
