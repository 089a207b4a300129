"""Bottom layer: geometry conventions, typed containers, configs and I/O. Imports no stage package."""
from data.cameras import Cameras
from data.config import ConfigError, load_config, save_config
from data.mesh import Mesh, MeshError
from data.reconstruction_frame import ReconstructionFrame
from data.sdf_volume import SDFVolume
from data.views import Views

__all__ = [
    "Cameras",
    "ConfigError",
    "Mesh",
    "MeshError",
    "ReconstructionFrame",
    "SDFVolume",
    "Views",
    "load_config",
    "save_config",
]
