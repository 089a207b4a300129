"""Fetch every pretrained weight of the registry (data/weights.py) into its standard cache, with progress bars.

    python scripts/download_weights.py                 # all of One-2-3-45's (not the Zero123++ extras)
    python scripts/download_weights.py --only zero123plus_v12 instantmesh_unet   # Zero123++ / InstantMesh
    python scripts/download_weights.py --only zero123 loftr
    python scripts/download_weights.py --list          # what is known and whether it is already here

Hub files land in the Hugging Face cache ($HF_HUB_CACHE, default ~/.cache/huggingface/hub); rembg's U^2-Net in
$U2NET_HOME (default ~/.u2net). Copy those folders to an offline machine to run there with HF_HUB_OFFLINE=1.
Needs network access (and HF_HUB_OFFLINE unset); files already cached are not fetched again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.weights import REGISTRY, MissingWeightsError, resolve_all, try_resolve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(REGISTRY), help="fetch only these weights")
    parser.add_argument("--list", action="store_true", help="list the registry and what is present; no download")
    args = parser.parse_args(argv)
    names = args.only or [n for n, spec in REGISTRY.items() if not spec.extra]
    if args.list:
        for name in names:
            spec = REGISTRY[name]
            path, reason = try_resolve(name, download=False)
            state = f"present: {path}" if path else f"absent ({reason})"
            print(f"{name:15s} {spec.default_source}\n{'':15s} {spec.description}\n{'':15s} {state}")
        return 0
    try:
        found = resolve_all({n: None for n in names})
    except MissingWeightsError as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, path in found.items():
        print(f"{name:15s} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
