"""UV-textured meshes from the reconstruction's colour function (issue #17).

The base-colour texture is baked exactly like the official vertex colours: at the surface point of every texel the
atlas covers, all source views are blended by the rendering network with the SDF's surface normal as the target
direction (:meth:`Reconstructor.colours`, chunked by ``colour_chunk``, on the reconstructor's device). The atlas
(xatlas), texel rasterisation and gutter dilation are in :mod:`data.texture`.

Example::

    out = rec.reconstruct(sources, reference)
    textured, stats = texture_reconstruction(rec, sources, reference, out, size=1024)
    textured.mesh   # world frame, uv + texture (+ vertex colours on the atlas vertices)
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from data.cameras import Cameras
from data.mesh import Mesh
from data.reconstruction_frame import ReconstructionFrame
from data.texture import DEFAULT_PADDING, BakeStats, ColourFn, bake_texture
from data.views import Views
from reconstruction.reconstructor import ReconstructionOutput, Reconstructor, SceneEncoding, SceneInputs


def network_colour_fn(rec: Reconstructor, encoding: SceneEncoding) -> ColourFn:
    """Colour function of the reconstruction: points in the normalised frame -> blended RGB in [0, 1]."""

    def fn(points: torch.Tensor, face: np.ndarray, bary: np.ndarray) -> torch.Tensor:
        return rec.colours(encoding, points).clamp(0, 1).cpu()

    return fn


def bake_mesh_texture(rec: Reconstructor, encoding: SceneEncoding, mesh: Mesh, size: int = 1024,
                      frame: ReconstructionFrame | None = None, padding: int = DEFAULT_PADDING
                      ) -> tuple[Mesh, BakeStats]:
    """UV-atlas ``mesh`` and bake its texture from the colour network of ``encoding``.

    Args:
        mesh: world-frame mesh when ``frame`` is given (it maps the texel points to the normalised frame the
            network works in), else a mesh in the normalised frame.
    """
    points = mesh.vertices.detach().cpu().double()
    if frame is not None:
        points = frame.points_to_normalised(points)
    return bake_texture(mesh, network_colour_fn(rec, encoding), size, points=points.float(), padding=padding)


def texture_reconstruction(rec: Reconstructor, sources: Views, reference: Cameras, output: ReconstructionOutput,
                           size: int = 1024, padding: int = DEFAULT_PADDING
                           ) -> tuple[ReconstructionOutput, BakeStats]:
    """Bake a texture for the mesh of ``rec.reconstruct(sources, reference)``.

    The scene is encoded again from the same views (deterministic: the same features and volume that coloured the
    vertices), so the reconstructor's own ``reconstruct`` stays unchanged. Returns the output with the textured
    (atlas) mesh and the bake statistics (the encoding's seconds under ``seconds["encode"]``).
    """
    import time

    t = time.perf_counter()
    encoding = rec.encode(SceneInputs.from_views(sources, reference))
    encode_s = time.perf_counter() - t
    mesh, stats = bake_mesh_texture(rec, encoding, output.mesh, size, output.frame, padding)
    stats.seconds = {"encode": encode_s, **stats.seconds}
    return replace(output, mesh=mesh), stats
