"""Seeded training data: order and draws are functions of (seed, epoch, index); a loader resumes mid-epoch."""
import pytest
import torch
from torch.utils.data import Dataset

from data.datasets.seeded import DrawKey, ResumableDataLoader, SeededSampler, draw_seed, key_generator


class Draws(Dataset):
    """Item = (index, a random draw of its key's generator)."""

    def __len__(self):
        return 7

    def __getitem__(self, key):
        index, gen = key_generator(key)
        return torch.tensor([float(index), float(torch.rand((), generator=gen))])


def test_draw_seed_depends_on_every_part_and_its_order():
    assert draw_seed(1, 23) != draw_seed(12, 3) and draw_seed(1, 2) != draw_seed(2, 1)
    assert draw_seed(5, 0, 3) == draw_seed(5, 0, 3) and 0 <= draw_seed(5, 0, 3) < 2**63


def test_sampler_order_is_a_function_of_seed_and_epoch():
    a, b = SeededSampler(20, seed=3), SeededSampler(20, seed=3)
    first = list(a)
    assert sorted(k.index for k in first) == list(range(20)) and all(k == (3, 0, k.index) for k in first)
    assert list(b) == first  # another sampler, same seed and epoch
    a.set_epoch(1)
    assert [k.index for k in a] != [k.index for k in first] and {k.epoch for k in a} == {1}
    assert [k.index for k in SeededSampler(20, seed=4)] != [k.index for k in first]
    assert [k.index for k in SeededSampler(5, seed=3, shuffle=False)] == list(range(5))


def test_loader_resumes_mid_epoch_and_at_epoch_end_whatever_the_workers():
    def epochs(loader, n):
        out = []
        for epoch in range(n):
            loader.sampler.set_epoch(epoch)  # what Lightning does at each epoch start
            out += [b for b in loader]
        return out

    whole = epochs(ResumableDataLoader(Draws(), 2, seed=0), 2)  # 4 batches per epoch
    assert len(whole) == 8 and not torch.equal(whole[0], whole[4])
    for stop in (1, 3, 4):  # mid-epoch, last batch but one, end of epoch
        loader = ResumableDataLoader(Draws(), 2, seed=0)
        it = iter(loader)
        seen = [next(it) for _ in range(stop)]
        state = loader.state_dict()
        resumed = ResumableDataLoader(Draws(), 2, seed=0, num_workers=2)
        resumed.load_state_dict(state)
        rest = list(resumed)
        if stop == 4:
            assert state == {"epoch": 0, "batches": 4} and resumed.sampler.epoch == 1
        else:
            assert resumed.state_dict() == {"epoch": 0, "batches": 4}
            resumed.sampler.set_epoch(1)
            rest += list(resumed)
        assert len(seen) + len(rest) == len(whole)
        for got, want in zip(seen + rest, whole):
            assert torch.equal(got, want)


def test_ranks_split_the_epoch_like_a_distributed_sampler(monkeypatch):
    import data.datasets.seeded as seeded

    keys = {}
    for rank in range(3):
        monkeypatch.setattr(seeded, "_replicas", lambda rank=rank: (3, rank))
        sampler = SeededSampler(7, seed=1)
        keys[rank] = list(sampler)
        assert len(sampler) == 3 == len(keys[rank])
    flat = [k.index for r in range(3) for k in keys[r]]
    assert sorted(set(flat)) == list(range(7)) and len(flat) == 9  # padded with two repeats


def test_key_generator_of_int_and_draw_keys():
    assert key_generator(4) == (4, None)
    index, gen = key_generator(DrawKey(1, 2, 4))
    again = key_generator((1, 2, 4))[1]  # a plain tuple works too
    assert index == 4 and torch.rand((), generator=gen) == torch.rand((), generator=again)
    with pytest.raises(ValueError):
        SeededSampler(0, seed=0)
