"""Time per object of each evaluation protocol on meshes of increasing size; prints a table, saves JSON.

    python scripts/bench_evaluation.py [--faces 5000 80000 320000] [--protocols syncdreamer one2345 sf3d]
                                       [--render] [--output outputs/bench_evaluation]

The prediction is a noisy icosphere (marching-cubes outputs of the pipeline at resolution 256 have ~1e5 faces),
the ground truth the clean one, turned by 50 deg about +z (so the alignment search has work to do). The
syncdreamer protocol renders the GT depth maps from the mesh (no PNGs). ``--render`` adds one2345 with its 24+24
renders (pyrender, CPU).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.alignment import rotation_about_z  # noqa: E402
from evaluation.protocols import evaluate_meshes, load_protocol  # noqa: E402
from data.io import write_text_atomic  # noqa: E402
from data.mesh import Mesh  # noqa: E402

SUBDIVISIONS = {1280: 3, 5120: 4, 20480: 5, 81920: 6, 327680: 7}


def icosphere_with_faces(faces: int, noise: float, seed: int) -> Mesh:
    import trimesh

    level = min(SUBDIVISIONS.items(), key=lambda kv: abs(kv[0] - faces))[1]
    s = trimesh.creation.icosphere(level, 0.45)
    v = np.asarray(s.vertices)
    v = v * (1 + noise * np.random.default_rng(seed).standard_normal((len(v), 1)))
    v[:, 2] *= 1.4  # an ellipsoid: the rotation is observable
    v[:, 0] += 0.1 * np.sin(6 * v[:, 2])
    return Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(np.asarray(s.faces)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=int, nargs="+", default=[5000, 80000, 320000])
    p.add_argument("--protocols", nargs="+", default=["syncdreamer", "one2345", "sf3d"])
    p.add_argument("--render", action="store_true", help="also one2345 with render metrics")
    p.add_argument("--output", default=str(REPO / "outputs" / "bench_evaluation"))
    args = p.parse_args(argv)
    rows = []
    for faces in args.faces:
        gt = icosphere_with_faces(faces, 0.0, 0)
        pred = icosphere_with_faces(faces, 0.003, 1)
        turn = torch.as_tensor(rotation_about_z(50.0), dtype=torch.float32)
        pred = Mesh(pred.vertices @ turn.T, pred.faces)
        runs = [(name, []) for name in args.protocols]
        if args.render:
            runs.append(("one2345", ["render_metrics=true"]))
        for name, overrides in runs:
            cfg = load_protocol(name, overrides if name != "one2345" or overrides else ["render_metrics=false"])
            start, cpu_start = time.perf_counter(), time.process_time()
            out = evaluate_meshes(pred, gt, cfg, object_name="bench")
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            label = name + (" +renders" if cfg.render_metrics else "")
            rows.append({"protocol": label, "faces": int(pred.num_faces), "seconds": seconds, "cpu_seconds": cpu,
                         "chamfer": out.get("chamfer"), "volume_iou": out.get("volume_iou")})
            print(f"{label:20s} faces {pred.num_faces:7d}  {seconds:7.2f} s wall  {cpu:7.2f} s CPU", flush=True)
    print(f"\nload average at the end: {__import__('os').getloadavg()}")
    print("\n| protocol | faces | wall s / object | CPU s / object |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['protocol']} | {r['faces']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} |")
    out_dir = Path(args.output)
    result = {"rows": rows, "load_average": __import__("os").getloadavg(), "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                                       "torch_threads": torch.get_num_threads()}}
    write_text_atomic(out_dir / "results.json", json.dumps(result, indent=1))
    print(f"saved {out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
