"""Training data whose every random draw is a function of (seed, epoch, index): exact resume, any worker count.

* :func:`draw_seed` / :func:`draw_generator`: a 63-bit seed / a CPU ``torch.Generator`` from a tuple of ints
  (SHA-256 of the tuple, so ``(1, 23)`` and ``(12, 3)`` differ).
* :class:`SeededSampler`: the order of epoch ``e`` is a permutation seeded by ``(seed, e)``; it yields
  :class:`DrawKey` ``(seed, epoch, index)`` keys, and a dataset seeds the draws of an item from its key, in
  whichever DataLoader worker loads it. Under ``torch.distributed`` (queried when iterating) rank ``r`` of ``w``
  takes items ``r, r + w, ...`` of the order padded to a multiple of ``w``, like ``DistributedSampler``; trainers
  using it pass ``use_distributed_sampler=False`` to Lightning.
* :class:`ResumableDataLoader`: a ``DataLoader`` over a :class:`SeededSampler` with ``state_dict`` /
  ``load_state_dict`` (epoch, batches loaded in it). Lightning stores them in its checkpoints and restores them
  before the first batch of a resumed run, so a run resumed mid-epoch continues with the very batches the
  uninterrupted run loaded (a plain DataLoader would restart the epoch with a new random order).
"""
from __future__ import annotations

import hashlib
from typing import Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Sampler


def draw_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every int of ``parts`` and on their order."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw_generator(*parts: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`draw_seed` of ``parts``."""
    return torch.Generator(device="cpu").manual_seed(draw_seed(*parts))


class DrawKey(NamedTuple):
    """Dataset key of one training item: item ``index`` as drawn in ``epoch`` of a run seeded ``seed``."""

    seed: int
    epoch: int
    index: int


def key_generator(key) -> tuple[int, torch.Generator | None]:
    """``(index, generator)`` of a dataset key: a :class:`DrawKey` gets the generator of ``(seed, epoch,
    index)``, a plain int index gets None (the dataset's own rule applies)."""
    if isinstance(key, tuple):
        key = DrawKey(*key)
        return key.index, draw_generator(key.seed, key.epoch, key.index)
    return int(key), None


def _replicas() -> tuple[int, int]:
    """(world size, rank) of the initialised default process group, else (1, 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class SeededSampler(Sampler[DrawKey]):
    """Epoch order = permutation seeded by ``(seed, epoch)`` (or ``0..size-1`` without shuffling); yields
    :class:`DrawKey`. ``set_epoch`` (called by Lightning at each epoch start) picks the epoch; ``skip`` items of
    this rank's share are left out once, at the next iteration (a resumed epoch)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size < 1:
            raise ValueError(f"SeededSampler needs at least one item, got {size}")
        self.size, self.seed, self.shuffle = int(size), int(seed), shuffle
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        world, _ = _replicas()
        return -(-self.size // world)

    def order(self, epoch: int) -> list[int]:
        """All indices of ``epoch`` in their order (before the split among ranks)."""
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=draw_generator(self.seed, epoch)).tolist()

    def __iter__(self) -> Iterator[DrawKey]:
        world, rank = _replicas()
        epoch, skip = self.epoch, self.skip
        self.skip = 0
        order = self.order(epoch)
        total = -(-self.size // world) * world
        while len(order) < total:
            order += order[: total - len(order)]
        for index in order[rank::world][skip:]:
            yield DrawKey(self.seed, epoch, index)


class ResumableDataLoader(DataLoader):
    """``DataLoader(dataset, sampler=SeededSampler(len(dataset), seed, shuffle), ...)`` that can resume mid-epoch.

    ``state_dict()`` = ``{"epoch", "batches"}``: the sampler's epoch and the batches loaded in it so far;
    ``load_state_dict`` makes the next iteration continue after them (or start the next epoch when the epoch was
    complete). Other keyword arguments go to ``DataLoader`` (``sampler`` / ``shuffle`` are not accepted).
    """

    def __init__(self, dataset, batch_size: int = 1, *, seed: int, shuffle: bool = True, **kwargs):
        super().__init__(dataset, batch_size=batch_size, sampler=SeededSampler(len(dataset), seed, shuffle), **kwargs)
        self._batches = 0
        self._resume_batches = 0

    def __iter__(self):
        start, self._resume_batches = self._resume_batches, 0
        self.sampler.skip = start * self.batch_size
        self._batches = start
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._batches)}

    def load_state_dict(self, state: dict) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.sampler.set_epoch(epoch)
        self._resume_batches = self._batches = batches
