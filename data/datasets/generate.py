"""Dataset generation: assets -> per-object folders of one layout, sharded, resumable, never half-written.

Each object is rendered into a hidden temporary folder beside its final place and renamed when complete, so a
folder named after an object is always whole; a rerun skips those, and :func:`data.io.atomic_directory` removes
the hidden leftovers of a killed run (never those of a live concurrent writer). A JSONL manifest gets one line per object
(``object_id``, ``asset``, ``status`` ok / skipped / failed, ``views``, ``error``, ``seconds``). A bad asset is
recorded as failed and the run continues. ``scripts/render_dataset.py`` is the command line.
"""
from __future__ import annotations

import glob
import hashlib
import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from data.assets import ASSET_FORMATS, load_asset_with_info
from data.datasets.reconstruction_layout import (
    ReconstructionLayoutConfig,
    all_views,
    main_views,
    rig_cameras,
    write_reconstruction_object,
)
from data.datasets.zero123_layout import (
    Zero123LayoutConfig,
    sample_area_light,
    sample_zero123_views,
    write_zero123_object,
)
from data.datasets.zero123plus_layout import (
    Zero123PlusLayoutConfig,
    sample_zero123plus_views,
    write_zero123plus_object,
)
from data.io import atomic_directory, write_text_atomic
from data.mesh import MeshError
from data.render.backends import BackendConfig, make_backend

LAYOUTS = ("zero123", "reconstruction", "zero123plus")
#: Object scale per layout (:func:`data.assets.load_asset_with_info`): Zero123's official recipe (longest side 1,
#: cameras at radius 1.5-2.2, with its occasional crops) and the inference rig's framing of a preprocessed input
#: (also Zero123++'s, whose camera table keeps the rig's framing).
LAYOUT_FRAMING = {"zero123": "bbox", "reconstruction": "rig", "zero123plus": "rig"}
INDEX_FILE = "valid_paths.json"


@dataclass
class DatasetRenderConfig:
    """Everything that decides the rendered data (stored in every object's meta.json)."""

    layout: str = "zero123"
    seed: int = 0
    up_axis: str = "auto"
    max_texture_size: int = 2048
    zero123: Zero123LayoutConfig = field(default_factory=Zero123LayoutConfig)
    reconstruction: ReconstructionLayoutConfig = field(default_factory=ReconstructionLayoutConfig)
    zero123plus: Zero123PlusLayoutConfig = field(default_factory=Zero123PlusLayoutConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")


class AssetListError(ValueError):
    """The asset specification (folder, glob or list file) names nothing usable."""


def list_assets(spec: str | Path) -> list[Path]:
    """Asset files from a folder (recursive), a glob pattern, or a list file (one path per line, ``#`` comments,
    relative paths relative to the list file). Sorted, duplicates removed."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.suffix.lower() in ASSET_FORMATS and p.is_file()]
    elif path.is_file() and path.suffix.lower() not in ASSET_FORMATS:
        files = []
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                p = Path(line)
                files.append(p if p.is_absolute() else path.parent / p)
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(text, recursive=True)]
        if not files:
            raise AssetListError(f"no assets: {text} is not a folder, a list file or a glob that matches files")
    return sorted(dict.fromkeys(p.resolve() if p.exists() else p for p in files))


def object_ids(paths: list[Path]) -> list[str]:
    """A unique, stable folder name per asset: the file stem, or the path relative to the common parent
    (``/`` -> ``__``) when stems collide (e.g. many ``textured.obj``)."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    root = Path(_common_parent(paths))
    ids = []
    for p in paths:
        rel = p.with_suffix("").relative_to(root) if root in p.parents else p.with_suffix("")
        ids.append("__".join(part for part in rel.parts if part not in ("/", "")))
    if len(set(ids)) != len(ids):
        raise AssetListError("asset list contains the same file twice")
    return ids


def _common_parent(paths: list[Path]) -> str:
    import os

    return os.path.commonpath([str(p.parent) for p in paths])


def shard(items: list, index: int, count: int) -> list:
    """Items ``index, index + count, ...`` (a deterministic split of the sorted list)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"need 0 <= shard < num_shards, got shard {index} of {count}")
    return items[index::count]


def object_seed(seed: int, object_id: str) -> int:
    """A per-object seed independent of the shard and of the order of the list."""
    digest = hashlib.sha256(f"{seed}:{object_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def render_object(asset: Path, object_id: str, out_root: Path, cfg: DatasetRenderConfig, backend) -> int:
    """Render one object into ``out_root/object_id`` atomically; returns the number of views written."""
    framing = LAYOUT_FRAMING[cfg.layout]
    mesh, info = load_asset_with_info(asset, up_axis=cfg.up_axis, max_texture_size=cfg.max_texture_size,
                                      framing=framing)
    seed = object_seed(cfg.seed, object_id)
    rng = np.random.default_rng(seed)
    meta = {"object_id": object_id, "asset": str(asset), "up_axis": info.up_axis, "framing": framing,
            "to_world": info.to_world.tolist(), "seed": seed, "backend": backend.name, "config": asdict(cfg)}
    if cfg.layout == "zero123":
        cameras, light = sample_zero123_views(cfg.zero123, rng)
        out = backend.render(mesh, cameras, light, with_depth=False)
        with atomic_directory(out_root / object_id) as tmp:
            write_zero123_object(tmp, out, light, meta)
        return len(cameras)
    if cfg.layout == "zero123plus":
        cameras, poses = sample_zero123plus_views(cfg.zero123plus, rng)
        light = sample_area_light(cfg.zero123, rng)
        out = backend.render(mesh, cameras, light, with_depth=False)
        with atomic_directory(out_root / object_id) as tmp:
            write_zero123plus_object(tmp, out, poses, cfg.zero123plus, light, meta)
        return len(cameras)
    views = all_views(main_views(cfg.reconstruction, rng))
    light = sample_area_light(cfg.zero123, rng)
    out = backend.render(mesh, rig_cameras(views), light)
    with atomic_directory(out_root / object_id) as tmp:
        write_reconstruction_object(tmp, out, views, meta)
    return len(views)


def write_index(out_root: Path) -> list[str]:
    """Rewrite ``valid_paths.json``: the sorted names of every complete object folder under ``out_root``."""
    names = sorted(p.name for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and (p / "meta.json").is_file())
    write_text_atomic(out_root / INDEX_FILE, json.dumps(names))
    return names


def generate(
    assets: list[Path],
    out_root: str | Path,
    cfg: DatasetRenderConfig,
    shard_index: int = 0,
    num_shards: int = 1,
    manifest: str | Path | None = None,
    progress: bool = True,
    backend=None,
) -> list[dict]:
    """Render this shard's objects; returns the manifest records (also appended to ``manifest``)."""
    from tqdm import tqdm

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    pairs = shard(list(zip(object_ids(assets), assets)), shard_index, num_shards)
    manifest = Path(manifest) if manifest else out_root / f"manifest-{shard_index:04d}-of-{num_shards:04d}.jsonl"
    todo = [(i, a) for i, a in pairs if not (out_root / i / "meta.json").is_file()]
    if todo and backend is None:
        backend = make_backend(cfg.backend)
    records = []
    bar = tqdm(pairs, desc=f"{cfg.layout}/{cfg.backend.name} shard {shard_index}/{num_shards}", disable=not progress)
    with manifest.open("a") as log:
        for object_id, asset in bar:
            start = time.perf_counter()
            record = {"object_id": object_id, "asset": str(asset), "layout": cfg.layout, "backend": cfg.backend.name,
                      "shard": shard_index, "status": "ok", "views": 0, "error": None}
            if (out_root / object_id / "meta.json").is_file():
                record["status"] = "skipped"
            else:
                try:
                    record["views"] = render_object(asset, object_id, out_root, cfg, backend)
                except MeshError as exc:
                    record.update(status="failed", error=str(exc))
                except Exception as exc:  # a bad object must not stop the run; the manifest keeps the reason
                    record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                                  traceback=traceback.format_exc(limit=5))
            record["seconds"] = round(time.perf_counter() - start, 3)
            log.write(json.dumps(record) + "\n")
            log.flush()
            records.append(record)
            bar.set_postfix(ok=sum(r["status"] == "ok" for r in records),
                            failed=sum(r["status"] == "failed" for r in records))
    write_index(out_root)
    return records
