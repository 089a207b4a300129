"""A small vectorised CPU depth rasteriser for evaluation protocols (numpy, no OpenGL).

It exists because SyncDreamer's ``eval_mesh.py`` samples the predicted surface from depth maps made with a
particular rasteriser set-up that a general renderer does not reproduce: clip ``w = 1`` (so depth is
interpolated **linearly in screen space**, not perspective-correctly), no back-face culling, nearest surface
wins, pixel centres sampled. Both interpolation modes are available here.

Pixel convention: the sample of pixel (col, row) is the pixel centre (col + 1/2, row + 1/2) in the pixel
coordinates of :meth:`data.cameras.Cameras.project` (u = fx X / Z + cx). A centre exactly on an edge belongs to
every triangle sharing the edge (the nearest one is kept).
"""
from __future__ import annotations

import numpy as np

from evaluation.volume import _expand_boxes

#: Triangles rasterised per batch (bounds the temporary arrays to a few hundred MB at most).
TRIANGLE_CHUNK = 20000


def rasterize_depth(
    pixels: np.ndarray,
    depth: np.ndarray,
    faces: np.ndarray,
    width: int,
    height: int,
    *,
    perspective_correct: bool = False,
    depth_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Depth map of a triangle mesh already projected into one camera.

    Args:
        pixels: (V, 2) vertex positions (u, v) in pixels.
        depth: (V,) vertex depth along the optical axis (world units); interpolated linearly in screen space,
            or as 1/depth (perspective-correct) when ``perspective_correct``.
        faces: (F, 3) vertex indices.
        width, height: image size in pixels.
        depth_range: optional (near, far): fragments outside are discarded (the clip-space z test).

    Returns:
        (H, W) float64 depth of the nearest covering triangle per pixel, ``inf`` where nothing is covered.
    """
    pixels = np.asarray(pixels, np.float64)
    depth = np.asarray(depth, np.float64)
    faces = np.asarray(faces, np.int64)
    zbuffer = np.full(height * width, np.inf)
    for start in range(0, len(faces), TRIANGLE_CHUNK):
        _rasterize_chunk(pixels, depth, faces[start:start + TRIANGLE_CHUNK], width, height,
                         perspective_correct, depth_range, zbuffer)
    return zbuffer.reshape(height, width)


def _rasterize_chunk(pixels, depth, faces, width, height, perspective_correct, depth_range, zbuffer):
    tri = pixels[faces]  # (T, 3, 2)
    tz = depth[faces]  # (T, 3)
    # columns whose centre col + 0.5 lies within the triangle's u range (same for rows)
    lo = np.ceil(tri.min(1) - 0.5)
    hi = np.floor(tri.max(1) - 0.5)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    finite = np.isfinite(tri).all((1, 2)) & np.isfinite(tz).all(1)
    hi[~finite] = lo[~finite] - 1
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    owner, cr = _expand_boxes(lo, hi)
    if owner.size == 0:
        return
    px = cr[:, 0] + 0.5
    py = cr[:, 1] + 0.5
    t = tri[owner]
    ax, ay, bx, by, cx, cy = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1], t[:, 2, 0], t[:, 2, 1]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    w0 = (bx - px) * (cy - py) - (by - py) * (cx - px)  # weight of corner a
    w1 = (cx - px) * (ay - py) - (cy - py) * (ax - px)  # weight of corner b
    w2 = (ax - px) * (by - py) - (ay - py) * (bx - px)  # weight of corner c
    s = np.sign(area)
    inside = (area != 0) & (w0 * s >= 0) & (w1 * s >= 0) & (w2 * s >= 0)
    if not inside.any():
        return
    w0, w1, w2, area = w0[inside], w1[inside], w2[inside], area[inside]
    z = tz[owner[inside]]
    b0, b1, b2 = w0 / area, w1 / area, w2 / area
    if perspective_correct:
        frag = 1.0 / (b0 / z[:, 0] + b1 / z[:, 1] + b2 / z[:, 2])
    else:
        frag = b0 * z[:, 0] + b1 * z[:, 1] + b2 * z[:, 2]
    flat = cr[inside, 1] * width + cr[inside, 0]
    if depth_range is not None:
        ok = (frag >= depth_range[0]) & (frag <= depth_range[1])
        frag, flat = frag[ok], flat[ok]
    np.minimum.at(zbuffer, flat, frag)
