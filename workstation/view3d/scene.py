"""VTK pieces of the 3D view: the CT as a volume prop, surface actors, distance overlays, and an
off-screen copy of a scene for snapshots at any resolution, written as PNG.

World coordinates are patient LPS millimetres throughout: surfaces are built there, and the CT
volume is placed there by a prop matrix (direction cosines and origin), so both agree exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkQuadricClustering
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkCoordinate,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkVolume,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

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


def polydata_actor(polydata, color) -> vtkActor:
    """An actor drawing a surface's vtkPolyData in `color` (RGB 0–255)."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(polydata)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    style_actor(actor, color)
    return actor


def stand_in(polydata: vtkPolyData, max_triangles: int) -> vtkPolyData:
    """A rough copy of a surface's vtkPolyData, about `max_triangles` triangles (vertex
    clustering: tens of ms, GIL free), drawn while the camera moves until its closed coarse
    mesh is made (may be open or have flipped triangles: good enough for a few seconds)."""
    divisions = max(4, round(np.sqrt(max_triangles / 6)))  # a closed shell crosses ~6·n² of n³ cells
    clustering = vtkQuadricClustering()
    clustering.SetInputData(polydata)
    clustering.SetNumberOfDivisions(divisions, divisions, divisions)
    clustering.AutoAdjustNumberOfDivisionsOn()
    clustering.Update()
    return clustering.GetOutput()


def style_actor(actor: vtkActor, color, opacity: float = 1.0, wireframe: bool = False) -> None:
    """Colour (RGB 0–255) and opacity (0–1) of a surface; `wireframe` draws only its edges."""
    prop = actor.GetProperty()
    prop.SetColor(*(c / 255 for c in color))
    prop.SetOpacity(opacity)
    if wireframe:
        prop.SetRepresentationToWireframe()
    else:
        prop.SetRepresentationToSurface()
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


#: Colour of distance lines.
YELLOW = (1.0, 0.9, 0.1)
#: How far (pixels) a distance label sits above the middle of its line.
LABEL_LIFT_PX = 10.0


def distance_overlay(point_a, point_b, text: str) -> list:
    """A yellow segment between two points with a dot at each end, and a label above its middle:
    2D props drawn over the scene where the points are seen, so no surface hides them; a dark
    outline and the label's dark box keep them readable on any background."""
    points = vtkPoints()
    for point in (point_a, point_b):
        points.InsertNextPoint(*map(float, point))
    segment = vtkPolyData()
    segment.SetPoints(points)
    segment.SetLines(_cells([[0, 1]]))
    segment.SetVerts(_cells([[0], [1]]))
    actors = [_flat(segment, (0.0, 0.0, 0.0), 6.0, 12.0), _flat(segment, YELLOW, 3.0, 8.0)]
    if text:
        middle = (np.asarray(point_a, float) + np.asarray(point_b, float)) / 2
        actors.append(_label(text, middle))
    return actors


def _cells(ids: list[list[int]]) -> vtkCellArray:
    cells = vtkCellArray()
    for cell in ids:
        cells.InsertNextCell(len(cell), cell)
    return cells


def _world_coordinate(point=None) -> vtkCoordinate:
    coordinate = vtkCoordinate()
    coordinate.SetCoordinateSystemToWorld()
    if point is not None:
        coordinate.SetValue(*map(float, point))
    return coordinate


def _flat(polydata: vtkPolyData, color, line_width: float, point_size: float) -> vtkActor2D:
    """`polydata` (world points) drawn flat over the scene."""
    mapper = vtkPolyDataMapper2D()
    mapper.SetInputData(polydata)
    mapper.SetTransformCoordinate(_world_coordinate())
    actor = vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    actor.GetProperty().SetLineWidth(line_width)
    actor.GetProperty().SetPointSize(point_size)
    actor.PickableOff()
    return actor


def _label(text: str, point) -> vtkTextActor:
    """`text` centred a little above where world `point` is seen, on a dark box."""
    label = vtkTextActor()
    label.SetInput(text)
    label.GetPositionCoordinate().SetCoordinateSystemToDisplay()
    label.GetPositionCoordinate().SetValue(0.0, LABEL_LIFT_PX)
    label.GetPositionCoordinate().SetReferenceCoordinate(_world_coordinate(point))
    style = label.GetTextProperty()
    style.SetFontSize(18)
    style.SetColor(1.0, 1.0, 0.6)
    style.BoldOn()
    style.SetJustificationToCentered()
    style.SetVerticalJustificationToBottom()
    style.SetBackgroundColor(0.0, 0.0, 0.0)
    style.SetBackgroundOpacity(0.6)
    label.PickableOff()
    return label


def hint(text: str) -> vtkTextActor:
    """`text` centred in the view, in muted grey: what an empty view is waiting for."""
    actor = _muted_text(text, (0.5, 0.5), 15)
    actor.GetTextProperty().SetJustificationToCentered()
    actor.GetTextProperty().SetVerticalJustificationToCentered()
    return actor


def note(text: str) -> vtkTextActor:
    """`text` small in the view's lower right corner (the orientation cube is in the left one),
    in muted grey: how the view is drawn."""
    actor = _muted_text(text, (0.99, 0.01), 12)
    actor.GetTextProperty().SetJustificationToRight()
    return actor


def _muted_text(text: str, position: tuple[float, float], size: int) -> vtkTextActor:
    """`text` in muted grey at `position` (fractions of the viewport from its lower left), `size`
    points, not pickable."""
    actor = vtkTextActor()
    actor.SetInput(text)
    actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    actor.GetPositionCoordinate().SetValue(*position)
    style = actor.GetTextProperty()
    style.SetFontSize(size)
    style.SetColor(0.62, 0.66, 0.74)
    actor.PickableOff()
    return actor


def window_pixels(window) -> np.ndarray:
    """The RGB pixels of a render window's last frame as a (height, width, 3) array, top row
    first (not rendered again: a full-detail frame of 100+ surfaces takes seconds on software
    OpenGL)."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ShouldRerenderOff()
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return pixels[::-1].copy()


def write_png(pixels: np.ndarray, path: Path) -> None:
    """Write (height, width, 3) RGB pixels, top row first, to a PNG file at `path`, making its
    folder; OSError when it cannot be written."""
    height, width = pixels.shape[:2]
    image = vtkImageData()
    image.SetDimensions(width, height, 1)
    image.GetPointData().SetScalars(
        numpy_to_vtk(np.ascontiguousarray(pixels[::-1]).reshape(-1, 3), deep=True)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    if writer.GetErrorCode():
        raise OSError(f"{path}: the snapshot could not be written")


def render_offscreen(
    renderer: vtkRenderer,
    size: tuple[int, int],
    extra=(),
    scale: float = 1.0,
    camera=None,
    corner: tuple[object, tuple[float, float, float, float]] | None = None,
) -> np.ndarray:
    """Render a copy of `renderer`'s scene (same camera, or `camera`; props re-created so no GPU
    resource is shared between windows), plus the props `extra`, off-screen at `size` (width,
    height); returns its pixels. Labels, lines, dots and the colour bar are drawn `scale` times
    their size on screen (the snapshot's size over the view's), so they keep their share of the
    image. `corner`: (a new prop, its viewport (x0, y0, x1, y1) as fractions of the image from
    its lower left) drawn over the scene there, seen from the camera's direction and framed
    whole, as `vtkOrientationMarkerWidget` draws the orientation cube in the view."""
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    copy = vtkRenderer()
    copy.SetBackground(renderer.GetBackground())
    copy.SetBackground2(renderer.GetBackground2())
    copy.SetGradientBackground(renderer.GetGradientBackground())
    window.AddRenderer(copy)
    twins = [_twin(prop) for prop in _props(renderer) if prop.GetVisibility()]
    for prop in [twin for twin in twins if twin is not None] + list(extra):
        _enlarge(prop, scale)
        copy.AddViewProp(prop)
    copy.GetActiveCamera().DeepCopy(renderer.GetActiveCamera() if camera is None else camera)
    copy.ResetCameraClippingRange()
    if corner is not None:
        window.SetNumberOfLayers(2)
        window.AddRenderer(_corner(*corner, copy.GetActiveCamera()))
    try:
        window.Render()
        return window_pixels(window)
    finally:
        window.Finalize()


def _corner(prop, viewport, camera) -> vtkRenderer:
    """A renderer over the scene's (layer 1) drawing `prop` in `viewport`, looking at it along
    `camera`'s direction with its view-up, framed whole (what `vtkOrientationMarkerWidget` does
    with the view's camera)."""
    corner = vtkRenderer()
    corner.SetLayer(1)
    corner.SetViewport(*viewport)
    corner.InteractiveOff()
    corner.AddViewProp(prop)
    view = corner.GetActiveCamera()
    view.SetPosition(camera.GetPosition())
    view.SetFocalPoint(camera.GetFocalPoint())
    view.SetViewUp(camera.GetViewUp())
    corner.ResetCamera()
    return corner


def _props(renderer: vtkRenderer) -> list:
    collection = renderer.GetViewProps()
    collection.InitTraversal()
    return [collection.GetNextProp() for _ in range(collection.GetNumberOfItems())]


def _enlarge(prop, scale: float) -> None:
    """Scale the pixel sizes of a 2D prop: font, line width, point size, label lift, bar width."""
    if isinstance(prop, vtkScalarBarActor):
        prop.SetMaximumWidthInPixels(round(prop.GetMaximumWidthInPixels() * scale))
    elif isinstance(prop, vtkTextActor):
        style = prop.GetTextProperty()
        style.SetFontSize(round(style.GetFontSize() * scale))
        x, y, _ = prop.GetPositionCoordinate().GetValue()
        prop.GetPositionCoordinate().SetValue(x * scale, y * scale)
    elif isinstance(prop, vtkActor2D):
        style = prop.GetProperty()
        style.SetLineWidth(style.GetLineWidth() * scale)
        style.SetPointSize(style.GetPointSize() * scale)


def _twin(prop):
    if isinstance(prop, vtkVolume):
        mapper = vtkSmartVolumeMapper()
        mapper.SetInputData(prop.GetMapper().GetInput())
        twin = vtkVolume()
        twin.SetMapper(mapper)
        twin.SetProperty(prop.GetProperty())
        twin.SetUserMatrix(prop.GetUserMatrix())
        return twin
    if isinstance(prop, vtkScalarBarActor):
        twin = vtkScalarBarActor()
        twin.SetLookupTable(prop.GetLookupTable())
        twin.SetTitle(prop.GetTitle())
        twin.SetNumberOfLabels(prop.GetNumberOfLabels())
        twin.SetMaximumWidthInPixels(prop.GetMaximumWidthInPixels())
        return twin
    if isinstance(prop, vtkTextActor):  # a distance label
        reference = prop.GetPositionCoordinate().GetReferenceCoordinate()
        return None if reference is None else _label(prop.GetInput(), reference.GetValue())
    if isinstance(prop, vtkActor2D) and isinstance(prop.GetMapper(), vtkPolyDataMapper2D):
        look = prop.GetProperty()
        return _flat(prop.GetMapper().GetInput(), look.GetColor(), look.GetLineWidth(), look.GetPointSize())
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
