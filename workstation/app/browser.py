"""The patient browser: patients → studies → series and RT objects found by a folder scan.

Double-clicking a series loads it together with the RT objects that reference it. An image file
(NIfTI, NRRD, MHA) opened instead is named in a single line.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from planning.dicom.scan import ImageSeries, RTObject, ScanResult
from planning.volume import Volume

ROLE = Qt.ItemDataRole.UserRole


class PatientBrowser(QTreeWidget):
    """Tree of what a scan found; `series_activated(scan, series)` on double-click of a series."""

    series_activated = pyqtSignal(object, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setHeaderLabels(["Patient / study / series", "Details"])
        self.setColumnWidth(0, 230)
        self.setAlternatingRowColors(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a split series' part is named at the end
        self.itemDoubleClicked.connect(self._on_double_click)
        self.scan: ScanResult | None = None

    def show_scan(self, scan: ScanResult, source: str) -> None:
        self.clear()
        self.scan = scan
        for patient in scan.patients():
            patient_item = QTreeWidgetItem(self, [f"{patient.name or '(no name)'}", patient.patient_id])
            patient_item.setExpanded(True)
            for study in patient.studies:
                date = _date(study.date)
                study_item = QTreeWidgetItem(patient_item, [study.description or "Study", date])
                study_item.setExpanded(True)
                for series in study.series:
                    item = QTreeWidgetItem(study_item, [_series_title(series), series.describe()])
                    item.setData(0, ROLE, series)
                    load = "Double-click to load (with the RT objects that reference it)"
                    item.setToolTip(0, f"{series.describe()}\n{load}")
                    item.setToolTip(1, series.describe())
                for obj, copies in _unique(study.rt_objects):
                    item = QTreeWidgetItem(
                        study_item, [f"{obj.kind}  {obj.label or obj.path.name}", obj.describe()]
                    )
                    item.setData(0, ROLE, obj)
                    also = "".join(f"\nthe same object also in {copy.path}" for copy in copies)
                    item.setToolTip(0, f"{obj.path}{also}")
                    item.setToolTip(1, obj.describe())
        if scan.problems:
            QTreeWidgetItem(self, [f"{len(scan.problems)} file(s) skipped", scan.problems[0].reason])
        if not scan.series and not scan.rt_objects:
            QTreeWidgetItem(self, [f"No DICOM found in {source}", ""])

    def show_note(self, title: str, details: str) -> None:
        """One line in place of a scan, e.g. which built-in patient is open."""
        self.clear()
        self.scan = None
        item = QTreeWidgetItem(self, [title, details])
        for column in (0, 1):
            item.setToolTip(column, details)

    def show_file(self, path: str | Path, volume: Volume) -> None:
        """Say which image file is open: its name, then what it holds (a CT known from its values:
        these formats name no modality); the full path on hover."""
        path = Path(path)
        modality = "CT (values in Hounsfield units)" if volume.modality == "CT" else "image"
        size = "×".join(str(n) for n in volume.shape[::-1])
        spacing = " × ".join(f"{s:g}" for s in volume.grid.spacing_xyz)
        details = f"{modality}, {size} voxels of {spacing} mm"
        self.show_note(path.name, details)
        self.topLevelItem(0).setToolTip(0, f"{path}\n{details}")

    def series_items(self) -> list[QTreeWidgetItem]:
        found = []

        def walk(item):
            if isinstance(item.data(0, ROLE), ImageSeries):
                found.append(item)
            for i in range(item.childCount()):
                walk(item.child(i))

        for i in range(self.topLevelItemCount()):
            walk(self.topLevelItem(i))
        return found

    def _on_double_click(self, item: QTreeWidgetItem, column: int) -> None:
        data = item.data(0, ROLE)
        if isinstance(data, ImageSeries):
            self.series_activated.emit(self.scan, data)
        elif isinstance(data, RTObject) and self.scan is not None:
            for series in self.scan.series:
                if series.identity.series_instance_uid in data.referenced_series_uids:
                    self.series_activated.emit(self.scan, series)
                    return


def referencing(scan: ScanResult, series: ImageSeries, kind: str) -> list[RTObject]:
    """RT objects of `kind` that reference `series` (by series UID; for RTDOSE, else by frame of
    reference). Copies of one object (same SOP Instance UID) count once."""
    uid = series.identity.series_instance_uid
    found = [o for o in scan.rt_objects if o.kind == kind and uid in o.referenced_series_uids]
    if not found and kind == "RTDOSE":
        frame = series.identity.frame_of_reference_uid
        found = [o for o in scan.rt_objects if o.kind == kind and frame and frame in o.frames_of_reference]
    unique = {}
    for obj in found:
        unique.setdefault(obj.sop_instance_uid or str(obj.path), obj)
    return list(unique.values())


def _unique(objects: list[RTObject]) -> list[tuple[RTObject, list[RTObject]]]:
    """Each RT object once, with its copies (other files of the same SOP Instance UID): a
    structure set kept both beside its CT and among its slices is one object, loaded once."""
    unique: dict[str, tuple[RTObject, list[RTObject]]] = {}
    for obj in objects:
        unique.setdefault(obj.sop_instance_uid or str(obj.path), (obj, []))[1].append(obj)
    return [(first, copies[1:]) for first, copies in unique.values()]


def _series_title(series: ImageSeries) -> str:
    """Modality, series number and description; for one part of a split series, what tells it
    from the others ("echo 2"), which its siblings' titles would otherwise share."""
    number = f"#{series.identity.series_number} " if series.identity.series_number else ""
    part = f" [{series.split_note}]" if series.split_note else ""
    return f"{series.modality} {number}{series.description or ''}".strip() + part


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text
