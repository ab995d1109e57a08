"""The 3D view: structure surfaces kept in step with a structure set, CT volume rendering with
presets, rulers, angles, minimum distances, margin maps and snapshots (see `View3D`)."""

from workstation.view3d.camera import VIEWS
from workstation.view3d.presets import PRESETS
from workstation.view3d.widget import View3D

__all__ = ["PRESETS", "VIEWS", "View3D"]
