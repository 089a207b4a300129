"""The run context shared by every generator: device, dtype, seeds, progress and per-stage timings (one place)."""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import torch

from data.device import resolve_device


@dataclass
class RunContext:
    """What every stage of a run shares.

    Attributes:
        device: the run's device (``cfg.device`` resolved once; every stage is built on it).
        dtype: the diffusion models' precision (float16 only for ``half`` on CUDA).
        seed: the run seed (None = nondeterministic); generated views take :meth:`seed_for` of it.
        progress: show progress bars.
        load_warnings: fallbacks taken while building the models (``half`` on a CPU, ...); every run's
            ``warnings`` starts with them.
    """

    device: torch.device
    dtype: torch.dtype = torch.float32
    seed: int | None = 0
    progress: bool = True
    load_warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg) -> "RunContext":
        """Resolve ``cfg.device`` and the precision (``half`` on a CPU runs float32 with a recorded warning)."""
        device = resolve_device(cfg.device)
        notes: list[str] = []
        dtype = torch.float32
        if cfg.half:
            if device.type == "cuda":
                dtype = torch.float16
            else:
                note = f"half precision needs CUDA; running Zero123 in float32 on the {device.type.upper()}"
                warnings.warn(note, stacklevel=3)
                notes.append(note)
        return cls(device, dtype, cfg.seed, cfg.progress, notes)

    def seed_for(self, code: int, seed: int | None = ...) -> int | None:
        """Seed of one generated item: a function of the run seed and the item's code (0..99) only, so an item does
        not depend on how the calls were batched (``seed``: another run seed than the context's)."""
        run_seed = self.seed if seed is ... else seed
        return derive_seed(run_seed, code)


def derive_seed(run_seed: int | None, code: int) -> int | None:
    """``run_seed * 100 + code`` (None stays None): neighbouring run seeds never share item seeds."""
    if run_seed is None:
        return None
    if not 0 <= code < 100:
        raise ValueError(f"seed code must be in 0..99, got {code}")
    return int(run_seed) * 100 + int(code)


class Timer:
    """Wall-clock and process-CPU seconds per named stage (CPU time does not grow when the machine is shared), and
    peak memory per stage: on CUDA the allocator's peak during the stage, on a CPU the process's peak resident set
    so far (the OS keeps no per-stage figure)."""

    def __init__(self, device: torch.device):
        self.device, self.timings, self.cpu_timings, self.peak_memory_gb = device, {}, {}, {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t0, c0 = time.perf_counter(), time.process_time()
        yield
        if cuda:
            torch.cuda.synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        self.cpu_timings[name] = self.cpu_timings.get(name, 0.0) + time.process_time() - c0
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else peak_rss_bytes()
        self.peak_memory_gb[name] = max(self.peak_memory_gb.get(name, 0.0), peak / 1024**3)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux / macOS units handled)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
