"""Fixtures shared by the elevation tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensors: one torch thread is fastest, and many times faster than two on a loaded shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
