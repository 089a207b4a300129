"""data.device: the one device rule of every stage (resolve_device) and the TF32 switch (strict_fp32)."""
import pytest
import torch

from data.config import ConfigError
from data.device import resolve_device, strict_fp32


def test_auto_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


def test_explicit_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_names_the_fix():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_strict_fp32_turns_tf32_off_and_restores_the_flags():
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        with strict_fp32():
            assert not cudnn.allow_tf32 and not matmul.allow_tf32
        assert cudnn.allow_tf32 and matmul.allow_tf32
        with pytest.raises(RuntimeError), strict_fp32():
            raise RuntimeError("restored on errors too")
        assert cudnn.allow_tf32 and matmul.allow_tf32
        with strict_fp32(enabled=False):
            assert cudnn.allow_tf32
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before
