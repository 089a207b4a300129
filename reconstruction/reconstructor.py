"""Inference: 32 posed source views -> SDF volume -> coloured mesh (official ``export_mesh`` path, spec 7-9).

Usage::

    rec = Reconstructor.from_official_checkpoint("ckpt_215000.pth", device="cuda")
    out = rec.reconstruct(sources, reference)          # sources: Views (32), reference: Cameras (1)
    out.mesh.export("mesh.ply")

Batch-statistics layers (feature pyramid, compress layer, sparse U-Net) always run on the whole input; SDF,
gradient and colour queries are chunked (``ReconstructionConfig.point_chunk`` / ``colour_chunk``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from data.cameras import Cameras
from data.device import resolve_device
from data.mesh import Mesh
from data.reconstruction_frame import ReconstructionFrame, affine_mats
from data.sdf_volume import SDFVolume
from data.views import Views
from reconstruction.checkpoint import load_official_checkpoint
from reconstruction.config import SDF_GRIDS, ReconstructionConfig
from reconstruction.meshing import evaluate_sdf_grid, marching_cubes
from reconstruction.narrow_band import BandStats, evaluate_sdf_band, fixed_shape
from reconstruction.model import ReconstructionModel
from reconstruction.projector import BlendingInputs, blending_inputs
from reconstruction.sparse_sdf_network import ConditionalVolume


class ReconstructionError(RuntimeError):
    """The inputs cannot be reconstructed (e.g. no surface found); the message says why."""


@dataclass
class SceneInputs:
    """Network inputs in the normalised frame (what the official data loader hands over).

    Attributes:
        images: (V, 3, H, W) float32 source images in [0, 1].
        w2cs: (V, 4, 4) float32 OpenCV world-to-camera, normalised frame.
        intrinsics: (V, 3, 3) float32 pixel intrinsics.
        proj_mats: (V, 4, 4) float32 ``K @ w2c`` (the cost volume's projection).
        frame: the reference / normalised frames (None when built from raw tensors).
    """

    images: torch.Tensor
    w2cs: torch.Tensor
    intrinsics: torch.Tensor
    proj_mats: torch.Tensor
    frame: ReconstructionFrame | None = None

    @classmethod
    def from_views(cls, sources: Views, reference: Cameras) -> "SceneInputs":
        """Official normalisation of world-frame source views around a 1-camera reference."""
        if len(reference) != 1:
            raise ValueError(f"reference must hold exactly 1 camera (first-stage view 0), got {len(reference)}")
        if len(sources) < 2:
            raise ValueError(f"need at least 2 source views (the official pipeline uses 32), got {len(sources)}")
        _, _, h, w = sources.images.shape
        if h % 4 or w % 4:
            raise ValueError(f"source images must have sides divisible by 4 (feature pyramid), got {w}x{h}")
        cams = sources.cameras.to(dtype=torch.float64)
        frame = ReconstructionFrame.from_cameras(reference.to(dtype=torch.float64), cams)
        normalised = frame.cameras_to_normalised(cams)
        return cls(
            sources.images.float(),
            normalised.w2c.float(),
            normalised.intrinsics.float(),
            affine_mats(normalised).float(),
            frame,
        )

    def to(self, device) -> "SceneInputs":
        return SceneInputs(self.images.to(device), self.w2cs.to(device), self.intrinsics.to(device),
                           self.proj_mats.to(device), self.frame)


@dataclass
class SceneEncoding:
    """Everything queries need: the inputs, fused 2D feature maps (V, 56, H, W) and the latent volume."""

    inputs: SceneInputs
    fused_maps: torch.Tensor
    volume: ConditionalVolume


@dataclass
class PointQuery:
    """SDF decoder outputs at P points: sdf (P,), features (P, 127), latent (P, 16), gradient (P, 3) or None."""

    sdf: torch.Tensor
    features: torch.Tensor
    latent: torch.Tensor
    gradient: torch.Tensor | None = None


@dataclass
class ReconstructionOutput:
    """Result of :meth:`Reconstructor.reconstruct`.

    Attributes:
        mesh: world frame of pose.json (z up), vertex colours in [0, 1].
        sdf: the marching-cubes grid (normalised frame, positive outside).
        frame: maps normalised <-> reference <-> world.
        grid_stats: how the marching-cubes grid was evaluated (queries, growth rounds).
    """

    mesh: Mesh
    sdf: SDFVolume
    frame: ReconstructionFrame
    grid_stats: BandStats | None = None


class Reconstructor:
    """SparseNeuS-style cost-volume reconstruction (inference)."""

    def __init__(self, model: ReconstructionModel, config: ReconstructionConfig | None = None, device=None):
        self.config = (config or ReconstructionConfig()).validate()
        self.device = resolve_device(device if device is not None else self.config.device)
        self.model = model.to(self.device).use_batch_statistics()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: ReconstructionConfig, device=None) -> "Reconstructor":
        """Randomly initialised networks (seeded by ``config.seed``), e.g. for tests and smoke runs."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = ReconstructionModel()
        return cls(model, config, device)

    @classmethod
    def from_official_checkpoint(cls, path: str | Path, device=None, config: ReconstructionConfig | None = None
                                 ) -> "Reconstructor":
        """Networks from an official-format checkpoint (``ckpt_215000.pth``)."""
        return cls(load_official_checkpoint(path, "cpu"), config, device)

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def encode(self, inputs: SceneInputs, keep_intermediates: bool = False) -> SceneEncoding:
        """Feature pyramid + cost volume + sparse U-Net (all whole-batch, batch statistics)."""
        inputs = inputs.to(self.device)
        cfg = self.config
        fused = self.model.pyramid_feature_network.fused(inputs.images)
        volume = self.model.sdf_network_lod0.build_volume(
            fused, inputs.proj_mats, cfg.volume_resolution, cfg.resolved_voxel_size(), cfg.min_visible_views,
            cfg.voxel_chunk, keep_intermediates,
        )
        return SceneEncoding(inputs, fused, volume)

    def query(self, encoding: SceneEncoding, points: torch.Tensor, with_gradient: bool = False) -> PointQuery:
        """SDF decoder at (P, 3) normalised points, chunked; gradients through the latent sampler if asked."""
        net = self.model.sdf_network_lod0
        parts = []
        for pts in points.to(self.device, torch.float32).split(self.config.point_chunk):
            if with_gradient:
                sdf, feats, latent, grad = (t.detach() for t in net.sdf_with_gradient(pts, encoding.volume))
            else:
                with torch.no_grad():
                    (sdf, feats, latent), grad = net.sdf(pts, encoding.volume), None
            parts.append((sdf[:, 0], feats, latent, grad))
        if not parts:
            raise ValueError("query needs at least one point")
        sdf, feats, latent, grads = zip(*parts)
        return PointQuery(torch.cat(sdf), torch.cat(feats), torch.cat(latent),
                          torch.cat(grads) if with_gradient else None)

    def sdf_volume(self, encoding: SceneEncoding, resolution: int | None = None, method: str | None = None
                   ) -> SDFVolume:
        """SDF on ``linspace(-1, 1, R)^3`` of the normalised frame (the official export grid).

        ``method``: ``"narrow_band"`` or ``"dense"`` (default ``config.sdf_grid``). Both query the SDF in chunks of
        exactly ``config.point_chunk`` points, so the narrow band's evaluated nodes equal the dense grid's bit for bit
        and marching cubes gives the same mesh; the narrow-band volume marks them in ``evaluated``.
        """
        return self.sdf_volume_with_stats(encoding, resolution, method)[0]

    def sdf_volume_with_stats(self, encoding: SceneEncoding, resolution: int | None = None, method: str | None = None
                              ) -> tuple[SDFVolume, BandStats]:
        """:meth:`sdf_volume` and what it evaluated (:class:`BandStats`; the dense grid counts R^3 queries)."""
        cfg = self.config
        net = self.model.sdf_network_lod0
        resolution = resolution or cfg.mesh_resolution
        method = method or cfg.sdf_grid
        if method not in SDF_GRIDS:
            raise ValueError(f"method must be one of {sorted(SDF_GRIDS)}, got {method!r}")

        @torch.no_grad()
        def sdf_fn(pts: torch.Tensor) -> torch.Tensor:
            return net.sdf_only(pts, encoding.volume)

        sdf_fn = fixed_shape(sdf_fn, cfg.point_chunk)
        if method == "dense":
            volume = evaluate_sdf_grid(sdf_fn, resolution, block=cfg.sdf_block, device=self.device)
            return volume, BandStats(resolution, resolution ** 3, 0, False, method="dense")
        return evaluate_sdf_band(sdf_fn, resolution, margin=cfg.band_margin,
                                 coarse_stride=cfg.band_coarse_stride, device=self.device)

    def normals(self, encoding: SceneEncoding, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) unit SDF gradients (official: ``F.normalize(grad, eps=1e-6)``, pointing outwards).

        Differentiates the SDF output alone (:meth:`SparseSdfNetwork.sdf_only`), chunked by ``point_chunk``.
        """
        net = self.model.sdf_network_lod0
        grads = []
        for pts in points.to(self.device, torch.float32).split(self.config.point_chunk):
            with torch.enable_grad():
                pts = pts.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(net.sdf_only(pts, encoding.volume).sum(), pts)
            grads.append(grad)
        if not grads:
            return points.new_zeros(0, 3)
        return F.normalize(torch.cat(grads), p=2, dim=-1, eps=1e-6)

    @torch.no_grad()
    def blending_inputs(self, encoding: SceneEncoding, points: torch.Tensor, view_dirs: torch.Tensor
                        ) -> BlendingInputs:
        """Blending-network inputs at (P, 3) points with (P, 3) unit target directions (not chunked; moved to the
        reconstructor's device)."""
        enc = encoding
        points, view_dirs = points.to(self.device, torch.float32), view_dirs.to(self.device, torch.float32)
        return blending_inputs(points, view_dirs, enc.volume.latent, enc.volume.mask, enc.fused_maps,
                               enc.inputs.images, enc.inputs.w2cs, enc.inputs.intrinsics)

    def colours(self, encoding: SceneEncoding, points: torch.Tensor) -> torch.Tensor:
        """(P, 3) vertex colours in [0, 1]: all source views blended with the surface normal as the target
        direction (official mesh export), chunked by ``colour_chunk``."""
        out = []
        for pts in points.to(self.device, torch.float32).split(self.config.colour_chunk):
            normals = self.normals(encoding, pts)
            inp = self.blending_inputs(encoding, pts, normals)
            with torch.no_grad():
                rgb, _ = self.model.rendering_network_lod0(
                    inp.geometry[None], inp.view_features[:, None], inp.ray_diff[:, None], inp.mask[:, None])
            out.append(rgb[0])
        return torch.cat(out) if out else points.new_zeros(0, 3)

    # ------------------------------------------------------------------ end to end
    def reconstruct(self, sources: Views, reference: Cameras, mesh_resolution: int | None = None
                    ) -> ReconstructionOutput:
        """32 posed nearby views (world frame, official order) + reference camera -> coloured mesh.

        Args:
            sources: the source views; images (V, 3, H, W) in [0, 1], OpenCV cameras in the pose.json world.
            reference: 1 camera (first-stage view 0) defining the reference frame.
            mesh_resolution: marching-cubes grid per axis (default: ``config.mesh_resolution``, official 256).
        """
        inputs = SceneInputs.from_views(sources, reference)
        encoding = self.encode(inputs)
        volume, grid_stats = self.sdf_volume_with_stats(encoding, mesh_resolution)
        verts, faces = marching_cubes(volume)
        if len(faces) == 0:
            raise ReconstructionError(
                f"the SDF has no zero crossing on the {volume.resolution[0]}^3 grid (min {float(volume.sdf.min()):.3g},"
                f" max {float(volume.sdf.max()):.3g}): check the source views and cameras, or the weights"
            )
        verts_norm = torch.from_numpy(verts)
        colours = self.colours(encoding, verts_norm.float()).clamp(0, 1).cpu()
        world = inputs.frame.points_to_world(verts_norm)
        mesh = Mesh(world.float(), torch.from_numpy(faces), colours.float())
        return ReconstructionOutput(mesh, volume, inputs.frame, grid_stats)
