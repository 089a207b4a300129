"""Real 3D assets: load OBJ(+MTL+textures) / glTF / GLB / PLY files into one normalised, textured :class:`Mesh`.

A multi-part scene (several nodes, materials and textures) is flattened into a single mesh: its parts are placed
by the scene graph, their base-colour textures packed into one atlas (trimesh's packer), parts that only have a
material colour keep that colour. The result has either ``uv`` + ``texture`` or ``vertex_colors``.

Up axis: every call declares which axis of the file points up (``up_axis``); the mesh is rotated so that axis
becomes the world's +z (:data:`data.conventions.WORLD_UP`). ``"auto"`` means the format's own convention:
glTF / GLB are +Y up by specification; other formats have none and are taken as +Z up (state it explicitly for
+Y-up scans). The +Y -> +Z rotation is Blender's glTF import rotation (x, y, z) -> (x, -z, y), so a glTF asset's
front (+Z) ends up facing -y, i.e. the azimuth-0 camera.

Normalisation, chosen by ``framing``: ``"bbox"`` (the Zero123 render scripts) centres the axis-aligned bounding
box on the origin and scales its longest side to :data:`data.conventions.OBJECT_BBOX_SIZE`; ``"rig"`` (renders on
One-2-3-45's inference rig: reconstruction training data, ``python -m data.render``) centres the box the same way
and scales the object's bounding sphere about that centre to :data:`data.conventions.RIG_OBJECT_RADIUS`, the
framing of a preprocessed input (at most 75 % of the image from every rig camera).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data import conventions as conv
from data.mesh import Mesh, MeshError

#: File formats :func:`load_asset` reads.
ASSET_FORMATS = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
#: Formats whose up axis is +Y by specification.
Y_UP_FORMATS = (".glb", ".gltf")
UP_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")
#: Colour given to untextured, uncoloured parts of a scene whose other parts carry colours (RGBA, 0-255).
UNTEXTURED_RGBA = np.array([178, 178, 178, 255], dtype=np.uint8)


class AssetError(MeshError):
    """An asset cannot be used; the message names the file and what to do."""


class AssetNotFoundError(AssetError):
    """The asset file does not exist."""


class AssetCorruptError(AssetError):
    """The file exists but cannot be parsed as a mesh (truncated, wrong format, garbage bytes)."""


class AssetEmptyError(AssetError):
    """The file parses but holds no triangles."""


class AssetNonFiniteError(AssetError):
    """Vertex coordinates contain NaN or infinity."""


@dataclass(frozen=True)
class AssetInfo:
    """How a loaded asset was mapped into the world frame.

    Attributes:
        path: the source file.
        up_axis: the declared up axis of the file (``"+y"`` ...).
        to_world: (4, 4) float64 map from file coordinates (after the scene graph) to the world frame.
        num_parts: number of mesh instances flattened into the result.
    """

    path: Path
    up_axis: str
    to_world: np.ndarray
    num_parts: int


def resolve_up_axis(path: str | Path, up_axis: str = "auto") -> str:
    """The up axis to use for ``path``: ``up_axis`` itself, or the format convention for ``"auto"``."""
    up = up_axis.lower().strip()
    if up == "auto":
        return "+y" if Path(path).suffix.lower() in Y_UP_FORMATS else "+z"
    if up in ("x", "y", "z"):
        up = "+" + up
    if up not in UP_AXES:
        raise ValueError(f"up_axis must be 'auto' or one of {UP_AXES}, got {up_axis!r}")
    return up


def up_axis_rotation(up_axis: str) -> np.ndarray:
    """(3, 3) rotation taking the file's ``up_axis`` to world +z (a right-handed quarter or half turn).

    ``+y``: about x by +90 deg, (x, y, z) -> (x, -z, y) (Blender's glTF import). ``-y``: about x by -90 deg.
    ``+x``: about y by -90 deg. ``-x``: about y by +90 deg. ``-z``: about x by 180 deg. ``+z``: identity.
    """
    table = {
        "+z": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "+y": [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
        "-y": [[1, 0, 0], [0, 0, 1], [0, -1, 0]],
        "+x": [[0, 0, -1], [0, 1, 0], [1, 0, 0]],
        "-x": [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
        "-z": [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
    }
    return np.asarray(table[resolve_up_axis("x.obj", up_axis)], dtype=np.float64)


def normalization_matrix(vertices: np.ndarray, size: float = conv.OBJECT_BBOX_SIZE) -> np.ndarray:
    """(4, 4) similarity that centres the bounding box of ``vertices`` (V, 3) and scales its longest side to ``size``."""
    lo, hi = vertices.min(0), vertices.max(0)
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0.0:
        raise ValueError(f"cannot normalise a mesh with bounding box {lo.tolist()} .. {hi.tolist()}")
    scale = size / extent
    m = np.eye(4)
    m[:3, :3] *= scale
    m[:3, 3] = -scale * (lo + hi) / 2.0
    return m


#: Object framings of :func:`load_asset_with_info` (see the module docstring).
FRAMINGS = ("bbox", "rig")


def rig_framing_matrix(vertices: np.ndarray, radius: float = conv.RIG_OBJECT_RADIUS) -> np.ndarray:
    """(4, 4) similarity that centres the bounding box of ``vertices`` (V, 3) and scales the largest distance of a
    vertex from that centre to ``radius`` (the inference-rig framing, :data:`data.conventions.RIG_OBJECT_RADIUS`)."""
    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2.0
    reach = float(np.linalg.norm(vertices - centre, axis=1).max()) if len(vertices) else 0.0
    if not np.isfinite(reach) or reach <= 0.0:
        raise ValueError(f"cannot normalise a mesh with bounding box {lo.tolist()} .. {hi.tolist()}")
    scale = radius / reach
    m = np.eye(4)
    m[:3, :3] *= scale
    m[:3, 3] = -scale * centre
    return m


def normalize_mesh(mesh: Mesh, size: float = conv.OBJECT_BBOX_SIZE) -> Mesh:
    """Centre the bounding box and scale the longest side to ``size`` (world units)."""
    m = normalization_matrix(mesh.vertices.double().numpy(), size)
    return mesh.transformed(torch.as_tensor(m))


def _read_scene(path: Path):
    """Parse ``path`` with trimesh; every failure becomes an :class:`AssetError` naming the file."""
    import trimesh

    if not path.exists():
        raise AssetNotFoundError(f"asset file not found: {path} (check the path or the asset list)")
    if not path.is_file():
        raise AssetNotFoundError(f"asset path {path} is not a file")
    if path.suffix.lower() not in ASSET_FORMATS:
        raise AssetCorruptError(f"unsupported asset format {path.suffix!r} for {path}; use one of {ASSET_FORMATS}")
    if path.stat().st_size == 0:
        raise AssetEmptyError(f"asset file {path} is empty (0 bytes); re-export or remove it from the list")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return trimesh.load(path, process=False, force="scene")
    except Exception as exc:  # trimesh raises many exception types for malformed files
        raise AssetCorruptError(f"cannot parse asset {path}: {type(exc).__name__}: {exc}") from exc


def _flatten(scene, path: Path):
    """Concatenate every mesh instance of a trimesh Scene (world transforms applied) into one Trimesh."""
    import trimesh

    parts = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry.get(name)
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        part = geom.copy()
        part.apply_transform(transform)
        parts.append(part)
    if not parts:
        raise AssetEmptyError(f"asset {path} contains no triangles (point clouds / lines / empty scene)")
    for part in parts:
        if not np.isfinite(np.asarray(part.vertices)).all():
            raise AssetNonFiniteError(f"asset {path} has NaN or infinite vertex coordinates; repair the file")
    if len(parts) == 1:
        return parts[0], 1
    kinds = {_visual_kind(p) for p in parts}
    if len(kinds) > 1:
        # one material cannot hold textures and per-vertex colours: everything becomes per-vertex colour
        for part in parts:
            part.visual = trimesh.visual.ColorVisuals(part, vertex_colors=_vertex_rgba(part))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trimesh.util.concatenate(parts), len(parts)


def _visual_kind(tm) -> str:
    """``"texture"`` (a material, with or without image), ``"color"`` (vertex / face colours) or ``"plain"``.

    Parts of one kind are concatenated by trimesh (textures packed into one atlas); mixed kinds all become
    per-vertex colours (:func:`_vertex_rgba`).
    """
    import trimesh

    if isinstance(tm.visual, trimesh.visual.TextureVisuals):
        return "texture"
    return "color" if tm.visual.kind in ("vertex", "face") else "plain"


def _vertex_rgba(tm) -> np.ndarray:
    """(V, 4) uint8 colour per vertex of a part: texture sampled at the UVs, material colour, or grey."""
    import trimesh

    n = len(tm.vertices)
    visual = tm.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if visual.uv is not None and image is not None:
            colors = np.asarray(visual.to_color().vertex_colors)
            if len(colors) == n:
                return colors.astype(np.uint8)
        main = getattr(material, "main_color", None)
        return np.tile(np.asarray(main if main is not None else UNTEXTURED_RGBA, np.uint8)[:4], (n, 1))
    if visual.kind in ("vertex", "face"):
        return np.asarray(visual.vertex_colors, np.uint8)
    return np.tile(UNTEXTURED_RGBA, (n, 1))


def _bake_material_factor(tm) -> None:
    """Multiply a PBR base-colour texture by its ``baseColorFactor`` (in place) so the texture alone is the colour."""
    material = getattr(tm.visual, "material", None)
    factor = getattr(material, "baseColorFactor", None)
    image = getattr(material, "baseColorTexture", None)
    if factor is None or image is None:
        return
    f = np.asarray(factor, dtype=np.float64)[:3] / (255.0 if np.asarray(factor).dtype.kind in "ui" else 1.0)
    if np.allclose(f, 1.0):
        return
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) * f
    material.baseColorTexture = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def _cap_texture(mesh: Mesh, max_size: int) -> Mesh:
    """Downscale the texture so its longer side is at most ``max_size`` pixels (UVs are resolution free)."""
    if mesh.texture is None or max(mesh.texture.shape[:2]) <= max_size:
        return mesh
    from PIL import Image

    h, w = mesh.texture.shape[:2]
    s = max_size / max(h, w)
    img = Image.fromarray(mesh.texture).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    return Mesh(mesh.vertices, mesh.faces, mesh.vertex_colors, mesh.uv, np.asarray(img))


def load_asset_with_info(
    path: str | Path,
    up_axis: str = "auto",
    normalize: bool = True,
    size: float = conv.OBJECT_BBOX_SIZE,
    max_texture_size: int = 2048,
    framing: str = "bbox",
) -> tuple[Mesh, AssetInfo]:
    """Load a 3D asset as one mesh in the world frame (see the module docstring) and report the mapping.

    Args:
        path: .obj / .glb / .gltf / .ply / .stl / .off file (OBJ materials and textures next to it).
        up_axis: ``"auto"`` or one of ``+x -x +y -y +z -z``: the file's up direction.
        normalize: centre the bounding box and scale the object as ``framing`` says.
        size: longest bounding-box side after ``"bbox"`` normalisation (world units); default the project constant.
        max_texture_size: packed textures larger than this (pixels, longer side) are downscaled.
        framing: ``"bbox"`` (longest side ``size``, the Zero123 layout) or ``"rig"`` (bounding sphere of radius
            :data:`data.conventions.RIG_OBJECT_RADIUS`, renders on the inference rig).

    Raises:
        AssetNotFoundError, AssetCorruptError, AssetEmptyError, AssetNonFiniteError (all :class:`MeshError`).
    """
    import trimesh

    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    path = Path(path)
    up = resolve_up_axis(path, up_axis)
    scene = _read_scene(path)
    if isinstance(scene, trimesh.Trimesh):  # defensive: force="scene" should always give a Scene
        scene = trimesh.Scene(scene)
    tm, num_parts = _flatten(scene, path)
    _bake_material_factor(tm)
    try:
        mesh = Mesh.from_trimesh(tm)
    except Exception as exc:
        raise AssetCorruptError(f"cannot convert asset {path} to a mesh: {type(exc).__name__}: {exc}") from exc
    if mesh.num_faces == 0 or mesh.num_vertices == 0:
        raise AssetEmptyError(f"asset {path} contains no triangles")
    if int(mesh.faces.max()) >= mesh.num_vertices or int(mesh.faces.min()) < 0:
        raise AssetCorruptError(f"asset {path} has face indices outside its {mesh.num_vertices} vertices")
    to_world = np.eye(4)
    to_world[:3, :3] = up_axis_rotation(up)
    verts = mesh.vertices.double().numpy() @ to_world[:3, :3].T
    if normalize:
        try:
            frame = rig_framing_matrix(verts) if framing == "rig" else normalization_matrix(verts, size)
            to_world = frame @ to_world
        except ValueError as exc:
            raise AssetEmptyError(f"asset {path} is degenerate: {exc}") from exc
    mesh = _cap_texture(mesh.transformed(torch.as_tensor(to_world)), max_texture_size)
    return mesh, AssetInfo(path, up, to_world, num_parts)


def load_asset(
    path: str | Path,
    up_axis: str = "auto",
    normalize: bool = True,
    size: float = conv.OBJECT_BBOX_SIZE,
    max_texture_size: int = 2048,
    framing: str = "bbox",
) -> Mesh:
    """:func:`load_asset_with_info` without the report: the normalised world-frame mesh."""
    return load_asset_with_info(path, up_axis, normalize, size, max_texture_size, framing)[0]
