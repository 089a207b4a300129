"""CPU rendering of meshes: pyrender rasterisation (RGB on white, alpha, depth) and exact ray casting."""
from data.render.config import RenderConfig
from data.render.rasterizer import MeshRenderer, RenderOutput, render_mesh
from data.render.raycast import RayCaster, RaycastResult, pixel_centers

__all__ = ["MeshRenderer", "RayCaster", "RaycastResult", "RenderConfig", "RenderOutput", "pixel_centers", "render_mesh"]
