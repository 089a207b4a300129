"""Tiny diffusion sampling on the GPU (float32 with TF32 off, float16, bfloat16) against the CPU in float32, and
where each Zero123 module lives under each precision (``cuda`` marker: skips without CUDA).

Samplers and tolerances: ``cuda_sampler_cases.py`` (one entry per sampler; Zero123++ is added there).
"""
from __future__ import annotations

import pytest
import torch

from cuda_sampler_cases import SAMPLER_CASES
from data.device import strict_fp32

pytestmark = pytest.mark.cuda
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CPU_REFERENCE: dict[str, torch.Tensor] = {}


def cpu_reference(name: str) -> torch.Tensor:
    if name not in _CPU_REFERENCE:
        _CPU_REFERENCE[name] = SAMPLER_CASES[name].run(torch.device("cpu"), torch.float32)[0]
    return _CPU_REFERENCE[name]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_sampling_matches_cpu_float32(name, dtype, cuda_device):
    if cuda_device.type == "cpu" and dtype == "float16":
        pytest.skip("float16 on a CPU is emulated and slow (up to 50 s here) and nobody samples so: a GPU-only case")
    if cuda_device.type == "cpu" and dtype == "float32":
        pytest.skip("on the CPU (dry run) float32 is the reference itself")
    case = SAMPLER_CASES[name]
    reference = cpu_reference(name)
    with strict_fp32():
        images, _ = case.run(cuda_device, DTYPES[dtype])
    assert images.device.type == "cpu" and images.dtype == torch.float32 and images.shape == reference.shape
    assert torch.isfinite(images).all(), f"{name} {dtype}: non-finite pixels"
    diff = (images - reference).abs()
    tol = case.tolerances[dtype]
    mean, worst = float(diff.mean()), float(diff.max())
    assert mean <= tol["mean"] and worst <= tol["max"], (
        f"{name} on {cuda_device} in {dtype} vs CPU float32: mean |diff| {mean:.2e} (bound {tol['mean']:.1e}), "
        f"max {worst:.3f} (bound {tol['max']:.3f})")


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_zero123_modules_sit_on_the_device_in_the_promised_precision(dtype, cuda_device):
    """UNet and CLIP in ``dtype``, the VAE in float32 under float16 (its decoder overflows in half), everything on
    the device (parameters and buffers: a module left on the CPU shows up here, not as a slow run)."""
    from zero123 import Zero123Pipeline

    pipe = Zero123Pipeline.from_config("configs/zero123/tiny.yaml", device=cuda_device, dtype=DTYPES[dtype], seed=0)
    m = pipe.model
    expected_vae = torch.float32 if dtype == "float16" else DTYPES[dtype]
    assert (m.unet.dtype, m.image_encoder.dtype, m.vae.dtype) == (DTYPES[dtype], DTYPES[dtype], expected_vae)
    elsewhere = [n for n, t in list(m.named_parameters()) + list(m.named_buffers()) if t.device.type != cuda_device.type]
    assert not elsewhere, f"not on {cuda_device}: {elsewhere[:5]}"


def test_memory_budgeted_batch_size(cuda_device):
    """The views per UNet call follow the memory budget on CUDA (free memory when no budget is set)."""
    from zero123 import Zero123Pipeline

    pipe = Zero123Pipeline.from_config("configs/zero123/tiny.yaml", device=cuda_device, seed=0)
    cap = pipe.cfg.sampling.max_batch_size
    assert 1 <= pipe.auto_batch_size() <= cap
    if cuda_device.type == "cuda":
        pipe.cfg.sampling.memory_budget_gb = 1e-6
        assert pipe.auto_batch_size() == 1
        pipe.cfg.sampling.memory_budget_gb = None
        free = torch.cuda.mem_get_info(cuda_device)[0]
        assert pipe.auto_batch_size() == max(1, min(cap, int(0.8 * free // pipe.bytes_per_view())))
