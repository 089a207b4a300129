"""``SparseSdfNetwork`` (checkpoint key ``sdf_network_lod0``): cost volume -> sparse U-Net -> latent SDF field.

Submodules (state-dict names of the official checkpoint): ``compress_layer`` (Conv 3x3 56->16 + InPlaceABN),
``sparse_costreg_net`` (sparse 3D U-Net, ``reconstruction.sparse``) and ``sdf_layer`` (the latent SDF MLP).
The compress layer and the U-Net normalise with batch statistics, so :meth:`build_volume` runs them on all views
/ all active voxels at once; only the projection and SDF queries are chunked.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reconstruction.cost_volume import active_voxels, variance_mean_cost
from reconstruction.feature_net import FUSED_CHANNELS, ConvABN
from reconstruction.sdf_network import LatentSDFMLP
from reconstruction.sparse import SparseCostRegNet, SparseTensor
from reconstruction.volume_sampling import channels_last_table, sample_latent, sample_latent_fast


@dataclass
class ConditionalVolume:
    """The regularised latent volume over [-1, 1]^3 of the normalised frame.

    Attributes:
        latent: (C, R, R, R) dense latent, zero outside active voxels, indexed [c, x, y, z].
        mask: (1, R, R, R) float, 1 at active voxels.
        coords: (N, 3) int64 active voxel coordinates in official order.
        cost: optional (N, 2C') cost-volume input of the U-Net (kept for diagnostics / parity tests).
        blocks: optional U-Net block outputs by name (``"conv0"`` ... ``"conv11"``).
    """

    latent: torch.Tensor
    mask: torch.Tensor
    coords: torch.Tensor
    cost: torch.Tensor | None = None
    blocks: dict | None = None

    @property
    def resolution(self) -> int:
        return self.latent.shape[-1]

    @property
    def table(self) -> torch.Tensor:
        """(R^3, C) channels-last copy of ``latent`` for fast point sampling.

        Without autograd tracking the copy is built once and cached. While gradients are tracked (training) a
        fresh, differentiable copy is returned on every call: a cached copy made under ``no_grad`` (e.g. by the
        renderer's coarse pass) would silently cut the SDF losses off the cost volume, U-Net and feature net.
        """
        if torch.is_grad_enabled() and self.latent.requires_grad:
            return channels_last_table(self.latent)
        cached = self.__dict__.get("_table")
        if cached is None or cached[0] is not self.latent:
            cached = (self.latent, channels_last_table(self.latent.detach()))
            self.__dict__["_table"] = cached
        return cached[1]


class SparseSdfNetwork(nn.Module):
    """Cost-volume SDF network (lod 0).

    Args:
        fused_channels: channels of the fused 2D feature maps (56).
        compress_channels: per-view channels entering the cost volume (16) -> U-Net input 2x that.
        latent_channels: U-Net output / SDF conditioning channels (16).
        hidden: SDF MLP width (128); n_frequencies: positional-encoding octaves (6).
    """

    def __init__(self, fused_channels: int = FUSED_CHANNELS, compress_channels: int = 16, latent_channels: int = 16,
                 hidden: int = 128, n_frequencies: int = 6):
        super().__init__()
        self.compress_layer = ConvABN(fused_channels, compress_channels, 3, 1, 1)
        self.sparse_costreg_net = SparseCostRegNet(d_in=2 * compress_channels, d_out=latent_channels)
        self.sdf_layer = LatentSDFMLP(hidden, latent_channels, n_frequencies)

    def build_volume(self, fused_maps: torch.Tensor, proj_mats: torch.Tensor, resolution: int, voxel_size: float,
                     min_views: int = 2, voxel_chunk: int = 65536, keep_intermediates: bool = False
                     ) -> ConditionalVolume:
        """Fused maps of all source views -> :class:`ConditionalVolume` (compress, cost volume, U-Net).

        Args:
            fused_maps: (V, 56, H, W) fused pyramid features of **all** source views (batch statistics).
            proj_mats: (V, 4, 4) official ``affine_mats`` (normalised frame -> pixels), float32.
            resolution, voxel_size: the cubic grid (node i at -1 + i * voxel_size).
        """
        compressed = self.compress_layer(fused_maps)
        coords, cost = self.cost_volume(compressed, proj_mats, resolution, voxel_size, min_views, voxel_chunk)
        del compressed
        return self.regularise(coords, cost, resolution, keep_intermediates)

    @staticmethod
    def cost_volume(compressed: torch.Tensor, proj_mats: torch.Tensor, resolution: int, voxel_size: float,
                    min_views: int = 2, voxel_chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
        """Active voxels (N, 3) and their [variance || mean] cost (N, 2C) from compressed maps (V, C, H, W)."""
        _, _, h, w = compressed.shape
        coords = active_voxels(resolution, voxel_size, proj_mats, w, h, min_views, voxel_chunk)
        if coords.shape[0] == 0:
            raise ValueError(
                f"no voxel of the {resolution}^3 volume is seen by {min_views} source views: check that the "
                "source cameras look at the object (world frame, OpenCV axes) and that the reference camera is right"
            )
        return coords, variance_mean_cost(compressed, coords, voxel_size, proj_mats, voxel_chunk)

    def regularise(self, coords: torch.Tensor, cost: torch.Tensor, resolution: int,
                   keep_intermediates: bool = False) -> ConditionalVolume:
        """Sparse U-Net on the whole cost volume (batch statistics), scattered into a dense latent volume."""
        sparse_coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1)], 1).to(torch.int32)
        blocks = {} if keep_intermediates else None
        out = self.sparse_costreg_net(SparseTensor(sparse_coords, cost, check_unique=False), block_outputs=blocks)
        feats = out.feats
        latent = feats.new_zeros(feats.shape[1], resolution, resolution, resolution)
        latent[:, coords[:, 0], coords[:, 1], coords[:, 2]] = feats.t()
        mask = feats.new_zeros(1, resolution, resolution, resolution)
        mask[:, coords[:, 0], coords[:, 1], coords[:, 2]] = 1
        return ConditionalVolume(latent, mask, coords, cost if keep_intermediates else None, blocks)

    def sdf(self, points: torch.Tensor, volume: ConditionalVolume) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """points (P, 3) normalised -> (sdf (P, 1), features (P, 127), latent (P, 16))."""
        latent = sample_latent(volume.latent, points, volume.table)
        out = self.sdf_layer(points, latent)
        return out[:, :1], out[:, 1:], latent

    def sdf_only(self, points: torch.Tensor, volume: ConditionalVolume) -> torch.Tensor:
        """points (P, 3) normalised -> SDF (P,) alone (the marching-cubes grid and normals: skips the 127 features
        and samples the latent with ``F.grid_sample``; first derivatives only)."""
        return self.sdf_layer.sdf_only(points, sample_latent_fast(volume.latent, points))

    def sdf_with_gradient(self, points: torch.Tensor, volume: ConditionalVolume, create_graph: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`sdf` outputs plus the SDF gradient (P, 3) w.r.t. the points (through the latent sampler).

        With ``create_graph`` the gradient stays differentiable (Eikonal loss in training).
        """
        with torch.enable_grad():
            pts = points.detach().requires_grad_(True)
            sdf, feats, latent = self.sdf(pts, volume)
            (grad,) = torch.autograd.grad(sdf, pts, torch.ones_like(sdf), create_graph=create_graph)
        return sdf, feats, latent, grad

    def sdf_and_gradient(self, points: torch.Tensor, volume: ConditionalVolume, create_graph: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """SDF (P, 1) and its gradient (P, 3) w.r.t. the points (through the custom latent sampler)."""
        sdf, _, _, grad = self.sdf_with_gradient(points, volume, create_graph)
        return sdf, grad
