"""Volume IoU on a regular grid, robust to non-watertight meshes.

Occupancy is decided by the **parity of ray crossings along +x** (the inside test of Batty's level-set
construction, which ``mesh2sdf`` 1.1.0 wraps and SyncDreamer's ``eval_mesh.py`` calls): a grid sample is
inside when an odd number of triangles cross the x-line through it at or before it. Crossing points exactly
on a triangle edge seen along x are given to exactly one of the triangles sharing that edge by a
simulation-of-simplicity orientation rule, so closed meshes never double count. Holes in an open mesh make
the parity wrong only on the x-lines that pass through them (never a crash, never the whole grid).

A sample lying exactly on the surface has signed distance -0.0 in that construction and is therefore **not**
occupied under the ``sdf < 0`` test; :func:`occupancy_grid` reproduces this (it is why a unit box whose faces
fall on sample planes has 31^3, not 33^3, occupied samples at resolution 64).

Grid convention (``mesh2sdf``): resolution ``R`` samples per axis at ``-1 + 2 i / R`` for ``i = 0..R-1``, i.e.
the box [-1, 1) sampled at its lower cell corners (not symmetric about the origin).
"""
from __future__ import annotations

import numpy as np

#: Distance (in grid-index units) under which a sample counts as lying on the surface.
ON_SURFACE_TOLERANCE = 1e-7


def _expand_boxes(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enumerate the integer points of per-triangle boxes.

    Args:
        lo, hi: (T, D) inclusive integer bounds (empty when hi < lo on any axis).

    Returns:
        owner (M,) triangle index of each point and points (M, D) int64.
    """
    extent = np.maximum(hi - lo + 1, 0)
    counts = np.prod(extent, axis=1)
    owner = np.repeat(np.arange(len(lo)), counts)
    if owner.size == 0:
        return owner, np.zeros((0, lo.shape[1]), np.int64)
    starts = np.cumsum(counts) - counts
    local = np.arange(owner.size) - starts[owner]
    ext = extent[owner]
    points = np.empty((owner.size, lo.shape[1]), np.int64)
    for axis in range(lo.shape[1] - 1, -1, -1):  # last axis varies fastest
        points[:, axis] = lo[owner, axis] + local % ext[:, axis]
        local = local // ext[:, axis]
    return owner, points


def _orientation(x1, y1, x2, y2):
    """Twice the signed area of (0,0)-(x1,y1)-(x2,y2) and its sign with simulation-of-simplicity ties.

    Returns ``(area, sign)``; sign is 0 only when the two points coincide.
    """
    area = y1 * x2 - x1 * y2
    sign = np.sign(area).astype(np.int8)
    tie = sign == 0
    if tie.any():
        tie_sign = np.where(
            y2 > y1, 1, np.where(y2 < y1, -1, np.where(x1 > x2, 1, np.where(x1 < x2, -1, 0)))
        ).astype(np.int8)
        sign = np.where(tie, tie_sign, sign)
    return area, sign


def _crossing_counts(grid_vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) int32: number of triangles crossing the +x line through (j, k) in the interval (i-1, i]."""
    n = resolution
    counts = np.zeros(n * n * n, np.int64)
    tri = grid_vertices[faces]  # (T, 3 corners, 3 axes), grid-index units, float64
    fj, fk = tri[:, :, 1], tri[:, :, 2]
    lo = np.stack([np.ceil(fj.min(1)), np.ceil(fk.min(1))], 1)
    hi = np.stack([np.floor(fj.max(1)), np.floor(fk.max(1))], 1)
    lo = np.clip(lo, 0, n - 1).astype(np.int64)
    hi = np.clip(hi, 0, n - 1).astype(np.int64)
    owner, jk = _expand_boxes(lo, hi)
    if owner.size == 0:
        return counts.reshape(n, n, n)
    j, k = jk[:, 0].astype(np.float64), jk[:, 1].astype(np.float64)
    t = tri[owner]
    x1, y1 = t[:, 0, 1] - j, t[:, 0, 2] - k
    x2, y2 = t[:, 1, 1] - j, t[:, 1, 2] - k
    x3, y3 = t[:, 2, 1] - j, t[:, 2, 2] - k
    a, sign_a = _orientation(x2, y2, x3, y3)
    b, sign_b = _orientation(x3, y3, x1, y1)
    c, sign_c = _orientation(x1, y1, x2, y2)
    inside = (sign_a != 0) & (sign_b == sign_a) & (sign_c == sign_a)
    a, b, c, t = a[inside], b[inside], c[inside], t[inside]
    total = a + b + c
    a, b, c = a / total, b / total, c / total
    fi = a * t[:, 0, 0] + b * t[:, 1, 0] + c * t[:, 2, 0]
    interval = np.ceil(fi)
    keep = interval < n
    interval = np.maximum(interval[keep], 0).astype(np.int64)
    flat = (interval * n + jk[inside][keep, 0]) * n + jk[inside][keep, 1]
    np.add.at(counts, flat, 1)
    return counts.reshape(n, n, n)


def _on_surface(grid_vertices: np.ndarray, faces: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R, R) bool: samples lying on a triangle (within :data:`ON_SURFACE_TOLERANCE` index units)."""
    n = resolution
    mask = np.zeros(n * n * n, bool)
    tri = grid_vertices[faces]
    tol = ON_SURFACE_TOLERANCE
    lo = np.clip(np.ceil(tri.min(1) - tol), 0, n - 1).astype(np.int64)
    hi = np.clip(np.floor(tri.max(1) + tol), 0, n - 1).astype(np.int64)
    out = (tri.max(1) < -tol).any(1) | (tri.min(1) > n - 1 + tol).any(1)
    hi[out] = lo[out] - 1
    owner, ijk = _expand_boxes(lo, hi)
    if owner.size == 0:
        return mask.reshape(n, n, n)
    g = ijk.astype(np.float64)
    p, q, r = tri[owner, 0], tri[owner, 1], tri[owner, 2]
    normal = np.cross(q - p, r - p)
    norm2 = (normal * normal).sum(1)
    valid = norm2 > 0
    plane = np.abs(((g - p) * normal).sum(1)) <= tol * np.sqrt(norm2)
    # barycentric areas of the projection onto the plane (all >= 0 inside, edges included)
    wa = (np.cross(q - g, r - g) * normal).sum(1)
    wb = (np.cross(r - g, p - g) * normal).sum(1)
    wc = (np.cross(p - g, q - g) * normal).sum(1)
    slack = -tol * norm2
    hit = valid & plane & (wa >= slack) & (wb >= slack) & (wc >= slack)
    mask[(ijk[hit, 0] * n + ijk[hit, 1]) * n + ijk[hit, 2]] = True
    return mask.reshape(n, n, n)


def grid_coordinates(resolution: int) -> np.ndarray:
    """(R,) sample positions along each axis: ``-1 + 2 i / R`` (the ``mesh2sdf`` grid)."""
    return -1.0 + 2.0 * np.arange(resolution) / resolution


def occupancy_grid(vertices, faces, resolution: int = 64) -> np.ndarray:
    """Inside/outside samples of a triangle mesh on the ``mesh2sdf`` grid over [-1, 1)^3.

    Args:
        vertices: (V, 3) positions in world units; they are rounded to float32 first (as ``mesh2sdf`` does).
            Parts outside [-1, 1] are clipped away by the grid, not rescaled.
        faces: (F, 3) vertex indices.
        resolution: samples per axis ``R``.

    Returns:
        (R, R, R) bool indexed ``[x, y, z]``: True where the crossing parity along +x is odd and the sample is
        not on the surface (the ``sdf < 0`` test of the reference).
    """
    v = np.asarray(vertices, dtype=np.float32).astype(np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"occupancy_grid needs (V, 3) vertices and (F, 3) faces, got {v.shape} and {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces index vertex {f.max()} but the mesh has {len(v)} vertices")
    dx = 2.0 / resolution
    grid_vertices = (v + 1.0) / dx  # exact for float32 inputs in the grid's range
    parity = np.cumsum(_crossing_counts(grid_vertices, f, resolution), axis=0) % 2 == 1
    return parity & ~_on_surface(grid_vertices, f, resolution)


def volume_iou(occupancy_a: np.ndarray, occupancy_b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two boolean grids (0.0 when both are empty)."""
    a, b = np.asarray(occupancy_a, bool), np.asarray(occupancy_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"occupancy grids differ in shape: {a.shape} vs {b.shape}")
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b)) / union if union else 0.0
