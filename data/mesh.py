"""`Mesh`: a triangle mesh with optional per-vertex colours or a UV texture; .ply/.obj/.glb I/O via trimesh."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.io import atomic_path

MESH_FORMATS = (".ply", ".obj", ".glb")


class MeshError(ValueError):
    """A mesh file is missing, unreadable, empty or contains non-finite values (the message names the file)."""


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: (V, 3) float32 positions (world units unless stated otherwise by the producer).
        faces: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        vertex_colors: optional (V, 3) float32 RGB in [0, 1].
        uv: optional (V, 2) float32 texture coordinates (origin bottom-left, glTF/OBJ convention of trimesh).
        texture: optional (H, W, 3) uint8 base-colour image addressed by ``uv``.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor | None = None
    uv: torch.Tensor | None = None
    texture: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"Mesh.vertices must be (V, 3), got {tuple(self.vertices.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"Mesh.faces must be (F, 3), got {tuple(self.faces.shape)}")
        v = self.vertices.shape[0]
        for name in ("vertex_colors", "uv"):
            t = getattr(self, name)
            if t is not None and t.shape[0] != v:
                raise ValueError(f"Mesh.{name} has {t.shape[0]} rows for {v} vertices")

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    def bounds(self) -> torch.Tensor:
        """(2, 3) axis-aligned bounding box (min, max)."""
        return torch.stack([self.vertices.min(0).values, self.vertices.max(0).values])

    def transformed(self, matrix: torch.Tensor, flip_winding: bool = False) -> "Mesh":
        """Apply a (4, 4) affine map to the vertices; optionally reverse the face winding."""
        m = matrix.to(self.vertices)
        v = self.vertices @ m[:3, :3].T + m[:3, 3]
        f = self.faces.flip(1) if flip_winding else self.faces
        return Mesh(v, f, self.vertex_colors, self.uv, self.texture)

    # ------------------------------------------------------------------ trimesh interop
    def to_trimesh(self):
        import trimesh

        kwargs = {}
        if self.uv is not None and self.texture is not None:
            from PIL import Image

            # white factors: viewers multiply the texture by baseColorFactor (glTF) / Kd (OBJ)
            material = trimesh.visual.material.PBRMaterial(
                name="texture", baseColorTexture=Image.fromarray(self.texture), baseColorFactor=[255, 255, 255, 255],
                metallicFactor=0.0, roughnessFactor=1.0)
            kwargs["visual"] = trimesh.visual.TextureVisuals(uv=self.uv.cpu().numpy(), material=material)
        elif self.vertex_colors is not None:
            rgb = (self.vertex_colors.detach().cpu().numpy().clip(0, 1) * 255).astype(np.uint8)
            kwargs["vertex_colors"] = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)
        return trimesh.Trimesh(
            self.vertices.detach().cpu().numpy(), self.faces.cpu().numpy(), process=False, **kwargs
        )

    @classmethod
    def from_trimesh(cls, tm) -> "Mesh":
        import trimesh

        verts = torch.as_tensor(np.asarray(tm.vertices), dtype=torch.float32)
        faces = torch.as_tensor(np.asarray(tm.faces), dtype=torch.int64)
        colors = uv = texture = None
        visual = tm.visual
        if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
            image = getattr(visual.material, "image", None) or getattr(visual.material, "baseColorTexture", None)
            if image is not None:
                uv = torch.as_tensor(np.asarray(visual.uv), dtype=torch.float32)
                texture = np.asarray(image.convert("RGB"))
            else:
                visual = visual.to_color()
        if texture is None and visual.kind in ("vertex", "face"):
            colors = torch.as_tensor(np.asarray(visual.vertex_colors)[:, :3] / 255.0, dtype=torch.float32)
        return cls(verts, faces, colors, uv, texture)

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | Path) -> "Mesh":
        """Load a single mesh file (a multi-part scene is concatenated). Errors name the file."""
        import trimesh

        path = Path(path)
        if not path.is_file():
            raise MeshError(f"mesh file not found: {path}")
        try:
            loaded = trimesh.load(path, process=False)
        except Exception as exc:  # trimesh raises many types for corrupt files
            raise MeshError(f"cannot read mesh {path}: {exc}") from exc
        if isinstance(loaded, trimesh.Scene):
            if not loaded.geometry:
                raise MeshError(f"mesh file {path} contains no geometry")
            loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
        if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
            raise MeshError(f"mesh file {path} contains no triangles")
        mesh = cls.from_trimesh(loaded)
        if not torch.isfinite(mesh.vertices).all():
            raise MeshError(f"mesh file {path} has NaN or infinite vertex coordinates")
        return mesh

    def export(self, path: str | Path) -> Path:
        """Write .ply / .obj / .glb, each file whole or not at all (temporary file, then rename).

        A textured mesh (``uv`` + ``texture``) is written as .glb with a ``baseColorTexture`` (PNG inside the file)
        or as .obj + ``<stem>.mtl`` + ``<stem>.png`` beside it (written before the .obj); .ply has no texture
        support in common viewers, so it keeps the vertex colours (the texture is dropped).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in MESH_FORMATS:
            raise ValueError(f"unsupported mesh format {path.suffix!r} for {path}; use one of {MESH_FORMATS}")
        textured = self.uv is not None and self.texture is not None
        if suffix == ".ply" and textured:
            return Mesh(self.vertices, self.faces, self.vertex_colors).export(path)
        tm = self.to_trimesh()
        if suffix == ".obj" and textured:
            from trimesh.exchange.obj import export_obj

            tm.visual.material.name = path.stem
            text, files = export_obj(tm, include_normals=False, return_texture=True, mtl_name=f"{path.stem}.mtl")
            if "vt " not in text or f"{path.stem}.mtl" not in files:
                raise RuntimeError(f"trimesh did not write the texture coordinates / material of {path}")
            for name, data in files.items():
                with atomic_path(path.parent / name) as tmp:
                    tmp.write_bytes(data)
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            return path
        with atomic_path(path) as tmp:
            tm.export(tmp, file_type=suffix[1:])
        return path
