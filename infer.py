"""Single image -> textured 3D mesh (One-2-3-45). Thin CLI: argument parsing and output writing only."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "infer.py: the end-to-end pipeline is not implemented yet (tracked by the 'infer.py' issue). "
        "The stage packages (data, zero123, elevation, reconstruction) can be used directly.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
