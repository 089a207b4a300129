"""Train / validation split lists of a rendered dataset (``train.txt`` / ``val.txt`` beside ``valid_paths.json``).

Format: what :func:`data.datasets.rendered.read_id_list` reads, one object id per line, ``#`` comments. The split
is a function of the seed and the set of objects (not of their order): objects are ranked by a SHA-256 of
``(seed, id)`` and the first ``round(val_fraction * n)`` go to validation, at least one when ``n >= 2`` and
``val_fraction > 0``, never all of them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data.io import write_text_atomic

SPLIT_FILES = ("train.txt", "val.txt")
DEFAULT_VAL_FRACTION = 0.1


def split_ids(ids: list[str], val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0
              ) -> tuple[list[str], list[str]]:
    """(train ids, validation ids), each sorted."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ids = sorted(set(ids))
    n_val = 0
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(1, round(val_fraction * len(ids))), len(ids) - 1)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"split:{seed}:{i}".encode()).digest())
    val = set(ranked[:n_val])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def write_split_lists(root: str | Path, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
                      index_file: str = "valid_paths.json") -> tuple[list[str], list[str]]:
    """Split the objects of ``root/index_file`` and write ``root/train.txt`` and ``root/val.txt``."""
    root = Path(root)
    train, val = split_ids(json.loads((root / index_file).read_text()), val_fraction, seed)
    header = f"# written by scripts/render_dataset.py: seed {seed}, val fraction {val_fraction}\n"
    for name, ids in zip(SPLIT_FILES, (train, val)):
        write_text_atomic(root / name, header + "".join(f"{i}\n" for i in ids))
    return train, val
