"""Per-corner shading normals with a crease angle: smooth across soft edges and UV seams, sharp at hard edges."""
from __future__ import annotations

import numpy as np

#: Above this many (corner, neighbouring face) pairs the crease test is skipped (plain smooth normals).
MAX_PAIRS = 20_000_000


def corner_normals(vertices: np.ndarray, faces: np.ndarray, crease_deg: float = 60.0) -> np.ndarray:
    """Unit normal of every face corner.

    Vertices at the same position are welded first (OBJ / glTF split them along UV seams). The normal of corner
    (f, k) is the area-weighted mean of the normals of the faces around that position whose normal is within
    ``crease_deg`` of face f's own.

    Args:
        vertices: (V, 3) positions.
        faces: (F, 3) vertex indices.
        crease_deg: dihedral angle (degrees) above which an edge stays sharp; 180 = fully smooth.

    Returns:
        (F, 3, 3) float64 unit normals (zero for degenerate faces).
    """
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    _, welded = np.unique(vertices, axis=0, return_inverse=True)
    fv = welded.reshape(-1)[faces]  # (F, 3) welded vertex ids
    tri = vertices[faces]
    weighted = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # |.| = 2 * area
    length = np.linalg.norm(weighted, axis=1, keepdims=True)
    unit = np.divide(weighted, length, out=np.zeros_like(weighted), where=length > 0)

    corner_vertex = fv.reshape(-1)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    counts = np.bincount(corner_vertex)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    group_size = counts[corner_vertex[order]]
    if int((group_size.astype(np.int64)).sum()) > MAX_PAIRS:
        crease_deg = 180.0
        pairs_i = pairs_j = None
    else:
        pairs_i = np.repeat(np.arange(len(order)), group_size)  # position in sorted order
        offset = np.arange(len(pairs_i)) - np.repeat(np.cumsum(group_size) - group_size, group_size)
        pairs_j = starts[corner_vertex[order]][pairs_i] + offset
    if pairs_i is None:  # fully smooth: per welded vertex sums
        sums = np.stack([np.bincount(corner_vertex, weights=np.repeat(weighted[:, c], 3),
                                     minlength=len(counts)) for c in range(3)], 1)
        normals = sums[corner_vertex]
    else:
        fi, fj = corner_face[order][pairs_i], corner_face[order][pairs_j]
        keep = (unit[fi] * unit[fj]).sum(1) >= np.cos(np.deg2rad(crease_deg)) - 1e-9
        sums = np.stack([np.bincount(pairs_i[keep], weights=weighted[fj[keep], c], minlength=len(order))
                         for c in range(3)], 1)
        normals = np.empty_like(sums)
        normals[order] = sums
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
    return normals.reshape(len(faces), 3, 3)
