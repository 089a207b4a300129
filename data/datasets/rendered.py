"""torch ``Dataset``s over the folders ``scripts/render_dataset.py`` writes, and a ``LightningDataModule``.

* :class:`Zero123PairsDataset` -- one item per object: two distinct views (conditioning, target) on white and
  their relative pose (:class:`data.layout.RelativePose` quantities; Zero123's 4-vector is built in ``zero123/``).
* :class:`RenderedReconstructionDataset` -- one :class:`~data.datasets.one2345_official.TrainingObject` per
  object (the reader protocol of the reconstruction trainer), optionally passed through a ``transform``.

Splits are list files: one object id (folder name) per line, ``#`` comments allowed. Without a list every
complete object folder under the root is used.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset, default_collate

from data.datasets.one2345_official import (
    OfficialLayoutError,
    TrainingObject,
    read_depth_mm,
    read_rgb_on_white,
    resize_views,
    scale_intrinsics,
)
from data.cameras import Cameras
from data.datasets.seeded import key_generator
from data.datasets.zero123_layout import read_zero123_object
from data.layout import RelativePose
from data.views import Views

SOURCE_KINDS = ("gt", "predicted", "auto")


class DatasetError(ValueError):
    """A rendered dataset folder or split list is missing or inconsistent (the message names the path)."""


def read_id_list(path: str | Path) -> list[str]:
    """Object ids from a split list file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split list not found: {path}")
    ids = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [i for i in ids if i]


def complete_objects(root: Path) -> list[str]:
    """Sorted names of the complete object folders (those with meta.json) under ``root``."""
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "meta.json").is_file())


def require_dataset_root(root: str | Path, layout: str) -> Path:
    """``root`` as a Path; :class:`DatasetError` naming the folder and the command that renders it if absent."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root} (create it with: python scripts/render_dataset.py "
                           f"ASSETS --out {root} --layout {layout}; see the README's training quick start)")
    return root


def _resolve_ids(root: Path, ids, layout: str) -> list[str]:
    require_dataset_root(root, layout)
    if ids is None:
        found = complete_objects(root)
    elif isinstance(ids, (str, Path)):
        found = read_id_list(ids)
    else:
        found = [str(i) for i in ids]
    missing = [i for i in found if not (root / i / "meta.json").is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} listed objects are not complete under {root}: {missing[:5]} "
                           "(render them with scripts/render_dataset.py or fix the split list)")
    if not found:
        raise DatasetError(f"no objects in {root}")
    return found


class Zero123PairsDataset(Dataset):
    """Random (conditioning, target) view pairs, one per object and access.

    Args:
        root: dataset root of the ``zero123`` layout.
        ids: None (every complete object), a split list file, or a list of object ids.
        image_size: output side in pixels (area resampling; Zero123 trains at 256).
        seed: if set, the pair of item i is fixed (validation); otherwise drawn afresh each access. A
            :class:`~data.datasets.seeded.DrawKey` ``(seed, epoch, index)`` key (what
            :class:`~data.datasets.seeded.SeededSampler` yields in training) draws the pair of ``index`` from
            that key instead, so a run's pairs are a function of its seed, the epoch and the item.

    Items: ``cond_image``, ``target_image`` (3, S, S) float in [0, 1] on white; ``delta_polar_deg``,
    ``delta_azimuth_deg`` (wrapped to [-180, 180)), ``delta_radius`` float64 scalars; ``cond_index``,
    ``target_index``; ``object_id``.
    """

    def __init__(self, root: str | Path, ids=None, image_size: int = 256, seed: int | None = None):
        self.root = Path(root)
        self.ids = _resolve_ids(self.root, ids, "zero123")
        self.image_size = image_size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.ids)

    def _image(self, folder: Path, index: int) -> torch.Tensor:
        img = read_rgb_on_white(folder / f"{index:03d}.png")
        return resize_views(img[None], self.image_size, "area")[0]

    def _generator(self, key) -> tuple[int, torch.Generator | None]:
        """(item index, generator of its draws) of an int index or a :class:`~data.datasets.seeded.DrawKey`."""
        i, gen = key_generator(key)
        if gen is None and self.seed is not None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return i, gen

    def __getitem__(self, key) -> dict:
        i, gen = self._generator(key)
        folder = self.root / self.ids[i]
        n, cameras = read_zero123_object(folder)
        if n < 2:
            raise DatasetError(f"{folder}: a pair needs at least 2 views, found {n}")
        cond, target = torch.randperm(n, generator=gen)[:2].tolist()
        pose = RelativePose.between(cameras[cond], cameras[target])
        return {
            "cond_image": self._image(folder, cond),
            "target_image": self._image(folder, target),
            "delta_polar_deg": pose.delta_polar_deg[0],
            "delta_azimuth_deg": pose.delta_azimuth_deg[0],
            "delta_radius": pose.delta_radius[0],
            "cond_index": cond,
            "target_index": target,
            "object_id": self.ids[i],
        }


class RenderedReconstructionDataset(Dataset):
    """Objects of the ``reconstruction`` layout as :class:`TrainingObject` (world frame, OpenCV cameras).

    Args:
        root: dataset root of the ``reconstruction`` layout.
        ids: None, a split list file or a list of object ids.
        source_kind: ``"gt"`` (rendered nearby views), ``"predicted"`` (Zero123's ``view_k_j_10.png``, must
            exist) or ``"auto"`` (predicted where present, else rendered).
        image_size: resize every view (intrinsics scaled to match); None keeps 256.
        transform: applied to the :class:`TrainingObject` in ``__getitem__`` (e.g. the trainer's sample builder).
    """

    def __init__(self, root: str | Path, ids=None, source_kind: str = "auto", image_size: int | None = None,
                 transform=None):
        if source_kind not in SOURCE_KINDS:
            raise ValueError(f"source_kind must be one of {SOURCE_KINDS}, got {source_kind!r}")
        self.root = Path(root)
        self.ids = _resolve_ids(self.root, ids, "reconstruction")
        self.source_kind = source_kind
        self.image_size = image_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def cameras(self, index: int) -> tuple[Cameras, list[str]]:
        """All cameras of an object (pose.json order: main views, then nearby k-major) and their names."""
        pose = json.loads((self.root / self.ids[index] / "pose.json").read_text())
        names = [n[: -len(".png")] for n in pose["c2ws"]]
        k = torch.tensor(pose["intrinsics"], dtype=torch.float64)
        size = int(round(float(k[0, 2]) * 2))
        return Cameras.from_opengl(torch.tensor(list(pose["c2ws"].values()), dtype=torch.float64), k, size, size), names

    def load(self, index: int, source_kind: str | None = None) -> TrainingObject:
        """Read object ``index`` (the reconstruction trainer's reader protocol)."""
        kind = source_kind or self.source_kind
        folder = self.root / self.ids[index]
        cams, names = self.cameras(index)
        main = [i for i, n in enumerate(names) if "_" not in n]
        near = [i for i, n in enumerate(names) if "_" in n]
        size = self.image_size or cams.width
        factor = size / cams.width
        cams = Cameras(cams.c2w, scale_intrinsics(cams.intrinsics, factor), size, size)
        targets = torch.stack([read_rgb_on_white(folder / f"view_{names[i]}.png") for i in main])
        depths = torch.stack([read_depth_mm(folder / f"view_{names[i]}_depth_mm.png") for i in main])
        sources, provenance = [], set()
        for i in near:
            predicted = folder / f"view_{names[i]}_10.png"
            if kind == "predicted" and not predicted.is_file():
                raise OfficialLayoutError(f"missing Zero123 prediction {predicted} (source_kind='predicted'; use "
                                          "'gt' or 'auto', or generate the predictions first)")
            use_pred = kind != "gt" and predicted.is_file()
            provenance.add("zero123-stage2" if use_pred else "render")
            sources.append(read_rgb_on_white(predicted if use_pred else folder / f"view_{names[i]}_10_gt.png"))
        targets = resize_views(targets, size, "area")
        depths = resize_views(depths, size, "nearest")
        masks = (depths > 0).to(targets.dtype)
        target_views = Views(targets, _select(cams, main), masks,
                             tuple(names[i] for i in main), "render")
        source_views = Views(resize_views(torch.stack(sources), size, "area"), _select(cams, near), None,
                             tuple(names[i] for i in near), "+".join(sorted(provenance)))
        return TrainingObject(self.ids[index], target_views, depths, source_views)

    def __getitem__(self, key):
        index, _ = key_generator(key)  # an int or a DrawKey (no random draws here)
        obj = self.load(index)
        return self.transform(obj) if self.transform is not None else obj


def _select(cams: Cameras, index: list[int]) -> Cameras:
    t = torch.as_tensor(index, dtype=torch.long)
    return Cameras(cams.c2w[t], cams.intrinsics[t], cams.width, cams.height)


def collate(items: list):
    """``default_collate`` for dicts / tensors; plain lists for other objects (e.g. :class:`TrainingObject`)."""
    if isinstance(items[0], (dict, torch.Tensor, tuple)):
        return default_collate(items)
    return items
