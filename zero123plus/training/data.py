"""Training items from a ``zero123plus``-layout dataset (``data/datasets/zero123plus_layout.py``).

Item: one conditioning view of an object (a random one of its samples; fixed per item for validation) and its
target grid. The conditioning view is composited on the variant's background and, as InstantMesh, resized to a
random side in ``cond_resize`` (bicubic) before the processors. ``cond_vae`` (3,512,512) and ``cond_clip`` (3,224,224) are the two network inputs of the RGBA view
composited on the variant's background (exactly the inference preprocessing), ``target`` (3, 3T, 2T) the grid in
[0, 1].
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate

from data.datasets.rendered import DatasetError, _resolve_ids
from data.datasets.seeded import ResumableDataLoader, key_generator
from zero123plus.preprocess import ImageProcessor, prepare_input
from zero123plus.training.config import DataConfig


class Zero123PlusGridDataset(Dataset):
    """(conditioning view, six-view target grid) items; ``seed`` fixes item i's sample (validation)."""

    def __init__(self, root, ids, tile_size: int, background: int, vae_processor: ImageProcessor,
                 clip_processor: ImageProcessor, seed: int | None = None, cond_resize: tuple[int, ...] = ()):
        self.root = Path(root)
        self.ids = _resolve_ids(self.root, ids, "zero123plus")
        self.tile_size, self.background, self.seed = tile_size, background, seed
        if cond_resize and (len(cond_resize) != 2 or not 0 < cond_resize[0] <= cond_resize[1]):
            raise DatasetError(f"data.cond_resize must be [] or [min, max] with 0 < min <= max, got {list(cond_resize)}")
        self.cond_resize = tuple(cond_resize)
        self.vae_processor, self.clip_processor = vae_processor, clip_processor

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key) -> dict:
        i, gen = key_generator(key)
        if gen is None and self.seed is not None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        folder = self.root / self.ids[i]
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("layout") != "zero123plus":
            raise DatasetError(f"{folder}: not a zero123plus-layout object (render with --layout zero123plus)")
        if int(meta["tile_size"]) != self.tile_size:
            raise DatasetError(f"{folder}: tiles of {meta['tile_size']} px, the run expects data.tile_size "
                               f"{self.tile_size}")
        k = int(torch.randint(int(meta["num_samples"]), (1,), generator=gen))
        with Image.open(folder / f"cond_{k:02d}.png") as im:
            cond = prepare_input(im.convert("RGBA"), self.background)
        if self.cond_resize:
            lo, hi = self.cond_resize
            side = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            cond = cond.resize((side, side), resample=Image.BICUBIC)
        with Image.open(folder / f"grid_{k:02d}.png") as im:
            grid = np.asarray(im.convert("RGB"), np.float32) / 255.0
        return {"cond_vae": self.vae_processor(cond), "cond_clip": self.clip_processor(cond),
                "target": torch.from_numpy(grid).permute(2, 0, 1).contiguous(), "object_id": self.ids[i],
                "sample": k}


class Zero123PlusDataModule(pl.LightningDataModule):
    """Resumable seeded training loader (exact resume, DDP split by the sampler) and a fixed validation set."""

    def __init__(self, cfg: DataConfig, background: int, vae_processor: ImageProcessor,
                 clip_processor: ImageProcessor, seed: int = 0):
        super().__init__()
        if not cfg.root:
            raise DatasetError("data.root is empty: point it at a folder written by render_dataset.py --layout "
                               "zero123plus")
        self.cfg, self.seed = cfg, seed
        self.args = (cfg.tile_size, background, vae_processor, clip_processor)
        self.train = self.val = None

    def setup(self, stage: str | None = None) -> None:
        c = self.cfg
        resize = tuple(c.cond_resize)
        self.train = Zero123PlusGridDataset(c.root, Path(c.train_list) if c.train_list else None, *self.args,
                                            cond_resize=resize)
        if c.val_list:
            self.val = Zero123PlusGridDataset(c.root, Path(c.val_list), *self.args, seed=0, cond_resize=resize)

    def train_dataloader(self) -> ResumableDataLoader:
        if self.train is None:
            self.setup("fit")
        return ResumableDataLoader(self.train, self.cfg.batch_size, seed=self.seed, shuffle=True,
                                   num_workers=self.cfg.num_workers, collate_fn=default_collate,
                                   persistent_workers=self.cfg.num_workers > 0)

    def val_dataloader(self):
        if self.val is None and self.cfg.val_list:
            self.setup("validate")
        if self.val is None:
            return []
        return DataLoader(self.val, batch_size=self.cfg.batch_size, shuffle=False, num_workers=self.cfg.num_workers,
                          collate_fn=default_collate)
