"""`Views`: posed images, the only object passed between zero123 -> elevation -> reconstruction."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data.cameras import Cameras
from data.io import atomic_directory


@dataclass(frozen=True)
class Views:
    """N posed images.

    Attributes:
        images: (N, 3, H, W) float RGB in [0, 1] (white background for generated / preprocessed views).
        cameras: the N cameras (OpenCV axes, world frame); ``cameras.width/height == W/H``.
        masks: optional (N, 1, H, W) float foreground in [0, 1].
        names: N view names (e.g. the official ``"k_j"`` stems).
        source: provenance, e.g. ``"input"``, ``"zero123-stage1"``, ``"zero123-stage2"``, ``"render"``.
    """

    images: torch.Tensor
    cameras: Cameras
    masks: torch.Tensor | None = None
    names: tuple[str, ...] = field(default=())
    source: str = "unknown"

    def __post_init__(self) -> None:
        n, c, h, w = self.images.shape
        if c != 3:
            raise ValueError(f"Views.images must be (N, 3, H, W), got {tuple(self.images.shape)}")
        if len(self.cameras) != n or (self.cameras.width, self.cameras.height) != (w, h):
            raise ValueError(
                f"Views: {n} images of {w}x{h} but {len(self.cameras)} cameras of "
                f"{self.cameras.width}x{self.cameras.height}"
            )
        if self.masks is not None and self.masks.shape != (n, 1, h, w):
            raise ValueError(f"Views.masks must be ({n}, 1, {h}, {w}), got {tuple(self.masks.shape)}")
        if self.names and len(self.names) != n:
            raise ValueError(f"Views.names has {len(self.names)} entries for {n} images")
        if not self.names:
            object.__setattr__(self, "names", tuple(str(i) for i in range(n)))

    def __len__(self) -> int:
        return self.images.shape[0]

    def select(self, index) -> "Views":
        """Subset by a list of integer indices or view names."""
        idx = [self.names.index(i) if isinstance(i, str) else int(i) for i in index]
        t = torch.as_tensor(idx, dtype=torch.long)
        masks = None if self.masks is None else self.masks[t]
        cams = Cameras(self.cameras.c2w[t], self.cameras.intrinsics[t], self.cameras.width, self.cameras.height)
        return Views(self.images[t], cams, masks, tuple(self.names[i] for i in idx), self.source)

    @classmethod
    def cat(cls, views: list["Views"], source: str | None = None) -> "Views":
        has_masks = all(v.masks is not None for v in views)
        return cls(
            torch.cat([v.images for v in views]),
            Cameras.cat([v.cameras for v in views]),
            torch.cat([v.masks for v in views]) if has_masks else None,
            tuple(n for v in views for n in v.names),
            source or "+".join(dict.fromkeys(v.source for v in views)),
        )

    def to(self, device) -> "Views":
        masks = None if self.masks is None else self.masks.to(device)
        return Views(self.images.to(device), self.cameras.to(device), masks, self.names, self.source)

    # ------------------------------------------------------------------ debugging / caching, not transport
    def save(self, directory: str | Path) -> Path:
        """Write ``<name>.png`` per view and ``cameras.json`` (OpenCV c2w, K) into ``directory`` atomically."""
        with atomic_directory(directory) as tmp:
            for name, img in zip(self.names, self.images):
                arr = (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp / f"{name}.png")
            meta = {
                "source": self.source,
                "width": self.cameras.width,
                "height": self.cameras.height,
                "views": [
                    {"name": n, "c2w_opencv": c.tolist(), "intrinsics": k.tolist()}
                    for n, c, k in zip(self.names, self.cameras.c2w.cpu(), self.cameras.intrinsics.cpu())
                ],
            }
            (tmp / "cameras.json").write_text(json.dumps(meta, indent=1))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "Views":
        """Inverse of :meth:`save` (images quantised to 8 bit)."""
        directory = Path(directory)
        meta = json.loads((directory / "cameras.json").read_text())
        names = [v["name"] for v in meta["views"]]
        imgs = [np.asarray(Image.open(directory / f"{n}.png").convert("RGB"), np.float32) / 255 for n in names]
        cams = Cameras(
            torch.tensor([v["c2w_opencv"] for v in meta["views"]]),
            torch.tensor([v["intrinsics"] for v in meta["views"]]),
            meta["width"],
            meta["height"],
        )
        return cls(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2), cams, None, tuple(names), meta["source"])
