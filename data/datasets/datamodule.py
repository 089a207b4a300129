"""``LightningDataModule`` over a rendered dataset of either layout, train / val splits from list files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from data.datasets.rendered import RenderedReconstructionDataset, Zero123PairsDataset, collate
from data.datasets.seeded import ResumableDataLoader


@dataclass
class RenderedDataConfig:
    """Where the data is and how it is batched.

    Attributes:
        layout: ``"zero123"`` or ``"reconstruction"``.
        root: dataset root written by ``scripts/render_dataset.py``.
        train_list, val_list: split list files (one object id per line); empty train_list = every object.
        batch_size: items per batch (the official reconstruction trainer uses one object per GPU).
        num_workers: DataLoader worker processes.
        image_size: zero123 image side (default 256); reconstruction resize (0 = keep 256).
        source_kind: reconstruction sources ``gt`` / ``predicted`` / ``auto``.
        val_seed: fixed pairs for zero123 validation.
    """

    layout: str = "zero123"
    root: str = ""
    train_list: str = ""
    val_list: str = ""
    batch_size: int = 8
    num_workers: int = 0
    image_size: int = 256
    source_kind: str = "auto"
    val_seed: int = 0


class RenderedDataModule(pl.LightningDataModule):
    """Builds the datasets lazily in :meth:`setup`; ``transform`` (reconstruction only) maps each object.

    The training loader is a :class:`~data.datasets.seeded.ResumableDataLoader`: its order and every item's random
    draws are functions of (``seed``, epoch, item), whatever ``num_workers``, and a resumed run continues exactly.
    Trainers pass ``use_distributed_sampler=False`` (its sampler splits the items among DDP ranks itself).
    """

    def __init__(self, cfg: RenderedDataConfig, transform=None, seed: int = 0):
        super().__init__()
        if cfg.layout not in ("zero123", "reconstruction"):
            raise ValueError(f"layout must be 'zero123' or 'reconstruction', got {cfg.layout!r}")
        if not cfg.root:
            raise ValueError("RenderedDataConfig.root is empty: point it at a folder written by render_dataset.py")
        self.cfg = cfg
        self.transform = transform
        self.seed = seed
        self.train = self.val = None

    def _dataset(self, ids, train: bool):
        cfg = self.cfg
        if cfg.layout == "zero123":
            return Zero123PairsDataset(cfg.root, ids, cfg.image_size, seed=None if train else cfg.val_seed)
        size = cfg.image_size if cfg.image_size and cfg.image_size != 256 else None
        return RenderedReconstructionDataset(cfg.root, ids, cfg.source_kind, size, self.transform)

    def setup(self, stage: str | None = None) -> None:
        cfg = self.cfg
        self.train = self._dataset(Path(cfg.train_list) if cfg.train_list else None, train=True)
        if cfg.val_list:
            self.val = self._dataset(Path(cfg.val_list), train=False)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=shuffle, num_workers=self.cfg.num_workers,
                          collate_fn=collate, persistent_workers=self.cfg.num_workers > 0)

    def train_dataloader(self) -> ResumableDataLoader:
        if self.train is None:
            self.setup("fit")
        return ResumableDataLoader(self.train, self.cfg.batch_size, seed=self.seed, shuffle=True,
                                   num_workers=self.cfg.num_workers, collate_fn=collate,
                                   persistent_workers=self.cfg.num_workers > 0)

    def val_dataloader(self):
        if self.val is None and self.cfg.val_list:
            self.setup("validate")
        return self._loader(self.val, shuffle=False) if self.val is not None else []
