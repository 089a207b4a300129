"""Render a prepared mesh from given cameras with Cycles. Runs inside Blender, never imports the project.

    blender -b --factory-startup -P scripts/blender/render_views.py -- JOB.json     (any Blender >= 4)
    .venv-blender/bin/python scripts/blender/render_views.py -- JOB.json            (the bpy==5.0.1 wheel)

JOB.json (written by ``data.render.backends.write_blender_job``) names ``mesh.npz`` (vertices (V, 3), faces
(F, 3), corner_normals (F, 3, 3), optional corner_uv (F, 3, 2) with texture.png, or vertex_colors (V, 3)),
the image size, the views (OpenGL / Blender camera-to-world 4x4 and pinhole K 3x3, pixels), one area light
and the Cycles settings. It writes ``<output>/<name>.png``: 8-bit straight-alpha RGBA, transparent background.

The world frame is the project's (+z up, metres): coordinates are used as they are, no axis conversion.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix


def job_path_from_argv(argv: list[str]) -> Path:
    args = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: render_views.py -- JOB.json")
    return Path(args[0]).resolve()


def build_mesh(folder: Path, job: dict, roughness: float):
    data = np.load(folder / job["mesh"])
    verts, faces = data["vertices"].astype(np.float64), data["faces"].astype(np.int64)
    me = bpy.data.meshes.new("asset")
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3))
    me.update(calc_edges=True)
    if "corner_uv" in data:
        uv = me.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", data["corner_uv"].astype(np.float64).ravel())
    if "vertex_colors" in data:
        rgba = np.concatenate([data["vertex_colors"], np.ones((len(verts), 1))], 1)
        attr = me.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
        attr.data.foreach_set("color", rgba.astype(np.float64).ravel())
    me.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    me.normals_split_custom_set(data["corner_normals"].reshape(-1, 3).tolist())

    mat = bpy.data.materials.new("asset")
    if hasattr(mat, "use_nodes") and not mat.use_nodes:
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = 0.0
    if job.get("texture"):
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = bpy.data.images.load(str(folder / job["texture"]))
        tex.image.colorspace_settings.name = "sRGB"
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    elif "vertex_colors" in data:
        col = nodes.new("ShaderNodeVertexColor")
        col.layer_name = "Col"
        links.new(col.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        bsdf.inputs["Base Color"].default_value = (0.7, 0.7, 0.7, 1.0)
    me.materials.append(mat)
    obj = bpy.data.objects.new("asset", me)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def setup_scene(job: dict) -> None:
    scene = bpy.context.scene
    s = job["settings"]
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(s["samples"])
    scene.cycles.use_denoising = bool(s["denoise"])
    scene.cycles.filter_width = float(s["filter_width"])
    scene.cycles.diffuse_bounces = 1
    scene.cycles.glossy_bounces = 1
    scene.cycles.transparent_max_bounces = 3
    scene.cycles.transmission_bounces = 3
    if int(s["threads"]) > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = int(s["threads"])
    scene.render.resolution_x, scene.render.resolution_y = int(job["width"]), int(job["height"])
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = s["view_transform"]
    scene.view_settings.exposure = float(s["exposure"])
    world = bpy.data.worlds.new("world")
    world.color = (0.05, 0.05, 0.05)
    scene.world = world

    light = job["light"]
    data = bpy.data.lights.new("area", "AREA")
    data.energy = float(light["energy"])
    data.size = 1.0
    obj = bpy.data.objects.new("area", data)
    obj.location = light["position"]
    obj.scale = (light["size"],) * 3
    scene.collection.objects.link(obj)


def make_camera(width: int, height: int):
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = 32.0
    data.clip_start, data.clip_end = 0.01, 100.0
    cam = bpy.data.objects.new("camera", data)
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    return cam


def set_view(cam, view: dict, width: int, height: int) -> None:
    k = np.asarray(view["intrinsics"], np.float64)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if abs(fx - fy) > 1e-6 * fx:
        raise SystemExit(f"view {view['name']}: non-square pixels (fx {fx} != fy {fy}) are not supported")
    cam.data.lens = fx / width * cam.data.sensor_width
    larger = max(width, height)
    cam.data.shift_x = (width / 2.0 - cx) / larger
    cam.data.shift_y = (cy - height / 2.0) / larger
    cam.matrix_world = Matrix(view["c2w_opengl"])


def main() -> None:
    job_path = job_path_from_argv(sys.argv)
    job = json.loads(job_path.read_text())
    folder = job_path.parent
    bpy.ops.wm.read_factory_settings(use_empty=True)
    setup_scene(job)
    build_mesh(folder, job, float(job["settings"]["roughness"]))
    width, height = int(job["width"]), int(job["height"])
    cam = make_camera(width, height)
    out = folder / job["output"]
    out.mkdir(parents=True, exist_ok=True)
    for view in job["views"]:
        set_view(cam, view, width, height)
        bpy.context.scene.render.filepath = str(out / f"{view['name']}.png")
        bpy.ops.render.render(write_still=True)
    print(f"rendered {len(job['views'])} views -> {out}")


if __name__ == "__main__":
    main()
