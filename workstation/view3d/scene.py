"""VTK pieces of the 3D view: the CT as a volume prop, surface actors, distance overlays, and an
off-screen copy of a scene for snapshots at any resolution.

World coordinates are patient LPS millimetres throughout: surfaces are built there, and the CT
volume is placed there by a prop matrix (direction cosines and origin), so both agree exactly.
"""

from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersSources import vtkLineSource, vtkSphereSource
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkBillboardTextActor3D,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkRenderWindow,
    vtkVolume,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from planning.surfaces import Surface
from planning.volume import Volume


def volume_prop(volume: Volume, prop) -> tuple[vtkVolume, vtkImageData]:
    """A vtkVolume showing `volume` in patient space with the transfer functions of `prop`.
    GPU ray casting when OpenGL allows it (also Mesa's software OpenGL), else CPU ray casting."""
    array = np.ascontiguousarray(volume.array)
    if array.dtype not in (np.int16, np.uint8, np.uint16, np.float32):
        array = array.astype(np.float32)
    grid = volume.grid
    image = vtkImageData()
    image.SetDimensions(grid.shape[2], grid.shape[1], grid.shape[0])
    image.SetSpacing(*grid.spacing_xyz)
    image.GetPointData().SetScalars(numpy_to_vtk(array.ravel(), deep=True))
    mapper = vtkSmartVolumeMapper()
    mapper.SetInputData(image)
    mapper.SetRequestedRenderModeToDefault()
    actor = vtkVolume()
    actor.SetMapper(mapper)
    actor.SetProperty(prop)
    actor.SetUserMatrix(_matrix(grid.direction, grid.origin_xyz))
    actor.PickableOff()
    return actor, image


def _matrix(rotation: np.ndarray, translation) -> vtkMatrix4x4:
    matrix = vtkMatrix4x4()
    for i in range(3):
        for j in range(3):
            matrix.SetElement(i, j, float(rotation[i, j]))
        matrix.SetElement(i, 3, float(translation[i]))
    return matrix


def surface_actor(surface: Surface) -> vtkActor:
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(surface.to_polydata())
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    style_actor(actor, surface.color)
    return actor


def style_actor(actor: vtkActor, color, opacity: float = 1.0) -> None:
    prop = actor.GetProperty()
    prop.SetColor(*(c / 255 for c in color))
    prop.SetOpacity(opacity)
    prop.SetInterpolationToPhong()
    prop.SetAmbient(0.1)
    prop.SetDiffuse(0.85)
    prop.SetSpecular(0.25)
    prop.SetSpecularPower(20)


def margin_lookup_table(max_mm: float) -> vtkLookupTable:
    """Red at contact (or inside), through yellow, to green at `max_mm` and beyond."""
    table = vtkLookupTable()
    table.SetTableRange(0.0, max_mm)
    table.SetHueRange(0.0, 0.33)
    table.SetSaturationRange(0.9, 0.9)
    table.SetValueRange(1.0, 1.0)
    table.SetNumberOfTableValues(256)
    table.SetBelowRangeColor(0.8, 0.0, 0.0, 1.0)
    table.UseBelowRangeColorOn()
    table.Build()
    return table


def show_scalars(actor: vtkActor, values: np.ndarray | None, table: vtkLookupTable | None = None) -> None:
    """Colour an actor's vertices by `values` through `table`, or back to its solid colour."""
    mapper = actor.GetMapper()
    polydata = mapper.GetInput()
    if values is None:
        polydata.GetPointData().SetScalars(None)
        mapper.ScalarVisibilityOff()
    else:
        scalars = numpy_to_vtk(np.ascontiguousarray(values, dtype=np.float32), deep=True)
        scalars.SetName("Distance (mm)")
        polydata.GetPointData().SetScalars(scalars)
        mapper.SetLookupTable(table)
        mapper.UseLookupTableScalarRangeOn()
        mapper.SetScalarModeToUsePointData()
        mapper.ScalarVisibilityOn()
    polydata.Modified()


def distance_overlay(point_a, point_b, text: str, scale_mm: float) -> list:
    """A yellow segment between two points, a dot at each end and a label at its middle."""
    line = vtkLineSource()
    line.SetPoint1(*point_a)
    line.SetPoint2(*point_b)
    actors = [_solid(line, (1.0, 0.9, 0.1), line_width=3)]
    for point in (point_a, point_b):
        dot = vtkSphereSource()
        dot.SetCenter(*point)
        dot.SetRadius(max(scale_mm * 0.006, 0.4))
        dot.SetThetaResolution(16)
        dot.SetPhiResolution(16)
        actors.append(_solid(dot, (1.0, 0.9, 0.1)))
    label = vtkBillboardTextActor3D()
    label.SetInput(text)
    label.SetPosition(*((np.asarray(point_a) + np.asarray(point_b)) / 2))
    label.GetTextProperty().SetFontSize(18)
    label.GetTextProperty().SetColor(1.0, 1.0, 0.6)
    label.GetTextProperty().BoldOn()
    label.GetTextProperty().ShadowOn()
    label.PickableOff()
    actors.append(label)
    return actors


def _solid(source, color, line_width: float = 1.0) -> vtkActor:
    source.Update()
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(source.GetOutput())
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    actor.GetProperty().SetLineWidth(line_width)
    actor.PickableOff()
    return actor


def window_pixels(window) -> np.ndarray:
    """The RGB pixels of a render window as a (height, width, 3) array, top row first."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return pixels[::-1].copy()


def render_offscreen(renderer: vtkRenderer, size: tuple[int, int], extra=()) -> np.ndarray:
    """Render a copy of `renderer`'s scene (same camera, props re-created so no GPU resource is
    shared between windows), plus the props `extra`, off-screen at `size` (width, height);
    returns its pixels."""
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    copy = vtkRenderer()
    copy.SetBackground(renderer.GetBackground())
    copy.SetBackground2(renderer.GetBackground2())
    copy.SetGradientBackground(renderer.GetGradientBackground())
    window.AddRenderer(copy)
    for prop in _props(renderer):
        if not prop.GetVisibility():
            continue
        twin = _twin(prop)
        if twin is not None:
            copy.AddViewProp(twin)
    for prop in extra:
        copy.AddViewProp(prop)
    copy.GetActiveCamera().DeepCopy(renderer.GetActiveCamera())
    copy.ResetCameraClippingRange()
    try:
        window.Render()
        return window_pixels(window)
    finally:
        window.Finalize()


def _props(renderer: vtkRenderer) -> list:
    collection = renderer.GetViewProps()
    collection.InitTraversal()
    return [collection.GetNextProp() for _ in range(collection.GetNumberOfItems())]


def _twin(prop):
    if isinstance(prop, vtkVolume):
        mapper = vtkSmartVolumeMapper()
        mapper.SetInputData(prop.GetMapper().GetInput())
        twin = vtkVolume()
        twin.SetMapper(mapper)
        twin.SetProperty(prop.GetProperty())
        twin.SetUserMatrix(prop.GetUserMatrix())
        return twin
    if isinstance(prop, vtkBillboardTextActor3D):
        twin = vtkBillboardTextActor3D()
        twin.SetInput(prop.GetInput())
        twin.SetPosition(prop.GetPosition())
        twin.GetTextProperty().ShallowCopy(prop.GetTextProperty())
        return twin
    if isinstance(prop, vtkActor) and prop.GetMapper() is not None:
        source = prop.GetMapper()
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(source.GetInput())
        mapper.SetScalarVisibility(source.GetScalarVisibility())
        mapper.SetLookupTable(source.GetLookupTable())
        mapper.SetUseLookupTableScalarRange(source.GetUseLookupTableScalarRange())
        mapper.SetScalarMode(source.GetScalarMode())
        twin = vtkActor()
        twin.SetMapper(mapper)
        twin.GetProperty().DeepCopy(prop.GetProperty())
        twin.SetUserMatrix(prop.GetUserMatrix())
        return twin
    return None
