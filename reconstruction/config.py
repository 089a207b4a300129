"""Typed configuration of the reconstruction stage (load with ``data.config.load_config``)."""
from __future__ import annotations

from dataclasses import dataclass

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
        sdf_block: SDF grid evaluated in blocks of sdf_block^3 points (official 64).
        point_chunk: points per SDF / gradient query chunk.
        colour_chunk: mesh vertices per blending-network chunk (32 views x 59 features each).
        voxel_chunk: voxels per projection / cost-aggregation chunk.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: RNG seed for random initialisation (``Reconstructor.from_config``).
    """

    volume_resolution: int = 96
    voxel_size: float | None = OFFICIAL_VOXEL_SIZE
    min_visible_views: int = 2
    mesh_resolution: int = 256
    sdf_block: int = 64
    point_chunk: int = 65536
    colour_chunk: int = 8192
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
        if self.min_visible_views < 1:
            raise ConfigError(f"min_visible_views must be >= 1, got {self.min_visible_views}")
        return self
