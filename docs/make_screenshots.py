"""Make the README's screenshots of the main window (run under a display or xvfb-run).

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_screenshots.py [--data ../shared/data]

- screenshot-sample.png: `delineo` on a fresh install, the built-in sample patient;
- screenshot-lung-ct.png: the IBSI lung CT with its expert GTV, the rule-based auto-contours
  (External, Lung_R) accepted, and a CTV grown 5 mm from the GTV inside the body.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = (1600, 1000)


def wait(app, window, timeout_s: float = 600) -> None:
    start = time.monotonic()
    while (window.jobs.busy or not window.view3d.is_ready()) and time.monotonic() - start < timeout_s:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)


def look_inside(app, window, translucent: dict[str, float], zoom: float = 1.0) -> None:
    """Make the named surfaces translucent in the 3D view so the target inside shows."""
    for name, opacity in translucent.items():
        window.view3d.set_opacity(name, opacity)
    window.view3d.set_view("anterior")  # frame every surface shown, not only the first ones built
    window.view3d.renderer.GetActiveCamera().Zoom(zoom)
    window.view3d.render_image()  # renders now
    wait(app, window)


def new_window():
    from PyQt6.QtCore import QSettings

    from workstation.app.main_window import MainWindow

    folder = Path(tempfile.mkdtemp(prefix="delineo-shots-"))
    window = MainWindow(QSettings(str(folder / "s.ini"), QSettings.Format.IniFormat), folder)
    window.resize(*SIZE)
    window.show()
    return window


def sample(app) -> None:
    window = new_window()
    window.opening.open_sample()
    wait(app, window)
    window.table.select("GTV")
    wait(app, window)
    look_inside(app, window, {"Lung_R": 0.3, "Lung_L": 0.3, "Bone": 0.45}, zoom=1.6)
    window.screenshot().save(str(HERE / "screenshot-sample.png"))
    window.close()


def lung(app, data: Path) -> None:
    from workstation.app.derive_dialog import DeriveDialog

    window = new_window()
    window.opening.open_path(data / "dicom" / "ibsi1-lung-ct")
    wait(app, window)
    window.open_autoseg()
    dialog = window.autoseg_dialog
    dialog.run()
    wait(app, window)
    for structure in [s for s in window.case.structures if s.awaiting_review]:
        keep = structure.name in ("External", "Lung_R")
        (dialog.accept_result if keep else dialog.reject_result)(structure.number)
    dialog.close()
    derive = DeriveDialog(window)
    derive.source_a.setCurrentText("GTV-1")
    derive.margin.setValue(5.0)
    derive.within.setCurrentText("External")
    derive.output.setText("CTV")
    derive.compute()
    wait(app, window)
    window.table.select("GTV-1")
    window.set_preset("Lung")
    wait(app, window)
    look_inside(app, window, {"Lung_R": 0.3}, zoom=1.3)
    window.screenshot().save(str(HERE / "screenshot-lung-ct.png"))
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(os.environ.get("DELINEO_DATA", HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    from PyQt6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    sample(app)
    lung(app, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
