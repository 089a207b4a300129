"""CLIP similarity between renders of a prediction and of the ground truth (One-2-3-45's CLIP-sim).

Per view pair: cosine similarity of the CLIP image embeddings (projected, L2-normalised); the object's score is
the mean over the view pairs (One-2-3-45: 24 views, 12 azimuths at 30 deg and 12 at 0 deg elevation). Reported as
a fraction in [-1, 1]; the papers print x100. The backbone used by the paper is not published: the model is an
argument (a local folder or hub id of a transformers ``CLIPModel``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class ClipSimilarity:
    """Scores view pairs with a transformers CLIP model.

    Args:
        model: a ``transformers.CLIPModel`` (e.g. a tiny random one in tests).
        processor: its ``CLIPImageProcessor`` (resizing, centre crop, normalisation).
        device: run-time device; batch_size: images per forward pass.
    """

    def __init__(self, model, processor, device: str | torch.device = "cpu", batch_size: int = 16):
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> "ClipSimilarity":
        """Load a CLIP checkpoint (local folder, or hub id from the local HF cache); clear error when absent."""
        from transformers import CLIPImageProcessor, CLIPModel

        try:
            model = CLIPModel.from_pretrained(str(name_or_path))
            processor = CLIPImageProcessor.from_pretrained(str(name_or_path))
        except OSError as exc:
            raise FileNotFoundError(
                f"CLIP model {name_or_path!r} not found locally: pass a folder holding a transformers CLIPModel "
                f"(config.json + weights + preprocessor_config.json) or a hub id already in the HF cache"
            ) from exc
        return cls(model, processor, device)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, D) L2-normalised image embeddings."""
        arrays = [np.ascontiguousarray(im.permute(1, 2, 0).cpu().float().numpy()) for im in images]
        feats = []
        for start in range(0, len(arrays), self.batch_size):
            batch = self.processor(images=arrays[start:start + self.batch_size], return_tensors="pt",
                                   do_rescale=False)
            out = self.model.get_image_features(pixel_values=batch["pixel_values"].to(self.device))
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            feats.append(torch.nn.functional.normalize(out.float(), dim=-1).cpu())
        return torch.cat(feats)

    def per_view(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """(N,) cosine similarity of each (prediction view, GT view) pair."""
        if pred.shape[0] != gt.shape[0]:
            raise ValueError(f"CLIP similarity needs as many predicted as GT views ({pred.shape[0]} vs {gt.shape[0]})")
        return (self.embed(pred) * self.embed(gt)).sum(-1)

    def score(self, pred: torch.Tensor, gt: torch.Tensor) -> dict:
        """``{"clip_similarity": mean, "per_view": [...]}``."""
        views = self.per_view(pred, gt)
        return {"clip_similarity": float(views.mean()), "per_view": views.tolist()}
