"""Typed configuration of the reconstruction stage (load with ``data.config.load_config``)."""
from __future__ import annotations

from dataclasses import dataclass

#: How the marching-cubes grid is evaluated (both give the same mesh; ``dense`` is the reference).
SDF_GRIDS = {"narrow_band", "dense"}
#: The official conf's voxel size, used literally (so the last node sits at 0.99999985, not 1).
OFFICIAL_VOXEL_SIZE = 0.02105263


@dataclass
class ReconstructionConfig:
    """Reconstruction settings.

    Attributes:
        volume_resolution: cost-volume nodes per axis over [-1, 1]^3 (official 96; the tiny config uses 32).
        voxel_size: node spacing in normalised units; ``None`` = 2 / (volume_resolution - 1). The official
            value is :data:`OFFICIAL_VOXEL_SIZE`.
        min_visible_views: a voxel is active when seen by at least this many source views (official 2).
        mesh_resolution: marching-cubes grid per axis (official export 256).
        sdf_grid: ``"narrow_band"`` (default: the SDF evaluated only around the surface, same mesh as the dense
            grid; ``reconstruction.narrow_band``) or ``"dense"`` (every node, as the official export).
        band_margin, band_coarse_stride: the narrow band's slope bound (a block is surface-free when all its corners
            are farther from zero than ``band_margin`` times its diagonal) and first block size in cells.
        sdf_block: the dense grid is evaluated in blocks of sdf_block^3 points (official 64).
        point_chunk: points per SDF / gradient query chunk; SDF-grid queries always run in chunks of exactly this
            many points (the last one padded) so that a node's value does not depend on which grid path asked.
        colour_chunk: mesh vertices per blending-network chunk (32 views x 59 features each; on CPU 512 ran 2x
            faster than 8192: the per-view temporaries stay in cache).
        voxel_chunk: voxels per projection / cost-aggregation chunk.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: RNG seed for random initialisation (``Reconstructor.from_config``).
    """

    volume_resolution: int = 96
    voxel_size: float | None = OFFICIAL_VOXEL_SIZE
    min_visible_views: int = 2
    mesh_resolution: int = 256
    sdf_grid: str = "narrow_band"
    band_margin: float = 5.0
    band_coarse_stride: int = 8
    sdf_block: int = 64
    point_chunk: int = 4096
    colour_chunk: int = 512
    voxel_chunk: int = 65536
    device: str = "auto"
    seed: int = 0

    def resolved_voxel_size(self) -> float:
        return self.voxel_size if self.voxel_size is not None else 2.0 / (self.volume_resolution - 1)

    def validate(self) -> "ReconstructionConfig":
        from data.config import ConfigError

        if self.volume_resolution < 8:
            raise ConfigError(f"volume_resolution must be >= 8, got {self.volume_resolution}")
        if self.mesh_resolution < 4:
            raise ConfigError(f"mesh_resolution must be >= 4, got {self.mesh_resolution}")
        for name in ("sdf_block", "point_chunk", "colour_chunk", "voxel_chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sdf_grid not in SDF_GRIDS:
            raise ConfigError(f"sdf_grid must be one of {sorted(SDF_GRIDS)}, got {self.sdf_grid!r}")
        if self.band_margin <= 0:
            raise ConfigError(f"band_margin must be > 0, got {self.band_margin}")
        if self.band_coarse_stride < 2 or self.band_coarse_stride & (self.band_coarse_stride - 1):
            raise ConfigError(f"band_coarse_stride must be a power of 2 >= 2, got {self.band_coarse_stride}")
        if self.min_visible_views < 1:
            raise ConfigError(f"min_visible_views must be >= 1, got {self.min_visible_views}")
        return self
