"""Command line: estimate the input view's polar angle / elevation from its 4 nearby views.

    python -m elevation 0_0.png 0_1.png 0_2.png 0_3.png [--matcher sift|loftr] [--robust] [--config YAML]

The 4 images are the nearby views of first-stage view 0 in the official order (spec section 5): polar -10,
polar +10, azimuth -10, azimuth +10 (256 x 256 RGB, white background; an alpha channel is composited on white).
Prints JSON with ``polar_deg``, ``elevation_deg``, ``confidence``, the error curves and the checks' diagnostics.
Exit code 2 with a message on stderr for unreadable images or a failed estimate (``error (elevation REASON): ...``
with the typed reason of :mod:`elevation.reliability`; ``--config configs/elevation/official.yaml`` turns the
checks off).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from data import conventions as conv
from data.config import ConfigError, load_config
from data.io import write_text_atomic
from data.preprocess import PreprocessError, to_rgb8
from elevation.config import MATCHERS, ElevationConfig
from elevation.estimator import ElevationEstimator, warn_sift_fallback
from elevation.result import ElevationError


class InputError(ValueError):
    """An input image cannot be used."""


def read_view(path: str | Path) -> torch.Tensor:
    """(3, 256, 256) float RGB in [0, 1] from an image file; alpha is composited onto white."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = to_rgb8(im, str(path))  # 16-bit / float scaled to 8 bit, unfaithful modes refused
            has_alpha = im.mode == "RGBA"
            rgba = np.asarray(im, dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    except PreprocessError as exc:
        raise InputError(str(exc)) from exc
    if has_alpha:
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
        rgb = np.floor(rgb * 255.0 + 1e-6) / 255.0  # 8-bit like the official PNG round trip
    else:
        rgb = rgba
    size = conv.IMAGE_SIZE
    if rgb.shape[:2] != (size, size):
        raise InputError(
            f"{path} is {rgb.shape[1]}x{rgb.shape[0]} px; the nearby views must be {size}x{size} (the solver's "
            f"intrinsics, f = {conv.FOCAL_PX:g} px, assume it): resize or regenerate them at {size} px"
        )
    return torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m elevation", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("views", nargs=4, metavar="VIEW", help="nearby views 0_0 0_1 0_2 0_3 (official order)")
    p.add_argument("--config", help="YAML config (schema elevation.config:ElevationConfig)")
    p.add_argument("--matcher", choices=MATCHERS, help="feature matcher (default from the config: loftr)")
    p.add_argument("--robust", action="store_true", help="robust reduction instead of the official mean")
    p.add_argument("--loftr-weights", help="indoor_ds_new.ckpt: local path or hub source (data.weights 'loftr')")
    p.add_argument("--fix-mask-indexing", action="store_true", help="fix upstream's foreground-mask indexing bug")
    p.add_argument("--device", help="auto | cpu | cuda[:i]")
    p.add_argument("--output", help="also write the JSON to this file")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. solver.robust=true")
    return p


def resolve_config(args: argparse.Namespace) -> ElevationConfig:
    overrides = list(args.set)
    if args.matcher:
        overrides.append(f"matcher.name={args.matcher}")
    if args.robust:
        overrides.append("solver.robust=true")
    if args.fix_mask_indexing:
        overrides.append("matcher.fix_mask_indexing=true")
    if args.device:
        overrides.append(f"matcher.device={args.device}")
    cfg = load_config(ElevationConfig, *([args.config] if args.config else []), overrides=overrides)
    if cfg.matcher.name == "loftr":
        from data.weights import try_resolve

        source = args.loftr_weights or cfg.matcher.loftr_weights
        path, reason = try_resolve("loftr", source)
        if path is None:
            message = f"LoFTR weights unavailable ({source or 'registry default'}): {reason}"
            if not cfg.matcher.fallback_to_sift:
                raise ElevationError(message + "; pass --loftr-weights PATH or use --matcher sift")
            warn_sift_fallback(message)
            cfg = cfg.weight_free()
        else:
            cfg.matcher.loftr_weights = str(path)
    return cfg.validate()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve_config(args)
        images = torch.stack([read_view(v) for v in args.views])
        estimate = ElevationEstimator(cfg).estimate(images)
    except ElevationError as exc:
        text = str(exc)
        text = text[len(exc.reason) + 2:] if text.startswith(f"{exc.reason}: ") else text
        print(f"error (elevation {exc.reason}): {text}", file=sys.stderr)
        return 2
    except (InputError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(estimate.to_dict(), indent=2)
    if args.output:
        write_text_atomic(args.output, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
