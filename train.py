"""Training entry point: `python train.py --config configs/train/<module>.yaml [key=value ...]`."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("train.py: no trainable module is wired in yet.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
