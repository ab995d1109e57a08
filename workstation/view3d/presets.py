"""Volume-rendering presets for CT, as transfer functions over Hounsfield units, and one for
images in other units (MR), over the image's own intensities.

Each preset maps HU to opacity and to colour; the shading coefficients are shared. The values are
chosen for contrast-enhanced and plain abdominal/thoracic CT: bone from ~200 HU, iodinated vessels
~150–500 HU, soft tissue −100…100 HU, lung parenchyma −900…−500 HU. On an MR these numbers mean
nothing (fat and skin rendered as "bone"): `intensity_preset` ramps over the image's percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolumeProperty


@dataclass(frozen=True)
class Preset:
    """A CT transfer function: (HU, opacity) and (HU, r, g, b) control points, shading."""

    label: str
    opacity: tuple[tuple[float, float], ...]
    colour: tuple[tuple[float, float, float, float], ...]
    ambient: float = 0.2
    diffuse: float = 0.9
    specular: float = 0.3
    gradient_opacity: bool = False

    def volume_property(self) -> vtkVolumeProperty:
        opacity = vtkPiecewiseFunction()
        for hu, value in self.opacity:
            opacity.AddPoint(hu, value)
        colour = vtkColorTransferFunction()
        for hu, r, g, b in self.colour:
            colour.AddRGBPoint(hu, r, g, b)
        prop = vtkVolumeProperty()
        prop.SetScalarOpacity(opacity)
        prop.SetColor(colour)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetAmbient(self.ambient)
        prop.SetDiffuse(self.diffuse)
        prop.SetSpecular(self.specular)
        prop.SetSpecularPower(12)
        if self.gradient_opacity:
            gradient = vtkPiecewiseFunction()
            gradient.AddPoint(0, 0.2)
            gradient.AddPoint(60, 1.0)
            prop.SetGradientOpacity(gradient)
        return prop


PRESETS: dict[str, Preset] = {
    "bone": Preset(
        "Bone",
        opacity=((-1024, 0.0), (140, 0.0), (250, 0.25), (600, 0.65), (1500, 0.9), (3071, 0.9)),
        colour=(
            (-1024, 0.3, 0.15, 0.1),
            (140, 0.55, 0.25, 0.15),
            (400, 0.9, 0.8, 0.65),
            (1500, 1.0, 1.0, 0.95),
        ),
    ),
    "soft tissue": Preset(
        "Soft tissue",
        opacity=((-1024, 0.0), (-250, 0.0), (-80, 0.04), (20, 0.12), (80, 0.3), (300, 0.45), (3071, 0.6)),
        colour=(
            (-1024, 0.0, 0.0, 0.0),
            (-80, 0.55, 0.35, 0.25),
            (40, 0.85, 0.45, 0.4),
            (120, 0.95, 0.75, 0.65),
            (300, 1.0, 0.95, 0.9),
        ),
        gradient_opacity=True,
    ),
    "ct angiography": Preset(
        "CT angiography",
        opacity=((-1024, 0.0), (110, 0.0), (170, 0.3), (350, 0.6), (700, 0.75), (3071, 0.85)),
        colour=(
            (-1024, 0.0, 0.0, 0.0),
            (110, 0.55, 0.05, 0.05),
            (250, 0.9, 0.2, 0.15),
            (500, 1.0, 0.85, 0.75),
        ),
        specular=0.5,
    ),
    "lung": Preset(
        "Lung",
        opacity=((-1024, 0.0), (-960, 0.0), (-850, 0.06), (-600, 0.12), (-450, 0.0), (200, 0.0), (400, 0.3)),
        colour=(
            (-1024, 0.2, 0.3, 0.5),
            (-850, 0.75, 0.55, 0.5),
            (-600, 0.95, 0.8, 0.75),
            (400, 1.0, 1.0, 1.0),
        ),
        gradient_opacity=True,
    ),
}


#: The name of `intensity_preset`, offered for any image.
INTENSITIES = "intensities"


def intensity_preset(array: np.ndarray) -> Preset:
    """A grey ramp over `array`'s own values (any units; for an MR): transparent up to its 60th
    percentile (air and the dark background), opaque and white towards its 99th."""
    sample = array[:: max(1, array.shape[0] // 16), ::2, ::2]
    low, high = (float(v) for v in np.percentile(sample, (60, 99)))
    high = max(high, low + 1e-3)
    step = (high - low) / 4
    return Preset(
        "Intensities",
        opacity=((low, 0.0), (low + step, 0.05), (high, 0.6)),
        colour=((low, 0.25, 0.25, 0.25), (low + 2 * step, 0.7, 0.7, 0.7), (high, 1.0, 1.0, 1.0)),
    )


def preset(name: str) -> Preset:
    """The preset called `name` (case-insensitive)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"no volume-rendering preset {name!r}; presets: {', '.join(PRESETS)}") from None
