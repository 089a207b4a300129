"""CPU rasteriser: pyrender on EGL (Mesa llvmpipe here, any GPU driver elsewhere) for a batch of :class:`Cameras`.

Two unlit passes per view, without multisampling so every sample sits exactly where it should: an albedo pass
(texture / vertex colour, alpha, depth buffer) and a normal pass (world normals encoded as vertex colours).
Lighting is a per-pixel Lambert term computed here from those two (see :class:`RenderConfig`); anti-aliasing is
an odd supersampling factor whose centre sub-sample gives the depth at the exact pixel centre.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data.cameras import Cameras
from data.mesh import Mesh
from data.render.config import RenderConfig
from data.render.normals import corner_normals
from data.render.raycast import RayCaster
from data.views import Views

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@dataclass(frozen=True)
class RenderOutput:
    """Renders of one mesh from N cameras (all tensors float32, CPU).

    Attributes:
        rgb: (N, 3, H, W) colour in [0, 1], composited on the configured background (white by default).
        alpha: (N, 1, H, W) coverage in [0, 1] (fraction of the s x s sub-samples that hit the mesh).
        depth: (N, 1, H, W) z along each camera's optical axis at the pixel centre (world units), 0 = background.
        normals: (N, 3, H, W) unit world-frame normals, 0 on the background; None if not requested.
        cameras: the N cameras rendered.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor | None
    cameras: Cameras

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def to_views(self, names: tuple[str, ...] = (), source: str = "render") -> Views:
        """As :class:`data.views.Views` (images on the background, masks = alpha)."""
        return Views(self.rgb, self.cameras, self.alpha, tuple(names), source)


def _single_sample(offscreen) -> None:
    """Make a fresh pyrender ``OffscreenRenderer`` allocate its main framebuffer without multisampling.

    pyrender always asks for 4x MSAA; its resolved depth is then one off-centre sample per pixel. The framebuffer
    is allocated lazily on the first render, so swapping the allocation call for that one call is enough.
    """
    import pyrender
    import pyrender.renderer as module

    class SingleSampleRenderer(type(offscreen._renderer)):
        def _configure_main_framebuffer(self):
            original = module.glRenderbufferStorageMultisample
            module.glRenderbufferStorageMultisample = lambda target, _n, fmt, w, h: original(target, 0, fmt, w, h)
            try:
                super()._configure_main_framebuffer()
            finally:
                module.glRenderbufferStorageMultisample = original

    assert isinstance(offscreen._renderer, pyrender.Renderer)
    offscreen._renderer.__class__ = SingleSampleRenderer


#: One off-screen GL context per thread, reused across renderers while the framebuffer size stays the same:
#: creating one (and compiling its shaders) costs about a second on llvmpipe. pyrender frees the previous scene's
#: buffers on the next render; a size change deletes the context (unbinding every mesh) and makes a new one.
_CONTEXTS: dict[int, tuple[tuple[int, int], object]] = {}


def shared_offscreen(width: int, height: int):
    """This thread's single-sample ``pyrender.OffscreenRenderer`` with a ``width`` x ``height`` framebuffer."""
    import pyrender

    key = threading.get_ident()
    size, renderer = _CONTEXTS.get(key, (None, None))
    if size != (width, height):
        release_gl_context()
        renderer = pyrender.OffscreenRenderer(width, height)
        _single_sample(renderer)
        _CONTEXTS[key] = ((width, height), renderer)
    return renderer


def release_gl_context() -> None:
    """Delete this thread's cached GL context (e.g. before forking workers); the next render makes a new one."""
    entry = _CONTEXTS.pop(threading.get_ident(), None)
    if entry is not None:
        entry[1].delete()


def _needs_normals(cfg: RenderConfig) -> bool:
    return cfg.normals or (cfg.shading == "lit" and cfg.light != "none")


def _pyrender_meshes(mesh: Mesh, cfg: RenderConfig):
    """(albedo mesh, normal mesh or None when the config needs no normals) pyrender meshes of ``mesh``."""
    import pyrender

    verts = mesh.vertices.detach().cpu().numpy().astype(np.float32)
    faces = mesh.faces.cpu().numpy()
    base = list(cfg.default_color) + [1.0]
    texture = colors = uv = None
    if mesh.texture is not None and mesh.uv is not None:
        texture = pyrender.Texture(source=np.ascontiguousarray(mesh.texture[..., :3]), source_channels="RGB")
        uv, base = mesh.uv.detach().cpu().numpy().astype(np.float32), [1.0] * 4
    elif mesh.vertex_colors is not None:
        colors, base = mesh.vertex_colors.detach().cpu().numpy().astype(np.float32), [1.0] * 4

    def material(factor, tex=None):
        return pyrender.MetallicRoughnessMaterial(baseColorFactor=factor, baseColorTexture=tex,
                                                  doubleSided=cfg.double_sided)

    tris = pyrender.constants.GLTF.TRIANGLES
    albedo = pyrender.Primitive(positions=verts, texcoord_0=uv, color_0=colors, indices=faces,
                                material=material(base, texture), mode=tris)
    if not _needs_normals(cfg):
        return pyrender.Mesh([albedo]), None
    normals = corner_normals(verts, faces, cfg.crease_deg).astype(np.float32)  # (F, 3, 3)
    # normal pass: un-indexed corners so UV-seam duplicates do not split the interpolated normal
    corner_pos = verts[faces].reshape(-1, 3)
    corner_col = (normals.reshape(-1, 3) + 1.0) / 2.0
    normal = pyrender.Primitive(positions=corner_pos, color_0=corner_col, material=material([1.0] * 4), mode=tris)
    return pyrender.Mesh([albedo]), pyrender.Mesh([normal])


class MeshRenderer:
    """Renders one mesh (world frame) from batches of cameras; reuse it for many batches, then :meth:`close`.

    Example::

        with MeshRenderer(load_asset("duck.glb")) as r:
            out = r.render(Cameras.from_spherical([60, 90], [0, 90]))
    """

    def __init__(self, mesh: Mesh, config: RenderConfig | None = None):
        import pyrender

        self.mesh = mesh
        self.config = cfg = config or RenderConfig()
        self._scene = pyrender.Scene(bg_color=list(cfg.background) + [0.0], ambient_light=[0.0] * 3)
        albedo, normal = _pyrender_meshes(mesh, cfg)
        self._albedo_node = self._scene.add(albedo)
        self._normal_node = self._scene.add(normal) if normal is not None else None
        self._camera = pyrender.IntrinsicsCamera(1.0, 1.0, 0.0, 0.0, znear=cfg.znear, zfar=cfg.zfar)
        self._camera_node = self._scene.add(self._camera, pose=np.eye(4))
        self._raycaster = None

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Drop the scene (its GL buffers are freed by the next render on the shared context)."""
        self._scene = None

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def raycaster(self) -> RayCaster:
        """Exact ray caster on the same mesh (built on first use)."""
        if self._raycaster is None:
            self._raycaster = RayCaster(self.mesh, self.config.crease_deg)
        return self._raycaster

    # ------------------------------------------------------------------ rendering
    def _rasterise(self, cameras: Cameras, need_normals: bool):
        """Full-resolution (s x) passes: albedo RGBA (N, H, W, 4) uint8, depth (N, H, W), normals RGB or None."""
        import pyrender

        if self._scene is None:
            raise RuntimeError("MeshRenderer was closed; create a new one")
        s = self.config.supersample
        renderer = shared_offscreen(cameras.width * s, cameras.height * s)
        flat = pyrender.RenderFlags.FLAT
        albedo, depth, normals = [], [], []
        for pose, k in zip(cameras.c2w_opengl.numpy(), cameras.intrinsics.numpy()):
            self._camera.fx, self._camera.fy = float(k[0, 0]) * s, float(k[1, 1]) * s
            self._camera.cx, self._camera.cy = float(k[0, 2]) * s, float(k[1, 2]) * s
            self._scene.set_pose(self._camera_node, pose)
            self._albedo_node.mesh.is_visible = True
            if self._normal_node is not None:
                self._normal_node.mesh.is_visible = False
            color, z = renderer.render(self._scene, flags=flat | pyrender.RenderFlags.RGBA)
            albedo.append(color)
            depth.append(z)
            if need_normals:
                self._albedo_node.mesh.is_visible, self._normal_node.mesh.is_visible = False, True
                normals.append(renderer.render(self._scene, flags=flat)[0])
        return np.stack(albedo), np.stack(depth), (np.stack(normals) if need_normals else None)

    def _light_directions(self, cameras: Cameras) -> torch.Tensor:
        """(N, 3) world direction the light travels, per camera."""
        if self.config.light == "headlight":
            return cameras.c2w[:, :3, 2].float()  # OpenCV +z = viewing direction
        d = torch.tensor(self.config.light_direction, dtype=torch.float32)
        return (d / d.norm()).expand(len(cameras), 3)

    def render(self, cameras: Cameras) -> RenderOutput:
        """Render every camera of the batch (OpenCV cameras are converted by :attr:`Cameras.c2w_opengl`)."""
        cfg, s = self.config, self.config.supersample
        cams = cameras.to("cpu", torch.float64)
        lit = cfg.shading == "lit" and cfg.light != "none"
        need_normals = _needs_normals(cfg)
        albedo_np, depth_np, normal_np = self._rasterise(cams, need_normals)
        rgba = torch.from_numpy(albedo_np).permute(0, 3, 1, 2).float() / 255.0
        cover = (rgba[:, 3:4] > 0).float()
        colour = rgba[:, :3]
        normals_hr = None
        if need_normals:
            normals_hr = torch.from_numpy(normal_np).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
            normals_hr = F.normalize(normals_hr, dim=1) * cover
        if cfg.shading == "lit":
            shade = torch.full_like(cover, cfg.ambient)
            if lit:
                to_light = -self._light_directions(cams)[:, :, None, None]
                shade = shade + cfg.light_intensity * (normals_hr * to_light).sum(1, keepdim=True).clamp_min(0.0)
            colour = colour * shade.clamp(max=1.0)
        bg = torch.tensor(cfg.background, dtype=torch.float32)[None, :, None, None]
        colour = torch.where(cover > 0, colour, bg.expand_as(colour))
        rgb, alpha = F.avg_pool2d(colour, s), F.avg_pool2d(cover, s)
        c = s // 2
        depth = torch.from_numpy(depth_np)[:, None, c::s, c::s].float()
        normals = None
        if cfg.normals:
            normals = F.normalize(F.avg_pool2d(normals_hr, s), dim=1)
        if cfg.depth_source == "raycast":
            cast = self.raycaster.render(cams)
            depth = cast.depth.reshape(len(cams), 1, cams.height, cams.width).float()
        return RenderOutput(rgb.clamp(0, 1), alpha, depth, normals, cameras)


def render_mesh(mesh: Mesh, cameras: Cameras, config: RenderConfig | None = None) -> RenderOutput:
    """One-shot convenience: render ``mesh`` from ``cameras``."""
    with MeshRenderer(mesh, config) as renderer:
        return renderer.render(cameras)
