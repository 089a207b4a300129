"""Training samples: normalised frame of a reference view, random target, GT/predicted source choice."""
import pytest
import torch

from data import layout
from data.cameras import Cameras
from data.datasets.one2345_official import TrainingObject
from data.reconstruction_frame import ReconstructionFrame
from data.views import Views
from reconstruction.training.samples import TrainingSampleDataset, build_sample, sample_cameras

SIZE = 32


def _object(polar=65.0, tag=0.0):
    cams = layout.cameras_for(layout.schedule(polar))
    k = cams.intrinsics.clone()
    k[:, :2] *= SIZE / 256
    cams = Cameras(cams.c2w, k, SIZE, SIZE)
    masks = torch.zeros(8, 1, SIZE, SIZE)
    masks[:, :, 10:20, 12:22] = 1
    depths = masks * 1.1
    targets = Views(torch.rand(8, 3, SIZE, SIZE), cams[slice(0, 8)], masks)
    sources = Views(torch.full((32, 3, SIZE, SIZE), tag), cams[slice(8, 40)])
    return TrainingObject("obj", targets, depths, sources)


class _Reader:
    def __init__(self):
        self.calls = []

    def __len__(self):
        return 2

    def load(self, index, source_kind="predicted"):
        self.calls.append((index, source_kind))
        return _object(tag=1.0 if source_kind == "gt" else 0.0)


def test_sample_is_expressed_in_the_reference_normalised_frame():
    obj = _object()
    s = build_sample(obj, reference=2, target=5)
    frame = ReconstructionFrame.from_cameras(obj.targets.cameras[2], obj.sources.cameras)
    assert torch.allclose(s["scale_mat"].double(), frame.scale_mat.float().double(), atol=1e-6)
    # a world point projects to the same pixel through the world and the normalised target camera
    world_pt = torch.tensor([[0.05, -0.1, 0.2]], dtype=torch.float64)
    uv_world, _ = obj.targets.cameras[5].to(dtype=torch.float64).project(world_pt)
    uv_norm, _ = sample_cameras(s, "target").project(frame.points_to_normalised(world_pt).float())
    assert torch.allclose(uv_world.float(), uv_norm, atol=1e-3)
    # affine = K @ w2c, near clipped at 0.95 * 0.02 at least, far beyond the unit sphere
    assert torch.allclose(s["source_affine"][:, :3], s["source_intrinsics"] @ s["source_w2c"][:, :3], atol=1e-5)
    assert (s["source_near_far"][:, 0] >= 0.95 * 0.02 - 1e-6).all() and (s["target_near_far"][1] > 1.0)
    assert s["target_depth"].max().item() == pytest.approx(1.1 / frame.radius, rel=1e-5)
    assert s["target_image"].shape == (3, SIZE, SIZE) and s["source_images"].shape == (32, 3, SIZE, SIZE)
    ref = build_sample(obj, reference=2, target=2)
    rot = ref["target_c2w"][:3, :3]
    assert torch.allclose(rot, torch.eye(3), atol=1e-5)  # the reference camera has the identity rotation


def test_dataset_indexing_and_source_probability():
    reader = _Reader()
    ds = TrainingSampleDataset(reader, gt_source_probability=0.0)
    assert len(ds) == 16
    s = ds[11]
    assert s["object_index"].item() == 1 and reader.calls[-1] == (1, "predicted")
    assert s["source_images"].max().item() == 0.0
    gt = TrainingSampleDataset(reader, gt_source_probability=1.0, fixed_target=True)
    assert gt[3]["source_images"].min().item() == 1.0 and reader.calls[-1] == (0, "gt")
    torch.manual_seed(0)
    mixed = TrainingSampleDataset(reader, gt_source_probability=0.5, cache=True)
    kinds = {mixed[i]["source_images"].max().item() for i in range(12)}
    assert kinds == {0.0, 1.0}
    with pytest.raises(ValueError, match="gt_source_probability"):
        TrainingSampleDataset(reader, gt_source_probability=1.5)
