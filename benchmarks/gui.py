"""Workstation responsiveness: 2D scrolling with structure overlays, 3D rotation, memory.

Run under a display (``xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/gui.py``).

1. Scrolling: the real main window (four views, 1600×1000) shows `pancreas-ct-134` (512×512×134
   CT) with 20 structures; the axial view scrolls through every slice, twice (first visit: the
   overlays of each slice are built; second: they come from the cache). A frame is "move the
   crosshair one slice, then paint everything that changed" (the axial view with its image and
   20 overlays, and the crosshair lines in the other two views). Printed: median and 95th
   percentile time per frame. Target: median ≤ 16 ms.
   The same slices are also drawn by the usual VTK pipeline (vtkImageReslice →
   vtkImageMapToWindowLevelColors → vtkImageActor for the CT, plus one coloured vtkImageActor per
   structure, as VTK-based viewers overlay label maps), in a render window of the axial view's
   size, for comparison.
2. 3D: the window's 3D view with 30 structure surfaces (from the pancreas structures plus
   generated organs), rotated by a real trackball drag (mouse press, 40 moves, release sent to
   its interactor; while the camera moves the view draws each surface's coarse mesh):
   frames per second during the drag, and at full detail. Target ≥ 20 while rotating. The
   full-detail frame (drawn once edits pause) in the grid and maximised, with the view's
   settings and with FXAA and order-independent translucency on (as before on software OpenGL).
3. Memory: a generated 512×512×600 CT with 120 structures loaded in the window and scrolled;
   peak resident memory of the process.

    python benchmarks/gui.py [--data ../shared/data] [--skip-memory] [--skip-scroll]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from trackball import trackball_drag

REPOSITORY = Path(__file__).resolve().parents[1]


def resident_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_structures(grid, count: int, seed: int = 1):
    """`count` ellipsoidal organs of 1 cm to 20 cm, plus a body outline, as cropped Masks."""
    from synthetic_organs import body_and_organs

    from planning.structures import Structure, StructureSet
    from planning.tg263 import style_for

    structures = StructureSet(grid)
    for name, mask in body_and_organs(grid, count, seed):
        style = style_for(name)
        structures.add(Structure(name, mask, *(style if name == "External" else style[:1])))
    return structures


def make_window(volume, structures, size=(1600, 1000)):
    from PyQt6.QtCore import QSettings

    from planning.session import ImageReference
    from workstation.app.case import Case
    from workstation.app.main_window import MainWindow

    folder = Path(tempfile.mkdtemp(prefix="delineo-bench-"))
    window = MainWindow(
        QSettings(str(folder / "s.ini"), QSettings.Format.IniFormat), folder, autosave_interval_s=3600
    )
    window.resize(*size)
    window.show()
    window.set_case(Case(volume, structures, ImageReference.for_volume(volume, "dicom", "")))
    return window


def wait_idle(app, window, timeout_s: float = 900) -> None:
    """Until no job runs and the 3D view has built its surfaces (so nothing else uses the CPUs)."""
    start = time.monotonic()
    while (window.jobs.busy or not window.view3d.is_ready()) and time.monotonic() - start < timeout_s:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def scroll_frames(app, view, slices, cpu: list | None = None) -> list[float]:
    """Wall-clock ms per frame (and, into `cpu`, this process's CPU ms per frame)."""
    times = []
    for k in slices:
        start, start_cpu = time.perf_counter(), time.process_time()
        view.set_slice(k)
        app.processEvents()  # paints the scrolled view and the crosshairs of the others
        times.append((time.perf_counter() - start) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - start_cpu) * 1000)
    return times


def vtk_peer_frames(volume, structures, size, window_level=(400, 40)) -> list[float]:
    """The same scroll drawn with vtkImageReslice + vtkImageActor layers (off-screen window)."""
    import vtk
    from vtk.util import numpy_support

    def image_data(array, spacing):
        data = vtk.vtkImageData()
        data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
        data.SetSpacing(*spacing)
        scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=False)
        data.GetPointData().SetScalars(scalars)
        data._keep = array
        return data

    spacing = volume.grid.spacing_xyz
    renderer = vtk.vtkRenderer()
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    reslices = []

    def layer(data, lookup=None):
        reslice = vtk.vtkImageReslice()
        reslice.SetInputData(data)
        reslice.SetOutputDimensionality(2)
        axes = vtk.vtkMatrix4x4()
        reslice.SetResliceAxes(axes)
        if lookup is None:
            colours = vtk.vtkImageMapToWindowLevelColors()
            colours.SetWindow(window_level[0])
            colours.SetLevel(window_level[1])
        else:
            colours = vtk.vtkImageMapToColors()
            colours.SetLookupTable(lookup)
        colours.SetInputConnection(reslice.GetOutputPort())
        actor = vtk.vtkImageActor()
        actor.GetMapper().SetInputConnection(colours.GetOutputPort())
        renderer.AddActor(actor)
        reslices.append((reslice, axes))

    layer(image_data(volume.array, spacing))
    # Label maps as VTK viewers hold them: one full-size uint8 volume per structure.
    for structure in list(structures)[:20]:
        lookup = vtk.vtkLookupTable()
        lookup.SetNumberOfTableValues(2)
        lookup.SetTableValue(0, 0, 0, 0, 0)
        lookup.SetTableValue(1, *(c / 255 for c in structure.color), 0.3)
        lookup.Build()
        layer(image_data(structure.mask.full().astype(np.uint8), spacing), lookup)
    renderer.ResetCamera()
    times = []
    for k in range(volume.grid.shape[0]):
        start = time.perf_counter()
        for _, axes in reslices:
            axes.SetElement(2, 3, k * spacing[2])
            axes.Modified()
        window.Render()
        times.append((time.perf_counter() - start) * 1000)
    window.Finalize()
    return times


def describe(times: list[float]) -> str:
    return f"median {statistics.median(times):6.1f} ms, p95 {np.percentile(times, 95):6.1f} ms"


def bench_scroll(app, data: Path) -> None:
    from planning.imageio import load_volume

    volume = load_volume(data / "dicom" / "pancreas-ct-134")
    structures = synthetic_structures(volume.grid, 20)
    window = make_window(volume, structures)
    wait_idle(app, window)
    view = window.views["axial"]
    print(
        f"CT {volume.grid.shape[::-1]} {volume.array.dtype}, 20 structures; axial view "
        f"{view.width()}×{view.height()} px in a {window.width()}×{window.height()} window"
    )
    slices = list(range(volume.grid.shape[0]))
    cpu_first, cpu_second = [], []
    first = scroll_frames(app, view, slices, cpu_first)
    second = scroll_frames(app, view, slices[::-1], cpu_second)
    print(
        f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(wall times include waiting for them)"
    )
    print(f"  Delineo scroll, first visit of each slice: {describe(first)}; CPU {describe(cpu_first)}")
    print(f"  Delineo scroll, slices visited before:     {describe(second)}; CPU {describe(cpu_second)}")
    window.grid.maximise("axial")
    wait_idle(app, window)
    cpu_big = []
    big = scroll_frames(app, view, slices, cpu_big)
    print(
        f"  Delineo scroll, axial view maximised ({view.width()}×{view.height()} px, smooth zoom): "
        f"{describe(big)}; CPU {describe(cpu_big)}"
    )
    window.close()
    peer = vtk_peer_frames(volume, structures, (view.width(), view.height()))
    print(f"  VTK reslice + 21 image actors (peer):      {describe(peer)}")
    print(
        "  ratio peer / Delineo (first visit, median): "
        f"{statistics.median(peer) / statistics.median(first):.1f}×"
    )
    target = "met" if statistics.median(first) <= 16 else "NOT met"
    print(f"  target ≤ 16 ms per frame: {target}")


def bench_3d(app, data: Path) -> None:
    from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

    from planning.imageio import load_volume
    from workstation.view3d.surfaces import INTERACTIVE_TRIANGLES

    volume = load_volume(data / "dicom" / "pancreas-ct-134")
    structures = synthetic_structures(volume.grid, 30, seed=3)
    window = make_window(volume, structures)
    view3d = window.view3d
    canvas = view3d.findChild(QVTKRenderWindowInteractor)
    if canvas is None:
        print(f"3D: no 3D view in this build ({type(view3d).__name__}); not measured")
        window.close()
        return
    start = time.perf_counter()
    while not (view3d.is_ready() and not window.jobs.busy) and time.perf_counter() - start < 900:
        app.processEvents()
        time.sleep(0.01)
    built = time.perf_counter() - start
    surfaces = [view3d.surface(s.name) for s in structures]
    triangles = sum(len(s.triangles) for s in surfaces if s is not None and hasattr(s, "triangles"))
    render_window = canvas.GetRenderWindow()
    width, height = render_window.GetSize()
    times = trackball_drag(app, render_window, moves=40, step_px=4)
    still = full_detail_frames(view3d, render_window)
    settings = full_detail_settings(app, window, view3d, render_window)
    floor = _render_floor((width, height))
    renderer_name = next(
        (
            line.split(":", 1)[1].strip()
            for line in render_window.ReportCapabilities().splitlines()
            if line.startswith("OpenGL renderer string")
        ),
        "unknown",
    )
    fps = 1.0 / statistics.median(times)
    count = sum(s is not None for s in surfaces)
    print(
        f"3D: {count} surfaces ({triangles} triangles, built in {built:.1f} s in workers) in a "
        f"{width}×{height} px view: {fps:.1f} frames/s median "
        f"({1000 * statistics.median(times):.1f} ms/frame, "
        f"p95 {1000 * np.percentile(times, 95):.1f} ms) while dragging (coarse meshes of ≤ "
        f"{INTERACTIVE_TRIANGLES} triangles each); target ≥ 20: {'met' if fps >= 20 else 'NOT met'}"
    )
    print(f"  full detail at rest: {1 / statistics.median(still):.1f} frames/s")
    for line in settings:
        print(line)
    print(
        f"  OpenGL renderer: {renderer_name}; on it one 8k-triangle sphere alone renders at "
        f"{1000 / floor:.1f} frames/s ({floor:.1f} ms/frame) in a window of the same size"
    )
    window.close()


def full_detail_frames(view3d, render_window, count: int = 10) -> list[float]:
    """Seconds per full-detail frame, the camera turned programmatically between frames."""
    times = []
    camera = view3d.renderer.GetActiveCamera()
    for _ in range(count):
        begin = time.perf_counter()
        camera.Azimuth(4.0)
        view3d.renderer.ResetCameraClippingRange()
        render_window.Render()
        times.append(time.perf_counter() - begin)
    return times


def full_detail_settings(app, window, view3d, render_window) -> list[str]:
    """The full-detail frame (the one drawn once edits pause) with the view's settings and with
    FXAA and order-independent translucency on (what the view used before on software OpenGL),
    in the grid and maximised."""
    renderer, lines = view3d.renderer, []
    for layout in ("in the grid", "maximised"):
        if layout == "maximised":
            window.grid.maximise("3d")
            wait_idle(app, window)
        view3d._show_full_detail()
        ours = statistics.median(full_detail_frames(view3d, render_window))
        kept = renderer.GetUseFXAA(), renderer.GetUseOIT()
        renderer.SetUseFXAA(True)
        renderer.SetUseOIT(True)
        both = statistics.median(full_detail_frames(view3d, render_window))
        renderer.SetUseFXAA(kept[0])
        renderer.SetUseOIT(kept[1])
        width, height = render_window.GetSize()
        lines.append(
            f"  full-detail frame {layout} ({width}×{height} px): {1000 * ours:.0f} ms with the "
            f"view's settings (FXAA {'on' if kept[0] else 'off'}, OIT {'on' if kept[1] else 'off'}); "
            f"{1000 * both:.0f} ms with FXAA and OIT on ({both / ours:.1f}×)"
        )
    window.grid.maximise(None)
    return lines


def _render_floor(size) -> float:
    """Median ms per frame of the simplest scene (one 8192-triangle sphere) on this OpenGL."""
    import vtk

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(*size)
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    sphere = vtk.vtkSphereSource()
    sphere.SetThetaResolution(64)
    sphere.SetPhiResolution(64)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(sphere.GetOutputPort())
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    renderer.AddActor(actor)
    renderer.ResetCamera()
    window.Render()
    times = []
    for _ in range(30):
        begin = time.perf_counter()
        renderer.GetActiveCamera().Azimuth(4.0)
        window.Render()
        times.append((time.perf_counter() - begin) * 1000)
    window.Finalize()
    return statistics.median(times)


def bench_memory(app) -> None:
    """Run in a fresh process (see `main`), so the figures are this case's alone."""
    from planning.geometry import Grid
    from planning.volume import Volume

    before = resident_mb()
    grid = Grid((600, 512, 512), (0.8, 0.8, 1.0))
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, grid.shape, dtype=np.int16)
    volume = Volume(array, grid, "CT")
    structures = synthetic_structures(grid, 120, seed=5)
    mask_mb = sum(s.mask.array.nbytes for s in structures) / 2**20
    window = make_window(volume, structures)
    wait_idle(app, window)
    view = window.views["axial"]
    scroll_frames(app, view, range(0, 600, 3))
    surfaces = sum(window.view3d.surface(s.name) is not None for s in structures)
    print(
        f"Memory: 512×512×600 CT ({array.nbytes / 2**20:.0f} MB) + 120 structures (cropped masks "
        f"{mask_mb:.0f} MB; full-size masks would take {120 * np.prod(grid.shape) / 2**30:.1f} GB): "
        f"resident {resident_mb():.0f} MB (was {before:.0f} MB before), peak {peak_mb():.0f} MB, "
        f"the 3D view's {surfaces} surfaces included"
    )
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("DELINEO_DATA", REPOSITORY.parent / "shared" / "data")),
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-scroll", action="store_true")
    parser.add_argument("--only-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    if args.only_memory:
        bench_memory(app)
        return 0
    if not args.skip_scroll:
        bench_scroll(app, args.data)
    bench_3d(app, args.data)
    if not args.skip_memory:
        import subprocess

        subprocess.run([sys.executable, __file__, "--only-memory"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
