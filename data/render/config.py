"""Typed settings of the CPU renderer (load with :func:`data.config.load_config`)."""
from __future__ import annotations

from dataclasses import dataclass, field

SHADINGS = ("lit", "flat")
LIGHTS = ("headlight", "world", "none")


@dataclass
class RenderConfig:
    """How :class:`data.render.MeshRenderer` shades and what it returns.

    Attributes:
        shading: ``"lit"`` (Lambert: ``albedo * min(1, ambient + light_intensity * max(0, n . -l))``, computed
            per pixel from the rasterised albedo and normals) or ``"flat"`` (albedo only: texture / vertex colour
            exactly as stored).
        light: ``"headlight"`` (a directional light shining along each camera's optical axis), ``"world"``
            (a fixed directional light travelling along ``light_direction``) or ``"none"`` (ambient only).
        light_intensity: weight of the directional term.
        light_direction: world-frame direction the ``"world"`` light travels (need not be unit length).
        ambient: ambient term (fraction of the albedo every surface gets).
        background: RGB in [0, 1] the image is composited on (white, as the One-2-3-45 inputs).
        default_color: base colour of meshes without texture or vertex colours.
        double_sided: render back faces too (open scans and inconsistent windings stay closed).
        supersample: odd factor s (1, 3, 5): rasterise at s x the resolution without multisampling and box-filter
            colour, alpha and normals down (anti-aliasing); depth is the centre sub-sample, i.e. exactly the
            pixel centre, whatever s.
        depth_source: ``"raster"`` (depth buffer at pixel centres) or ``"raycast"`` (trimesh/embree per pixel
            centre in float64; slower, for reference values).
        normals: also return per-pixel world-frame normals (interpolated corner normals, 8-bit rasterised).
        crease_deg: edges whose faces meet at more than this angle (degrees) stay sharp in the shading normals.
        znear, zfar: clipping planes (world units).
    """

    shading: str = "lit"
    light: str = "headlight"
    light_intensity: float = 0.7
    light_direction: list[float] = field(default_factory=lambda: [0.3, 0.5, -1.0])
    ambient: float = 0.35
    background: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    default_color: list[float] = field(default_factory=lambda: [0.7, 0.7, 0.7])
    double_sided: bool = True
    supersample: int = 3
    depth_source: str = "raster"
    normals: bool = True
    crease_deg: float = 60.0
    znear: float = 0.01
    zfar: float = 100.0

    def __post_init__(self) -> None:
        if self.shading not in SHADINGS:
            raise ValueError(f"RenderConfig.shading must be one of {SHADINGS}, got {self.shading!r}")
        if self.light not in LIGHTS:
            raise ValueError(f"RenderConfig.light must be one of {LIGHTS}, got {self.light!r}")
        if self.depth_source not in ("raster", "raycast"):
            raise ValueError(f"RenderConfig.depth_source must be 'raster' or 'raycast', got {self.depth_source!r}")
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f"RenderConfig.supersample must be odd and >= 1, got {self.supersample}")
        if not 0.0 < self.znear < self.zfar:
            raise ValueError(f"RenderConfig needs 0 < znear < zfar, got {self.znear}, {self.zfar}")
