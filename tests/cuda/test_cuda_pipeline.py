"""The whole tiny random-weight chain (configs/infer/tiny.yaml) on the device, float32 and --half (``cuda``
marker): every stage runs there (no network layer computes on CPU tensors), result and mesh are well formed, and
``ran`` records what ran. The views are meaningless (random weights); the point is that no tensor is left on the
wrong device and the precisions hold."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from torch.overrides import TorchFunctionMode

from pipeline import One2345Pipeline, load_pipeline_config

pytestmark = pytest.mark.cuda
#: Smaller than tiny.yaml where time is spent on a CPU (the dry run): VAE width, volume and mesh sizes.
QUICK = ["progress=false", "mesh_resolution=16", "elevation.matcher.resize_px=32", "reconstruction.volume_resolution=16",
         "zero123.model.vae.block_out_channels=[8,8,8,8]", "zero123.model.vae.norm_num_groups=4"]


#: Network layers: on a CUDA run none of them may compute on CPU tensors (a module or input left on the CPU runs
#: silently there, only slower). The elevation solver's small linear algebra and marching cubes are CPU by design
#: and use none of these.
NETWORK_OPS = {"conv1d", "conv2d", "conv3d", "conv_transpose2d", "conv_transpose3d", "linear",
               "scaled_dot_product_attention", "group_norm", "layer_norm", "batch_norm", "embedding"}


class CpuNetworkOps(TorchFunctionMode):
    """Records network-layer calls whose tensor arguments all sit on the CPU."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in NETWORK_OPS:
            tensors = [a for a in list(args) + list((kwargs or {}).values()) if isinstance(a, torch.Tensor)]
            if tensors and all(t.device.type == "cpu" for t in tensors):
                self.calls.append(f"{name}{tuple(tensors[0].shape)}")
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def disc(tmp_path_factory):
    """A 256 px RGBA disc (own alpha: no segmenter needed)."""
    yy, xx = np.mgrid[:256, :256]
    img = np.zeros((256, 256, 4), np.uint8)
    inside = (yy - 128) ** 2 + (xx - 120) ** 2 < 70 ** 2
    img[inside] = (200, 90, 40, 255)
    img[inside & (xx > 120)] = (40, 90, 200, 255)
    path = tmp_path_factory.mktemp("cuda_pipeline") / "disc.png"
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize("half", [False, True], ids=["float32", "half"])
def test_tiny_pipeline_end_to_end_on_the_device(disc, cuda_device, half):
    if half and cuda_device.type != "cuda":
        pytest.skip("--half runs float32 off CUDA: the same run as the float32 case")
    cfg = load_pipeline_config("configs/infer/tiny.yaml",
                               overrides=QUICK + [f"device={cuda_device}", f"reconstruction.device={cuda_device}",
                                                  f"half={str(half).lower()}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = One2345Pipeline.from_config(cfg)
        with CpuNetworkOps() as cpu_ops:
            out = pipe(disc)
    if cuda_device.type == "cuda":
        assert not cpu_ops.calls, f"network layers computed on the CPU in a CUDA run: {sorted(set(cpu_ops.calls))[:10]}"
    else:
        assert cpu_ops.calls  # the recorder sees the CPU run's layers (dry run)
    assert pipe.device.type == cuda_device.type and pipe.reconstructor.device.type == cuda_device.type
    expected = "float16" if half and cuda_device.type == "cuda" else "float32"
    assert out.ran["device"].startswith(cuda_device.type) and out.ran["zero123_dtype"] == expected
    assert out.first_stage.images.shape == (8, 3, 256, 256) and out.nearby.images.shape == (32, 3, 256, 256)
    for images in (out.first_stage.images, out.nearby.images):
        assert images.device.type == "cpu" and torch.isfinite(images).all()
    assert out.mesh.num_vertices > 0 and torch.isfinite(out.mesh.vertices).all()
    assert out.polar_source in ("estimated", "fallback")
    assert set(out.peak_memory_gb) == set(out.timings) - {"load_models"}
