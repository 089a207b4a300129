"""``--texture``: replace a run's vertex-coloured mesh by a UV-textured one baked from the colour network.

    out = pipe(image)
    out = add_texture(pipe, out, size=1024)   # out.mesh: atlas mesh with uv + texture (and vertex colours)
    write_outputs(out, cfg, folder, "glb", name)   # .glb: baseColorTexture; .obj: + mesh.mtl + mesh.png

Works for every generator that reconstructs with :class:`reconstruction.Reconstructor` (``pipe.reconstructor``)
and records the reconstruction's ``sources`` / ``reference`` on its output: the scene is encoded again from those
views (the same features and volume that coloured the vertices; reconstruction/texture.py). A generator without a
colour network gets its vertex colours baked instead (:func:`data.texture.vertex_colour_fn`). The bake is timed as
the stage ``texture`` and described in ``out.texture`` (size, texels, coverage, seconds, texels/s).
"""
from __future__ import annotations

import time

from data.texture import bake_texture, vertex_colour_fn

TEXTURE_FORMATS = ("glb", "obj")


def texture_record(out, fmt: str) -> dict | None:
    """result.json's ``mesh.texture``: where the texture went and how it was baked (None: vertex colours only)."""
    info = getattr(out, "texture", None)
    if info is None:
        return None
    where = {"glb": "mesh.glb (baseColorTexture, PNG)", "obj": "mesh.png (material mesh.mtl)"}.get(
        fmt, f"none: .{fmt} keeps vertex colours")
    return {"file": where, **info}


def add_texture(pipe, out, size: int = 1024):
    """Bake a ``size`` x ``size`` base-colour texture for ``out.mesh`` (in place; returns ``out``)."""
    from reconstruction import texture_reconstruction

    t, c = time.perf_counter(), time.process_time()
    rec = getattr(pipe, "reconstructor", None)
    if rec is not None and out.sources is not None and out.reference is not None and out.reconstruction is not None:
        recon, stats = texture_reconstruction(rec, out.sources, out.reference, out.reconstruction, size)
        out.reconstruction, out.mesh = recon, recon.mesh
        source = "colour network (surface normal as direction)"
    else:
        if out.mesh.vertex_colors is None:
            raise ValueError("this run's mesh has neither a colour network nor vertex colours to bake")
        out.mesh, stats = bake_texture(out.mesh, vertex_colour_fn(out.mesh.vertex_colors, out.mesh.faces.numpy()),
                                       size)
        source = "vertex colours"
    out.timings["texture"] = time.perf_counter() - t
    out.cpu_timings["texture"] = time.process_time() - c
    out.texture = {"source": source, **stats.to_dict()}
    return out
