"""Zero-1-to-3's own 3D reconstruction of one image (official 3drec SJC): image -> mesh, per-shape optimisation.

    python scripts/optimise_sjc.py photo.png                                  # official settings (real weights)
    python scripts/optimise_sjc.py photo.png --config configs/sjc/tiny.yaml   # random-weight smoke run
    python scripts/optimise_sjc.py photo.png --resume                         # continue a killed run
    python scripts/optimise_sjc.py photo.png --set n_steps=2000 --set input_polar_deg=80

Outputs in ``<output>/<image stem>/``: ``mesh.<format>`` (world frame of data.conventions, +z up, input camera at
azimuth ``input_azimuth_deg`` and radius 1.2 like the feed-forward method's meshes), ``input.png``, ``renders.png``
(decoded renders from the input view and 90/180/270 deg around), ``previews/step*.png``, ``checkpoint.pt`` (every
``checkpoint_every`` steps; ``--resume`` continues from it with the same result as an uninterrupted run),
``config.yaml``, ``turntable.png`` (CPU renders of the mesh, as infer.py) and ``result.json`` (loss curves per step,
settings, threshold, timings).
Exit status 2 with a one-line message for a bad config, image or missing weights (checked before any work).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("image", help="input image (RGBA uses its alpha; RGB is segmented as in infer.py)")
    p.add_argument("--config", default=str(ROOT / "configs/sjc/official.yaml"))
    p.add_argument("--output", default="outputs_sjc", help="output root (a folder per image stem)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument("--resume", action="store_true", help="continue from <output>/<stem>/checkpoint.pt if present")
    p.add_argument("--stop-after", type=int, default=None, help="run at most this many steps now (then checkpoint)")
    p.add_argument("--format", default="ply", choices=["ply", "obj", "glb"])
    p.add_argument("--segmenter", default=None, help="preprocessing segmenter (default: the preprocess default)")
    p.add_argument("--official-input", action="store_true",
                   help="RGBA input taken as the official 3drec scenes are (cv2 cubic to 800 px, blend on white, cubic "
                        "to 256 px; no segmentation or recentring) instead of the project's preprocessing")
    return p


def official_rgba_input(path: Path):
    """The official 3drec input path for an RGBA file (score_distillation.input_image); RGB files are refused."""
    import numpy as np
    from PIL import Image

    from score_distillation.input_image import official_input_image
    from sjc_pipeline import SJCError

    with Image.open(path) as im:
        if im.mode != "RGBA":
            raise SJCError(f"--official-input needs an RGBA image (the official scenes are), {path} is {im.mode}")
        rgba = np.asarray(im.convert("RGBA"))
    return official_input_image(rgba)  # cubic overshoot kept, as officially


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import numpy as np
    from PIL import Image

    from data.config import ConfigError, save_config
    from data.preprocess import PreprocessConfig, PreprocessError, preprocess_image
    from data.weights import MissingWeightsError
    from sjc_pipeline import SJCError, build_zero123, load_sjc_config, optimiser_for_image, write_outputs

    t0 = time.perf_counter()
    try:
        cfg = load_sjc_config(args.config, overrides=args.set)
        image_path = Path(args.image)
        if not image_path.is_file():
            raise SJCError(f"input image {image_path} does not exist")
        pipe = build_zero123(cfg)  # resolves the weights first: one message naming every missing file
        if args.official_input:
            image01, pre = official_rgba_input(image_path), None
        else:
            pre_cfg = PreprocessConfig() if args.segmenter is None else PreprocessConfig(segmenter=args.segmenter)
            pre = preprocess_image(image_path, pre_cfg, download=False)
            image01 = pre.image.astype(np.float32) / 255.0
        opt = optimiser_for_image(cfg, image01, pipe)
    except MissingWeightsError as exc:
        print(f"error: {exc}\n(for this method: --set zero123_weights=/path/to/zero123.ckpt; random-weight smoke "
              "test: --config configs/sjc/tiny.yaml)",
              file=sys.stderr)
        return 2
    except (ConfigError, PreprocessError, SJCError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.zero123_weights is None:
        print("NOTE: Zero123 has RANDOM weights: the mesh is meaningless (smoke test only).", file=sys.stderr)
    out_dir = Path(args.output) / image_path.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    resumed_from = None
    if args.resume and checkpoint.is_file():
        try:
            opt.load_checkpoint(checkpoint)
        except SJCError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        resumed_from = opt.step_index
        print(f"resuming {checkpoint} at step {resumed_from} of {cfg.n_steps}", file=sys.stderr)
    Image.fromarray((np.clip(image01, 0, 1) * 255 + 0.5).astype(np.uint8)).save(out_dir / "input.png")
    save_config(cfg, out_dir / "config.yaml")

    def preview(step: int) -> None:
        img = (opt.render_rgb(opt.input_pose).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        (out_dir / "previews").mkdir(exist_ok=True)
        Image.fromarray(img).save(out_dir / "previews" / f"step{step:06d}.png")

    t_opt = time.perf_counter()
    opt.run(checkpoint=checkpoint, preview=preview, stop_after=args.stop_after)
    seconds = time.perf_counter() - t_opt
    if opt.step_index < cfg.n_steps:
        print(f"stopped at step {opt.step_index} of {cfg.n_steps}; continue with --resume", file=sys.stderr)
        return 0
    result = write_outputs(opt, out_dir, args.format, extra={
        "input": str(image_path), "segmenter": "official 3drec input" if pre is None else pre.method,
        "warnings": [] if pre is None else list(pre.warnings),
        "resumed_from_step": resumed_from, "seconds": {"optimisation": seconds,
                                                       "total": time.perf_counter() - t0},
    })
    print(f"wrote {out_dir} (mesh: {result['mesh']}, {result['mesh_faces']} faces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
