"""Training samples (spec section 11.2): one object, a reference view defining the frame, a target view.

A *reader* is any object with ``__len__`` and ``load(index, source_kind) -> data.datasets.one2345_official.
TrainingObject`` (``source_kind`` ``"gt"`` or ``"predicted"``): the official-layout reader and the adapter of our
rendered datasets both qualify. :class:`TrainingSampleDataset` turns a reader into a ``torch`` dataset of length
``8 x objects``: index ``i`` -> object ``i // 8``, reference view ``i % 8``; the target view is drawn uniformly.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch.utils.data import Dataset

from data.cameras import Cameras
from data.datasets.one2345_official import TrainingObject
from data.datasets.seeded import draw_generator, key_generator
from data.reconstruction_frame import ReconstructionFrame, affine_mats, near_far

#: Training clips ``d - 1`` of the near plane at this value (inference does not clip).
TRAIN_MIN_DISTANCE = 0.02


class ObjectReader(Protocol):
    def __len__(self) -> int: ...

    def load(self, index: int, source_kind: str = "predicted") -> TrainingObject: ...


def build_sample(obj: TrainingObject, reference: int, target: int,
                 min_distance: float = TRAIN_MIN_DISTANCE) -> dict[str, torch.Tensor]:
    """Express one object in the normalised frame of main view ``reference`` and pick main view ``target``.

    Returns a dict of float32 tensors (collatable; add a leading batch axis with ``default_collate``):

    * ``target_image`` (3, H, W), ``target_mask`` (1, H, W), ``target_depth`` (1, H, W) z-depth in
      **normalised** units (0 = background / unknown);
    * ``target_c2w`` (4, 4) OpenCV camera-to-world in the normalised frame, ``target_intrinsics`` (3, 3),
      ``target_near_far`` (2,);
    * ``source_images`` (V, 3, H, W), ``source_c2w`` / ``source_w2c`` (V, 4, 4), ``source_intrinsics``
      (V, 3, 3), ``source_affine`` (V, 4, 4) = K @ w2c (the cost volume's projection), ``source_near_far`` (V, 2);
    * ``scale_mat`` (4, 4) normalised -> reference frame, ``ref_c2w`` (4, 4) reference frame -> world.
    """
    targets, sources = obj.targets, obj.sources
    if targets.masks is None:
        raise ValueError(f"object {obj.uid}: target views need foreground masks")
    frame = ReconstructionFrame.from_cameras(targets.cameras[reference], sources.cameras)
    src = frame.cameras_to_normalised(sources.cameras.to(dtype=torch.float64))
    tgt = frame.cameras_to_normalised(targets.cameras[target].to(dtype=torch.float64))
    depth = torch.zeros_like(targets.masks[target])
    if obj.target_depths is not None:
        depth = obj.target_depths[target] / frame.radius
    f32 = torch.float32
    return {
        "target_image": targets.images[target].to(f32),
        "target_mask": targets.masks[target].to(f32),
        "target_depth": depth.to(f32),
        "target_c2w": tgt.c2w[0].to(f32),
        "target_intrinsics": tgt.intrinsics[0].to(f32),
        "target_near_far": near_far(tgt, min_distance)[0].to(f32),
        "source_images": sources.images.to(f32),
        "source_c2w": src.c2w.to(f32),
        "source_w2c": src.w2c.to(f32),
        "source_intrinsics": src.intrinsics.to(f32),
        "source_affine": affine_mats(src).to(f32),
        "source_near_far": near_far(src, min_distance).to(f32),
        "scale_mat": frame.scale_mat.to(f32),
        "ref_c2w": frame.ref_c2w.to(f32),
    }


def sample_cameras(sample: dict[str, torch.Tensor], prefix: str) -> Cameras:
    """Rebuild normalised-frame ``Cameras`` from an (unbatched) sample: prefix ``"target"`` or ``"source"``."""
    c2w, k = sample[f"{prefix}_c2w"], sample[f"{prefix}_intrinsics"]
    if c2w.ndim == 2:
        c2w, k = c2w[None], k[None]
    h, w = sample[f"{prefix}_image" if prefix == "target" else "source_images"].shape[-2:]
    return Cameras(c2w, k, w, h)


def select_sources(obj: TrainingObject, indices: list[int]) -> TrainingObject:
    """The same object with only the source views ``indices`` (official order)."""
    return TrainingObject(obj.uid, obj.targets, obj.target_depths, obj.sources.select(list(indices)))


class TrainingSampleDataset(Dataset):
    """``8 x objects`` samples: object ``i // 8``, reference view ``i % 8``, random target view.

    Args:
        reader: an :class:`ObjectReader`.
        gt_source_probability: probability of taking ground-truth source views for a sample (else the predicted
            ones); the official recipe trains on predicted sources (0.0).
        num_main_views: main views per object (8).
        fixed_target: use ``target = reference`` instead of a random target (validation, deterministic).
        cache: keep loaded objects in memory (small datasets only).
        source_views: indices of the source views to keep (None/empty = all).
        seed: draws of an int index ``i`` come from the generator of ``(seed, i)`` (fixed samples, e.g.
            validation); None: from the global RNG.

    A :class:`~data.datasets.seeded.DrawKey` ``(seed, epoch, index)`` (what the training loader's
    :class:`~data.datasets.seeded.SeededSampler` yields) draws sample ``index``'s source kind and target view from
    the generator of that key, so they are a function of the run's seed, the epoch and the sample.
    """

    def __init__(self, reader: ObjectReader, gt_source_probability: float = 0.0, num_main_views: int = 8,
                 fixed_target: bool = False, cache: bool = False, source_views: list[int] | None = None,
                 seed: int | None = None) -> None:
        if not 0.0 <= gt_source_probability <= 1.0:
            raise ValueError(f"gt_source_probability must be in [0, 1], got {gt_source_probability}")
        self.reader = reader
        self.gt_source_probability = gt_source_probability
        self.num_main_views = num_main_views
        self.fixed_target = fixed_target
        self.source_views = list(source_views) if source_views else None
        self.seed = seed
        self._cache: dict[tuple[int, str], TrainingObject] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_main_views * len(self.reader)

    def _load(self, index: int, kind: str) -> TrainingObject:
        if self._cache is None:
            return self.reader.load(index, kind)
        key = (index, kind)
        if key not in self._cache:
            self._cache[key] = self.reader.load(index, kind)
        return self._cache[key]

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, gen = key_generator(key)
        if gen is None and self.seed is not None:
            gen = draw_generator(self.seed, index)
        obj_index, reference = divmod(index, self.num_main_views)
        use_gt = self.gt_source_probability > 0 and (
            self.gt_source_probability >= 1 or torch.rand((), generator=gen).item() < self.gt_source_probability)
        obj = self._load(obj_index, "gt" if use_gt else "predicted")
        if self.source_views is not None:
            obj = select_sources(obj, self.source_views)
        target = reference if self.fixed_target else int(torch.randint(0, self.num_main_views, (),
                                                                       generator=gen).item())
        sample = build_sample(obj, reference, target)
        sample["object_index"] = torch.tensor(obj_index)
        return sample
