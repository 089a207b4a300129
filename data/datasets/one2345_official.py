"""Reader for the official One-2-3-45 training data layout (spec section 11.1).

Layout under ``root``::

    One2345_training_pose.json    shared rig: intrinsics (3x3), near_far (2), c2ws (40 Blender c2w, ordered:
                                  8 main views, then main view k's nearby view j, k-major / j-minor)
    lvis_split_cc_by.json         {"train": [{"folder_id": ..., "uid": ...}, ...], "val": [...]}
    zero12345_narrow/<folder_id>/<uid>/
        view_{k}.png              k = 0..7, ground-truth renders (RGBA, blended onto white): the targets
        view_{k}_depth_mm.png     uint16 z-depth in millimetres, 0 = background: gives the foreground mask
        view_{k}_{j}_10.png       j = 0..3, nearby views of view k (Zero123 predictions): the 32 sources
        view_{k}_{j}_10_gt.png    the same views rendered (ground truth), optional

The reader is lazy: :meth:`One2345OfficialDataset.load` reads one object. Cameras come out in the world frame
with OpenCV axes (``data.cameras.Cameras``), so the training code treats this layout like any other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from data.cameras import Cameras
from data.views import Views

POSE_FILE = "One2345_training_pose.json"
SPLIT_FILE = "lvis_split_cc_by.json"
IMAGE_FOLDER = "zero12345_narrow"
NUM_MAIN_VIEWS = 8
NUM_NEARBY = 4
SourceKind = Literal["predicted", "gt"]


class OfficialLayoutError(ValueError):
    """The folder does not follow the official layout (the message names the missing/bad file)."""


@dataclass(frozen=True)
class TrainingObject:
    """Everything the reconstruction trainer needs from one object, world frame.

    Attributes:
        uid: object identifier.
        targets: the 8 ground-truth main views, with ``masks`` (8, 1, H, W) in {0, 1}.
        target_depths: optional (8, 1, H, W) z-depth along each camera's optical axis, world units, 0 =
            background.
        sources: the 32 nearby views (official order ``k_j``), ground truth or predicted.
    """

    uid: str
    targets: Views
    target_depths: torch.Tensor | None
    sources: Views


def read_rgb_on_white(path: Path) -> torch.Tensor:
    """PNG (RGB or RGBA) -> (3, H, W) float in [0, 1]; transparent pixels blended onto white."""
    if not path.is_file():
        raise OfficialLayoutError(f"missing image {path}")
    img = Image.open(path)
    arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    rgb, alpha = arr[..., :3], arr[..., 3:]
    return torch.from_numpy(rgb * alpha + (1.0 - alpha)).permute(2, 0, 1).contiguous()


def read_depth_mm(path: Path) -> torch.Tensor:
    """uint16 millimetre depth PNG -> (1, H, W) float depth in world units (metres), 0 = background."""
    if not path.is_file():
        raise OfficialLayoutError(f"missing depth map {path}")
    arr = np.asarray(Image.open(path)).astype(np.float32)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return torch.from_numpy(arr / 1000.0)[None]


def resize_views(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size); ``mode`` 'area' for colours, 'nearest' for depth / masks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode=mode)


def scale_intrinsics(k: torch.Tensor, factor: float) -> torch.Tensor:
    """Pinhole K (..., 3, 3) for an image resized by ``factor`` (focal and principal point scale alike)."""
    out = k.clone()
    out[..., :2, :] *= factor
    return out


class One2345OfficialDataset:
    """Index of one split of the official layout; :meth:`load` reads an object.

    Args:
        root: the base folder (holding the pose and split JSON files and ``zero12345_narrow``).
        split: ``"train"`` or ``"val"`` (keys of the split file).
        image_size: resize every image to this square size (``None`` keeps the stored 256 px); the
            intrinsics are scaled to match.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise OfficialLayoutError(f"official data folder not found: {self.root}")
        self.image_size = image_size
        self.rig = self._read_rig(self.root / POSE_FILE)
        split_path = self.root / SPLIT_FILE
        if not split_path.is_file():
            raise OfficialLayoutError(f"missing split file {split_path} (expected {{'train': [...], 'val': [...]}})")
        splits = json.loads(split_path.read_text())
        if split not in splits:
            raise OfficialLayoutError(f"{split_path} has no split '{split}' (available: {sorted(splits)})")
        try:
            self.entries = [(str(e["folder_id"]), str(e["uid"])) for e in splits[split]]
        except (KeyError, TypeError) as exc:
            raise OfficialLayoutError(f"{split_path}: items must be {{'folder_id': ..., 'uid': ...}}") from exc

    @staticmethod
    def _read_rig(path: Path) -> Cameras:
        """The 40 rig cameras (OpenCV, world frame) from the shared pose file."""
        if not path.is_file():
            raise OfficialLayoutError(f"missing rig file {path}")
        meta = json.loads(path.read_text())
        try:
            c2ws = meta["c2ws"]
            c2ws = list(c2ws.values()) if isinstance(c2ws, dict) else list(c2ws)
            k = torch.tensor(meta["intrinsics"], dtype=torch.float32)
        except (KeyError, TypeError) as exc:
            raise OfficialLayoutError(f"{path}: needs 'intrinsics' (3x3) and 'c2ws' (40 4x4)") from exc
        expected = NUM_MAIN_VIEWS * (1 + NUM_NEARBY)
        if len(c2ws) != expected or k.shape != (3, 3):
            raise OfficialLayoutError(
                f"{path}: expected {expected} c2ws and a 3x3 intrinsics, got {len(c2ws)} and {tuple(k.shape)}"
            )
        size = int(round(float(k[0, 2]) * 2))
        return Cameras.from_opengl(torch.tensor(c2ws, dtype=torch.float32), k, size, size)

    def __len__(self) -> int:
        return len(self.entries)

    def object_dir(self, index: int) -> Path:
        folder_id, uid = self.entries[index]
        return self.root / IMAGE_FOLDER / folder_id / uid

    def _cameras(self, index: slice, size: int) -> Cameras:
        cams = self.rig[index]
        factor = size / cams.width
        return Cameras(cams.c2w, scale_intrinsics(cams.intrinsics, factor), size, size)

    def load(self, index: int, source_kind: SourceKind = "predicted") -> TrainingObject:
        """Read object ``index``: 8 targets with masks and depths, and the 32 sources of ``source_kind``."""
        if source_kind not in ("predicted", "gt"):
            raise ValueError(f"source_kind must be 'predicted' or 'gt', got {source_kind!r}")
        folder = self.object_dir(index)
        if not folder.is_dir():
            raise OfficialLayoutError(f"missing object folder {folder}")
        targets = torch.stack([read_rgb_on_white(folder / f"view_{k}.png") for k in range(NUM_MAIN_VIEWS)])
        depths = torch.stack([read_depth_mm(folder / f"view_{k}_depth_mm.png") for k in range(NUM_MAIN_VIEWS)])
        suffix = "_gt" if source_kind == "gt" else ""
        names = [f"{k}_{j}" for k in range(NUM_MAIN_VIEWS) for j in range(NUM_NEARBY)]
        sources = torch.stack([read_rgb_on_white(folder / f"view_{n}_10{suffix}.png") for n in names])
        if targets.shape[-1] != self.rig.width or targets.shape[-2] != self.rig.height:
            raise OfficialLayoutError(
                f"{folder}: images are {targets.shape[-1]}x{targets.shape[-2]} but the rig intrinsics describe "
                f"{self.rig.width}x{self.rig.height} (principal point at the image centre)"
            )
        size = self.image_size or targets.shape[-1]
        targets = resize_views(targets, size, "area")
        depths = resize_views(depths, size, "nearest")
        sources = resize_views(sources, size, "area")
        masks = (depths > 0).to(targets.dtype)
        uid = self.entries[index][1]
        target_views = Views(targets, self._cameras(slice(0, NUM_MAIN_VIEWS), size), masks,
                             tuple(str(k) for k in range(NUM_MAIN_VIEWS)), "render")
        source_views = Views(sources, self._cameras(slice(NUM_MAIN_VIEWS, None), size), None, tuple(names),
                             "render" if source_kind == "gt" else "zero123-stage2")
        return TrainingObject(uid, target_views, depths, source_views)
