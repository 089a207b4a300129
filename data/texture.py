"""UV atlases and texture baking for triangle meshes (pure geometry; no network).

* :func:`uv_atlas` parametrises a mesh with ``xatlas`` (charts packed into one square atlas with a gutter between
  charts); vertices on chart seams are duplicated (``vmapping`` gives each new vertex's source vertex).
* :func:`rasterize_uv` finds, for every texel the atlas touches, the triangle and the barycentric coordinates of its
  surface point: texels whose centre lies inside a triangle exactly, and -- so that bilinear filtering at a chart's
  border reads true colours -- texels within :data:`BORDER_TEXELS` of a triangle, whose barycentrics are clamped
  onto the triangle.
* :func:`fill_gutters` gives every texel no triangle touched the colour of its nearest covered texel (gutter
  dilation), so that bilinear filtering and mip-mapping never blend in a background colour.
* :func:`bake_texture` ties them together around any colour function of surface points (the reconstruction's
  blending network, or :func:`vertex_colour_fn` for methods that only have vertex colours).

Texture convention (trimesh / glTF as loaded by trimesh / OBJ): ``uv`` origin bottom-left, image row 0 at the top,
so texel (row r, column c) has its centre at ``u = (c + 0.5) / W``, ``v = 1 - (r + 0.5) / H``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from data.mesh import Mesh

#: Texels whose centre lies within this distance (in texels) of a triangle are baked too (conservative coverage:
#: half the texel diagonal covers every texel the triangle overlaps).
BORDER_TEXELS = 0.75
#: Default gutter between charts in texels (xatlas ``PackOptions.padding``).
DEFAULT_PADDING = 4


class TextureError(ValueError):
    """The mesh cannot be given a texture atlas (empty, or the charts do not fit one atlas); the message says why."""


@dataclass
class UVAtlas:
    """A mesh's UV parametrisation.

    Attributes:
        vmapping: (V',) int64 source vertex of every atlas vertex (seam vertices appear several times).
        faces: (F, 3) int64 faces over the atlas vertices (same order and winding as the source faces).
        uv: (V', 2) float32 texture coordinates in [0, 1] (origin bottom-left).
        size: atlas side in texels.
    """

    vmapping: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    size: int


#: Faces per xatlas mesh: larger meshes are cut into spatial blocks (k-d splits at the median face centre) that are
#: charted separately and packed into one atlas. xatlas's chart growing is superlinear in the faces of one mesh
#: (marching cubes at 256^3: 545k faces took 21 min in one piece on the shared CPU); the blocks add chart seams only.
ATLAS_BLOCK_FACES = 20000


def _face_blocks(vertices: np.ndarray, faces: np.ndarray, block_faces: int) -> list[np.ndarray]:
    """Face-index sets of at most ``block_faces`` faces each, by median splits of the face centres (longest axis)."""
    centres = vertices[faces].mean(1)
    todo, done = [np.arange(len(faces))], []
    while todo:
        idx = todo.pop()
        if len(idx) <= block_faces:
            done.append(idx)
            continue
        c = centres[idx]
        axis = int(np.argmax(c.max(0) - c.min(0)))
        order = idx[np.argsort(c[:, axis], kind="stable")]
        half = len(order) // 2
        todo += [order[:half], order[half:]]
    return sorted(done, key=lambda b: int(b.min()))


def uv_atlas(vertices: np.ndarray, faces: np.ndarray, size: int, padding: int = DEFAULT_PADDING,
             block_faces: int = ATLAS_BLOCK_FACES) -> UVAtlas:
    """Parametrise a triangle mesh with xatlas into one ``size`` x ``size`` atlas (``padding`` texels of gutter);
    meshes over ``block_faces`` faces are charted in spatial blocks (:data:`ATLAS_BLOCK_FACES`)."""
    import xatlas

    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise TextureError("cannot build a UV atlas for a mesh without faces")
    if size < 16:
        raise TextureError(f"texture size must be at least 16 texels, got {size}")
    blocks = _face_blocks(vertices, faces, block_faces) if len(faces) > block_faces else [np.arange(len(faces))]
    atlas = xatlas.Atlas()
    block_verts = []
    for b in blocks:
        used, local = np.unique(faces[b], return_inverse=True)
        block_verts.append(used)
        atlas.add_mesh(vertices[used], local.reshape(-1, 3).astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    if atlas.atlas_count != 1:
        raise TextureError(f"xatlas packed the charts into {atlas.atlas_count} atlases of {size}^2; use a larger "
                           "texture size")
    vmaps, out_faces, uvs, offset = [], np.zeros((len(faces), 3), np.int64), [], 0
    for i, (b, used) in enumerate(zip(blocks, block_verts)):
        vmapping, indices, uv = atlas[i]
        vmaps.append(used[vmapping.astype(np.int64)])
        out_faces[b] = indices.astype(np.int64) + offset  # back in the source face order
        uvs.append(uv)
        offset += len(vmapping)
    return UVAtlas(np.concatenate(vmaps), out_faces, np.concatenate(uvs).astype(np.float32), int(size))


@dataclass
class TexelSamples:
    """Texels touched by the atlas: flat index ``row * W + col``, triangle and barycentrics of the surface point."""

    index: np.ndarray  # (N,) int64
    face: np.ndarray  # (N,) int64
    bary: np.ndarray  # (N, 3) float64, >= 0, rows sum to 1
    inside: np.ndarray  # (N,) bool: the texel centre lies inside its triangle (False: border texel, clamped)


def rasterize_uv(uv: np.ndarray, faces: np.ndarray, size: int, border: float = BORDER_TEXELS,
                 max_candidates: int = 1 << 22) -> TexelSamples:
    """Every texel of a ``size`` x ``size`` atlas whose centre is inside a UV triangle, or within ``border`` texels
    of one (barycentrics clamped onto it); a texel inside several triangles keeps the first, and interior texels win
    over border ones. Vectorised over each triangle's bounding box, ``max_candidates`` texels at a time."""
    uv = np.asarray(uv, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    px = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=1)  # texel-centre coordinates
    tri = px[faces]  # (F, 3, 2)
    lo = np.clip(np.ceil(tri.min(1) - border), 0, size - 1).astype(np.int64)
    hi = np.clip(np.floor(tri.max(1) + border), 0, size - 1).astype(np.int64)
    wh = np.maximum(hi - lo + 1, 0)
    counts = wh[:, 0] * wh[:, 1]
    # edge functions: b_i = ((p - v_j) x (v_k - v_j)) / area2, distance to edge i = b_i * altitude_i
    x0, y0, x1, y1, x2, y2 = (tri[:, i // 2, i % 2] for i in range(6))
    area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    valid = np.abs(area2) > 1e-12
    edge_len = np.stack([np.hypot(x2 - x1, y2 - y1), np.hypot(x0 - x2, y0 - y2), np.hypot(x1 - x0, y1 - y0)], 1)
    altitude = np.abs(area2)[:, None] / np.maximum(edge_len, 1e-12)
    counts = np.where(valid, counts, 0)

    out_idx, out_face, out_bary, out_inside = [], [], [], []
    ends = np.cumsum(counts)
    start = 0
    while start < len(faces):
        # a chunk of faces whose candidates fit max_candidates (at least one face)
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + max_candidates, side="right")), start + 1)
        f = np.arange(start, stop)
        c = counts[f]
        start = stop
        if c.sum() == 0:
            continue
        fid = np.repeat(f, c)
        k = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
        w = wh[fid, 0]
        cx = lo[fid, 0] + k % w
        cy = lo[fid, 1] + k // w
        pxs, pys = cx.astype(np.float64), cy.astype(np.float64)
        a = area2[fid]
        b0 = ((x1[fid] - pxs) * (y2[fid] - pys) - (x2[fid] - pxs) * (y1[fid] - pys)) / a
        b1 = ((x2[fid] - pxs) * (y0[fid] - pys) - (x0[fid] - pxs) * (y2[fid] - pys)) / a
        b = np.stack([b0, b1, 1.0 - b0 - b1], 1)
        dist = b * altitude[fid]  # signed distance to each edge line (texels), >= 0 inside
        keep = dist.min(1) >= -border
        inside = b.min(1) >= 0
        b = np.clip(b[keep], 0, None)
        out_bary.append(b / b.sum(1, keepdims=True))
        out_idx.append(cy[keep] * size + cx[keep])
        out_face.append(fid[keep])
        out_inside.append(inside[keep])
    if not out_idx:
        return TexelSamples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, bool))
    idx, face, bary, inside = (np.concatenate(x) for x in (out_idx, out_face, out_bary, out_inside))
    order = np.lexsort((~inside, idx))  # per texel: interior samples first, then by face order (stable)
    idx, face, bary, inside = idx[order], face[order], bary[order], inside[order]
    first = np.ones(len(idx), bool)
    first[1:] = idx[1:] != idx[:-1]
    return TexelSamples(idx[first], face[first], bary[first], inside[first])


def fill_gutters(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give every uncovered texel the value of its nearest covered texel (Euclidean; gutter dilation)."""
    from scipy import ndimage

    if covered.all() or not covered.any():
        return texture
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return texture[rows, cols]


ColourFn = Callable[[torch.Tensor, np.ndarray, np.ndarray], torch.Tensor]


def vertex_colour_fn(vertex_colors: torch.Tensor, faces: np.ndarray) -> ColourFn:
    """Colour function of a vertex-coloured mesh (barycentric interpolation; for methods without a colour
    network)."""
    cols = vertex_colors.detach().cpu().double().numpy()
    faces = np.asarray(faces)

    def fn(points: torch.Tensor, face: np.ndarray, bary: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((cols[faces[face]] * bary[..., None]).sum(1)).float()

    return fn


@dataclass
class BakeStats:
    """What :func:`bake_texture` did: texels baked, their share of the atlas, and seconds per phase."""

    size: int
    texels: int
    interior_texels: int
    coverage: float
    seconds: dict = field(default_factory=dict)

    @property
    def texels_per_second(self) -> float:
        return self.texels / max(self.seconds.get("colours", 0.0), 1e-9)

    def to_dict(self) -> dict:
        return {"size": self.size, "texels": self.texels, "interior_texels": self.interior_texels,
                "coverage": round(self.coverage, 4), "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "texels_per_second": round(self.texels_per_second, 1)}


def bake_texture(mesh: Mesh, colour_fn: ColourFn, size: int = 1024, *, points: torch.Tensor | None = None,
                 padding: int = DEFAULT_PADDING, chunk: int = 1 << 18) -> tuple[Mesh, BakeStats]:
    """UV-atlas ``mesh`` and bake its base-colour texture.

    Args:
        mesh: the mesh (any frame); its vertex colours, if any, are carried over to the atlas vertices.
        colour_fn: ``(points (N, 3), face (N,), bary (N, 3)) -> (N, 3)`` RGB in [0, 1] at surface points
            (``face`` indexes ``mesh.faces``: the atlas keeps the face order).
        size: texture side in texels.
        points: (V, 3) the mesh's vertices in the frame ``colour_fn`` expects (default ``mesh.vertices``); texel
            surface points are their barycentric combinations.
        padding: gutter between charts in texels.
        chunk: texels handed to ``colour_fn`` per call (it may chunk further).

    Returns:
        The atlas mesh (same geometry, seam vertices duplicated, ``uv`` and ``texture`` (size, size, 3) uint8 set)
        and :class:`BakeStats`.
    """
    seconds = {}
    t = time.perf_counter()
    verts = mesh.vertices.detach().cpu()
    atlas = uv_atlas(verts.numpy(), mesh.faces.cpu().numpy(), size, padding)
    if not np.array_equal(atlas.vmapping[atlas.faces], mesh.faces.cpu().numpy()):
        raise TextureError("xatlas changed the face order or connectivity of the mesh")
    seconds["atlas"] = time.perf_counter() - t
    t = time.perf_counter()
    samples = rasterize_uv(atlas.uv, atlas.faces, size)
    seconds["rasterise"] = time.perf_counter() - t
    t = time.perf_counter()
    src = (mesh.vertices if points is None else points).detach().cpu().double()
    corner = src[torch.from_numpy(atlas.vmapping)][torch.from_numpy(atlas.faces)]  # (F, 3, 3) atlas-face corners
    colours = torch.zeros(len(samples.index), 3)
    for s in range(0, len(samples.index), chunk):
        face, bary = samples.face[s:s + chunk], samples.bary[s:s + chunk]
        pts = (corner[torch.from_numpy(face)] * torch.from_numpy(bary)[..., None]).sum(1).float()
        colours[s:s + chunk] = colour_fn(pts, face, bary).detach().float().cpu().clamp(0, 1)
    seconds["colours"] = time.perf_counter() - t
    t = time.perf_counter()
    tex = np.zeros((size * size, 3), np.uint8)
    tex[samples.index] = np.floor(colours.numpy() * 255 + 0.5).astype(np.uint8)
    covered = np.zeros(size * size, bool)
    covered[samples.index] = True
    texture = fill_gutters(tex.reshape(size, size, 3), covered.reshape(size, size))
    seconds["gutters"] = time.perf_counter() - t
    vm = torch.from_numpy(atlas.vmapping)
    out = Mesh(mesh.vertices[vm], torch.from_numpy(atlas.faces),
               None if mesh.vertex_colors is None else mesh.vertex_colors[vm],
               torch.from_numpy(atlas.uv), np.ascontiguousarray(texture))
    stats = BakeStats(size, int(len(samples.index)), int(samples.inside.sum()), len(samples.index) / size ** 2,
                      seconds)
    return out, stats
