"""Shared test fixtures. Tests needing ../shared skip without it, and FAIL under ONE2345_REQUIRE_SHARED=1."""
from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ONE2345_SHARED", REPO_ROOT.parent / "shared"))


def require_shared(relative: str) -> Path:
    """Path inside ../shared; skip the test when absent, fail when ONE2345_REQUIRE_SHARED=1."""
    path = SHARED / relative
    if not path.exists():
        msg = f"needs {path} (the ../shared reference folder beside the project)"
        if os.environ.get("ONE2345_REQUIRE_SHARED") == "1":
            pytest.fail(msg + "; ONE2345_REQUIRE_SHARED=1 forbids skipping")
        pytest.skip(msg)
    return path


#: Device of the ``cuda``-marked tests: "cuda" (default), or "cpu" for scripts/cuda_check.py's dry run, which runs
#: the same tests on the CPU. ONE2345_REQUIRE_CUDA=1 (set by the check on a GPU machine) makes them fail instead of
#: skipping when CUDA is missing.
CUDA_TESTS_DEVICE = os.environ.get("ONE2345_CUDA_TESTS_DEVICE", "cuda")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """``cuda``-marked tests skip (with the reason) before any fixture is built when CUDA is not available."""
    if item.get_closest_marker("cuda") is None or not CUDA_TESTS_DEVICE.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        msg = ("needs a CUDA GPU (torch.cuda.is_available() is False): run python scripts/cuda_check.py on a GPU "
               "machine, or its CPU dry run (--device cpu --quick)")
        if os.environ.get("ONE2345_REQUIRE_CUDA") == "1":
            pytest.fail(msg + "; ONE2345_REQUIRE_CUDA=1 forbids skipping")
        pytest.skip(msg)


@pytest.fixture
def cuda_device():
    """The device the ``cuda``-marked tests run on (see CUDA_TESTS_DEVICE)."""
    import torch

    return torch.device(CUDA_TESTS_DEVICE)


@pytest.fixture
def shared():
    """Callable fixture: ``shared("fixtures/one2345_parity/cameras")`` -> Path (skip/fail as above)."""
    return require_shared


@pytest.fixture
def single_thread():
    """Run a test with one torch thread (small tensors: faster, and far faster on a loaded machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def seeded_rngs(request):
    """Every test starts from fixed global RNG states (torch, numpy's legacy global, ``random``), seeded from its
    node id: a test's unseeded draws are the same on every run and machine, whatever ran before it."""
    import numpy as np
    import torch

    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    yield
