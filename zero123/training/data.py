"""Pairs data for Zero123 training with an optional view hold-out (for measuring pose use on unseen views).

With ``holdout_views`` set (e.g. ``[10, 11]``), training pairs use only the other views of each object, and
validation pairs take their conditioning image from the training views and their **target** from the held-out
views: those target images are never seen in training, so "true pose beats shuffled pose" on them means the
model learned to use the pose, not to recall an image.
"""
from __future__ import annotations

from typing import Sequence

import torch

from data.datasets.datamodule import RenderedDataConfig, RenderedDataModule
from data.datasets.rendered import DatasetError, Zero123PairsDataset
from data.datasets.zero123_layout import read_zero123_object
from data.layout import RelativePose


class ViewSubsetPairs(Zero123PairsDataset):
    """:class:`Zero123PairsDataset` whose conditioning / target views come from given index sets."""

    def __init__(self, root, ids, image_size: int, seed: int | None, cond_views: Sequence[int] | None,
                 target_views: Sequence[int] | None):
        super().__init__(root, ids, image_size, seed)
        self.cond_views, self.target_views = cond_views, target_views

    def __getitem__(self, key) -> dict:
        i, gen = self._generator(key)
        folder = self.root / self.ids[i]
        n, cameras = read_zero123_object(folder)
        conds = [v for v in (self.cond_views if self.cond_views is not None else range(n)) if v < n]
        targets = [v for v in (self.target_views if self.target_views is not None else range(n)) if v < n]
        if not conds or not targets or (len(conds) == 1 and conds == targets):
            raise DatasetError(f"{folder}: {n} views leave no (conditioning, target) pair for this view split")
        while True:
            cond = conds[int(torch.randint(len(conds), (1,), generator=gen))]
            target = targets[int(torch.randint(len(targets), (1,), generator=gen))]
            if cond != target:
                break
        pose = RelativePose.between(cameras[cond], cameras[target])
        return {
            "cond_image": self._image(folder, cond), "target_image": self._image(folder, target),
            "delta_polar_deg": pose.delta_polar_deg[0], "delta_azimuth_deg": pose.delta_azimuth_deg[0],
            "delta_radius": pose.delta_radius[0], "cond_index": cond, "target_index": target,
            "object_id": self.ids[i],
        }


class Zero123DataModule(RenderedDataModule):
    """:class:`RenderedDataModule` (zero123 layout) with the view hold-out above."""

    def __init__(self, cfg: RenderedDataConfig, holdout_views: Sequence[int] = (), max_views: int = 1000,
                 seed: int = 0):
        super().__init__(cfg, seed=seed)
        self.holdout = sorted(set(int(v) for v in holdout_views))
        self.kept = [v for v in range(max_views) if v not in self.holdout]

    def _dataset(self, ids, train: bool):
        if not self.holdout:
            return super()._dataset(ids, train)
        cfg = self.cfg
        if train:
            return ViewSubsetPairs(cfg.root, ids, cfg.image_size, None, self.kept, self.kept)
        return ViewSubsetPairs(cfg.root, ids, cfg.image_size, cfg.val_seed, self.kept, self.holdout)
