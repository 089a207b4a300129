"""Texture-baking benchmark: texels per second and seconds for a UV texture next to the vertex-colour time.

    python scripts/bench_texture.py [--fixture ../shared/fixtures/one2345_parity/recon] [--polar 90]
                                    [--mesh-resolution 256] [--texture-size 1024] [--device auto] [--threads N]

Inputs: the parity fixture's 32 source images and weights (random images / weights without it, clearly labelled).
Phases timed once each: scene encoding, SDF grid + marching cubes at the mesh resolution (official 256), vertex
colours (the official export), and the texture bake (xatlas atlas, texel rasterisation, colour network at every
covered texel, gutter dilation). Writes a table to stdout and JSON to ``--output``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data import layout  # noqa: E402
from data.mesh import Mesh  # noqa: E402
from data.views import Views  # noqa: E402
from reconstruction.config import ReconstructionConfig  # noqa: E402
from reconstruction.meshing import marching_cubes  # noqa: E402
from reconstruction.reconstructor import Reconstructor, SceneInputs  # noqa: E402
from reconstruction.texture import bake_mesh_texture  # noqa: E402

DEFAULT_FIXTURE = REPO.parent / "shared/fixtures/one2345_parity/recon"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", default=str(DEFAULT_FIXTURE) if DEFAULT_FIXTURE.is_dir() else None)
    p.add_argument("--polar", type=int, default=90, choices=[60, 90])
    p.add_argument("--mesh-resolution", type=int, default=256)
    p.add_argument("--texture-size", type=int, default=1024)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--output", default="outputs/bench_texture.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ReconstructionConfig(device=args.device)
    fixture = Path(args.fixture) if args.fixture else None
    if fixture is not None and (fixture / "model_state.pth").is_file():
        ref = np.load(fixture / f"recon_polar{args.polar:03d}.npz")
        images = torch.from_numpy(ref["src_images_u8"]).permute(0, 3, 1, 2).float() / 255
        rec = Reconstructor.from_official_checkpoint(fixture / "model_state.pth", config=cfg)
        source = f"fixture weights and images (polar {args.polar})"
    else:
        images = torch.rand(32, 3, 256, 256, generator=torch.Generator().manual_seed(0))
        rec = Reconstructor.from_config(cfg)
        source = "RANDOM weights and images (no fixture)"
    dev = rec.device
    views = Views(images, layout.cameras_for(layout.all_nearby_views(args.polar)))
    inputs = SceneInputs.from_views(views, layout.cameras_for(layout.schedule(args.polar)[:1]))
    print(f"texture benchmark: {source}; device {dev}, {torch.get_num_threads()} threads, mesh "
          f"{args.mesh_resolution}^3, texture {args.texture_size}^2", flush=True)
    seconds = {}

    def timed(name, fn):
        _sync(dev)
        t = time.perf_counter()
        out = fn()
        _sync(dev)
        seconds[name] = time.perf_counter() - t
        print(f"  {name}: {seconds[name]:.2f} s", flush=True)
        return out

    with torch.no_grad():
        enc = timed("encode", lambda: rec.encode(inputs))
    volume = timed("SDF grid", lambda: rec.sdf_volume(enc, args.mesh_resolution))
    verts, faces = timed("marching cubes", lambda: marching_cubes(volume))
    verts = torch.from_numpy(verts).float()
    colours = timed("vertex colours", lambda: rec.colours(enc, verts).clamp(0, 1).cpu())
    mesh = Mesh(inputs.frame.points_to_world(verts.double()).float(), torch.from_numpy(faces), colours)
    textured, stats = timed("texture bake", lambda: bake_mesh_texture(rec, enc, mesh, args.texture_size,
                                                                        inputs.frame))
    result = {
        "source": source, "device": str(dev), "threads": torch.get_num_threads(),
        "mesh_resolution": args.mesh_resolution, "vertices": mesh.num_vertices, "faces": mesh.num_faces,
        "atlas_vertices": textured.num_vertices, "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "vertex_colours_per_second": round(mesh.num_vertices / seconds["vertex colours"], 1),
        "texture": stats.to_dict(),
    }
    vps, tps = result["vertex_colours_per_second"], stats.texels_per_second
    print("\n| mesh | vertices | vertex colours s | vertices/s | texture | texels baked | atlas s | texel colours s |"
          " texels/s | bake total s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.mesh_resolution}^3 | {mesh.num_vertices} | {seconds['vertex colours']:.1f} | {vps:.0f} | "
          f"{args.texture_size}^2 | {stats.texels} ({stats.coverage:.0%}) | {stats.seconds['atlas']:.1f} | "
          f"{stats.seconds['colours']:.1f} | {tps:.0f} | {seconds['texture bake']:.1f} |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
