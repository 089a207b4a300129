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
