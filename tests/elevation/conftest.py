"""Elevation tests run single-threaded: their tensors are small, and on a shared 2-core machine torch's
thread pool makes them many times slower under load."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
