"""Opening a case in the main window: a path of any kind (session, image file, DICOM folder), a
scanned series with the RTSTRUCTs and RTDOSE referencing it, the sample patient, a saved session,
and the recovery of an autosave left by a crash or by unsaved work at exit; with a case open,
structures (RTSTRUCT, DICOM-SEG, label map) and a dose added to it. Reading runs in the window's
jobs; the case is shown once read, unless the open one keeps its unsaved changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PyQt6.QtWidgets import QFileDialog, QMessageBox

from planning.dicom.headers import read_header
from planning.dicom.load import load_series
from planning.dicom.scan import RT_OBJECT_KINDS, ImageSeries, ScanResult, plan_dose_of, scan
from planning.dose import PARTIAL_SUMMATIONS
from planning.errors import DelineoError
from planning.imageio import IMAGE_SUFFIXES, is_image_file, read_image_file
from planning.session import ARCHIVE_SUFFIXES, ImageReference, Session, load_session
from planning.volume import Volume
from workstation.app import services
from workstation.app.autosave import recoverable
from workstation.app.browser import referencing
from workstation.app.case import Case

#: file-dialog patterns of the image formats Delineo reads (NIfTI, NRRD, MetaImage)
_IMAGE_PATTERNS = " ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES)


class CaseOpening:
    """What a main window opens, and the File menu's questions for it."""

    def __init__(self, window):
        self.window = window

    def _say(self, text: str, ms: int) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _warn(self, text: str) -> None:
        """In the status bar and, to stay, in Messages."""
        self._say(text, 20000)
        self.window.messages.add("WARNING", text)

    # -- File menu -----------------------------------------------------------------------------

    def ask_open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open a folder of DICOM files")
        if folder:
            self.open_folder(folder)

    def ask_open_file(self) -> None:
        self._ask_to_open("Open an image", f"Images ({_IMAGE_PATTERNS} *.dcm);;All files (*)", self.open_path)

    def ask_import_structures(self) -> None:
        self._ask_to_open(
            "Import structures",
            f"Structures (*.dcm {_IMAGE_PATTERNS});;All files (*)",
            self.import_structures,
        )

    def ask_open_dose(self) -> None:
        self._ask_to_open("Open dose", "RTDOSE (*.dcm);;All files (*)", self.open_dose)

    def ask_open_session(self) -> None:
        self._ask_to_open("Open a session", "Delineo sessions (*.delineo *.zip)", self.open_session)

    def _ask_to_open(self, title: str, filters: str, then) -> None:
        """Ask for one file to open (Qt's dialog with `filters`), then call `then(path)`."""
        path, _ = QFileDialog.getOpenFileName(self.window, title, "", filters)
        if path:
            then(path)

    # -- cases ---------------------------------------------------------------------------------

    def open_path(self, path: str | Path) -> None:
        """Open a session, an image file, or a folder (scanned; a single series loads at once).
        With a case open, an RTSTRUCT or SEG file adds its structures to it, an RTDOSE its dose."""
        path = Path(path)
        kind = _rt_object_kind(path) if self.window.case is not None else None
        if kind in ("RTSTRUCT", "SEG"):
            self.import_structures(path)
        elif kind == "RTDOSE":
            self.open_dose(path)
        elif _is_session(path):
            self.open_session(path)
        elif path.is_file() and is_image_file(path):
            self.window.menus.remember(path)
            self.window.jobs.run(
                f"Loading {path.name}",
                lambda p, c: read_image_file(path),
                lambda volume: self._show_file(volume, path),
            )
        else:
            self.open_folder(path)

    def open_folder(self, path: str | Path, auto_load: bool = True) -> None:
        path = Path(path)
        self.window.menus.remember(path)

        def done(result):
            loadable = [s for s in result.series if s.modality not in ("", "OT") or len(result.series) == 1]
            loads = auto_load and len(loadable) == 1
            for view in [*self.window.views.values(), self.window.view3d]:
                view.set_empty_hint("" if loads else _choose_hint(len(result.series)))
            if not result.series:
                self.window.on_job_failed(f"Opening {path.name}", result.nothing_to_open(path))
            if self.window.case is not None and (loads or not result.series):
                # the open case's listing stays until the folder's series replaces the case
                if loads:
                    self.load_series(result, loadable[0], then=lambda: self._list(result, path))
                return
            self._list(result, path)
            if loads:
                self.load_series(result, loadable[0])

        self.window.jobs.run(f"Scanning {path.name}", lambda p, c: scan(path, on_progress=p, cancel=c), done)

    def _list(self, result, path: Path) -> None:
        self.window.browser.show_scan(result, str(path))
        self.window.docks.browser_dock.show()

    def load_series(self, scan_result, series, then=lambda: None) -> None:
        """Load an image series, the RTSTRUCTs referencing it and its RTDOSE. Of several doses the
        plan's is shown when the others are its beams' or fractions' (`plan_dose_of`), else none
        (showing one would be a guess): the user opens the one wanted. Either way each is named
        with what it holds. `then()` is called once the series is the open case."""
        structure_files = referencing(scan_result, series, "RTSTRUCT")
        doses = referencing(scan_result, series, "RTDOSE")
        shown = doses[0] if len(doses) == 1 else plan_dose_of(doses)
        dose_files = [shown] if shown is not None else []
        source = Path(series.headers[0].path).parent

        def work(on_progress, cancel):
            volume = load_series(series, on_progress=on_progress, cancel=cancel)
            sets, problems, dose = [], [], None
            for obj in structure_files:
                on_progress(f"Reading {obj.path.name}", 0, 1)
                try:
                    sets.append(services.load_rtstruct(obj.path, volume))
                except DelineoError as error:
                    problems.append(str(error))
            for obj in dose_files:
                on_progress(f"Reading {obj.path.name}", 0, 1)
                try:
                    dose = (services.load_dose(obj.path), obj.path)
                except DelineoError as error:
                    problems.append(str(error))
            return volume, sets, problems, dose

        def done(result):
            volume, sets, problems, dose = result
            before = self.window.case
            self._show_volume(volume, "dicom", source, sets, series.key)
            if self.window.case is before:  # the user kept the open case
                return
            then()
            if dose is not None:
                self.window.set_dose(*dose)
            warnings = [w for loaded in sets for w in getattr(loaded, "warnings", [])]
            if warnings:
                self._say(f"Structures: {_first_of(warnings)}", 15000)
            if len(doses) > 1:
                self._warn(_several_doses(doses, shown))
            for problem in problems:
                self.window.on_job_failed("Reading RT objects", problem)

        self.window.jobs.run(f"Loading {series.description or series.modality}", work, done)

    def open_sample(self) -> None:
        """Load the built-in sample patient (a thorax phantom with its structures)."""
        from planning.sample_patient import make_sample_patient

        def done(sample):
            self._show_volume(sample.volume, "sample", "", [sample.structures])
            if self.window.browser.scan is None:  # keep a folder's listing; else say what is open
                hint = "Synthetic thorax; File ▸ Open folder… loads DICOM"
                self.window.browser.show_note("Sample patient (phantom)", hint)

        self.window.jobs.run("Making the sample patient", lambda p, c: make_sample_patient(), done)

    def import_structures(self, path: str | Path) -> None:
        """Add the structures of an RTSTRUCT, a DICOM-SEG or a label map to the open case, as one
        undo step (names already in use get a suffix)."""
        if self.window.case is None:
            return
        case, path = self.window.case, Path(path)

        def done(loaded) -> None:
            if self.window.case is not case:
                return
            case.import_structures(loaded, f"Import {path.name}")
            note = f"; {_first_of(loaded.warnings)}" if loaded.warnings else ""
            self._say(f"Imported {len(loaded)} structure(s) from {path.name}{note}", 15000)

        self.window.jobs.run(
            f"Importing {path.name}", lambda p, c: services.load_rtstruct(path, case.volume, p, c), done
        )

    def open_dose(self, path: str | Path) -> None:
        """Read an RTDOSE for the open case (refused when it is of another frame of reference)."""
        self.window.jobs.run(
            "Reading dose", lambda p, c: services.load_dose(path), lambda d: self.window.set_dose(d, path)
        )

    def _show_volume(self, volume, kind: str, path, structure_sets, series_key: str = "") -> None:
        if not self.window.saving.may_replace_case():
            return
        if volume.warnings:
            self._say(_first_of(volume.warnings), 15000)
        self.window.session_path = None
        reference = ImageReference.for_volume(volume, kind, path, series_key)
        self.window.set_case(Case.with_structures(volume, structure_sets or [], reference))

    def _show_file(self, volume, path: Path) -> None:
        """An image file opened as the case: named in the Patients panel (no scan lists it)."""
        self._show_volume(volume, "file", path, None)
        self.window.browser.show_file(path, volume)
        self.window.docks.browser_dock.show()

    # -- sessions and recovery -----------------------------------------------------------------

    def open_session(self, path: str | Path) -> None:
        """Restore a saved session: its image is loaded again from where it was (or from where
        the user says it moved)."""
        path = Path(path)
        self.window.menus.remember(path)
        title = f"Opening session {path.name}"

        def work(on_progress, cancel):
            session = load_session(path)
            return session, _load_reference(session.image, on_progress, cancel)

        def shown(session, volume, found):
            saved = f", saved {session.saved_at.replace('T', ' ')}" if session.saved_at else ""
            if self.restore_session(session, volume, found, f"Reopened session {path.name}{saved}"):
                self.window.session_path = path

        self.window.jobs.run(title, work, lambda result: self._shown_or_located(title, *result, shown))

    def _shown_or_located(self, title: str, session: Session, loaded, shown) -> None:
        """`shown(session, volume, scan)` with what `_load_reference` `loaded`; when the session's
        images are no longer where they were (`loaded` None), once the user has said where they
        are now and they have loaded."""
        if loaded is not None:
            shown(session, *loaded)
            return
        where = self.ask_where_images_are(session.image)
        if where is None:
            gone = f"the session's image {session.image.path} is no longer there"
            self.window.on_job_failed(title, gone)
            return
        moved = dataclasses.replace(session, image=dataclasses.replace(session.image, path=str(where)))
        self.window.jobs.run(
            f"Loading {where.name}",
            lambda p, c: _load_reference(moved.image, p, c),
            lambda loaded: self._shown_or_located(title, moved, loaded, shown),
        )

    def ask_where_images_are(self, reference: ImageReference) -> Path | None:
        """Ask for the folder (DICOM) or file the session's images moved to; None when the user
        does not say. The images found there must be the same series on the same grid."""
        old = Path(reference.path)
        answer = QMessageBox.question(
            self.window,
            "Images moved",
            f"The session's images are no longer at {old}.\n\nShow where they are now? The "
            f"{'series' if reference.kind == 'dicom' else 'image'} found there must be the session's, "
            "on the same grid.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return None
        title = f"Where are the images of {reference.description or old.name} now?"
        if reference.kind == "file":
            chosen, _ = QFileDialog.getOpenFileName(self.window, title, str(old.parent))
        else:
            chosen = QFileDialog.getExistingDirectory(self.window, title, str(old.parent))
        return Path(chosen).resolve() if chosen else None

    def restore_session(self, session: Session, volume, found: ScanResult | None, opened: str) -> bool:
        """Show a session's case, unless the open one keeps its unsaved changes; True when shown.
        The status bar says `opened` ("Reopened session …") and the first new warning; the Patients
        list shows the series scanned with it (`found`) or names its image file or sample."""
        if not session.image.grid.same_as(volume.grid):
            raise DelineoError(
                f"the image at {session.image.path or 'the sample'} no longer has the session's grid "
                f"({volume.grid.shape} vs {session.image.shape})"
            )
        if not self.window.saving.may_replace_case():
            return False
        self.window.session_path = None
        case = Case.from_session(session, volume)  # first: it may add a warning (a history left out)
        for warning in session.structures.warnings:  # said when they were imported: not news
            self.window.messages.add("INFO", f"When imported: {warning}")
        warnings = [*volume.warnings, *session.warnings]  # which part of a split series, a damaged history
        for warning in warnings:
            self.window.messages.add("WARNING", warning)
        # before the view state's own news (a dose no longer there), which replaces it
        self._say(f"{opened}: {_first_of(warnings)}" if warnings else opened, 15000)
        self.window.set_case(case, session.view)
        self._list_image(session.image, volume, found)
        return True

    def _list_image(self, reference: ImageReference, volume, found: ScanResult | None) -> None:
        """Show in the Patients list the series a session was opened on (with the rest of its
        folder, `found`), its image file or the sample."""
        if found is not None:
            self.window.browser.show_scan(found, reference.path)
        elif reference.kind == "file":
            self.window.browser.show_file(reference.path, volume)
        else:
            self.window.browser.show_note("Sample patient (phantom)", "Synthetic thorax")

    def recover(self, entry) -> None:
        """Restore a crashed session's autosave; it is removed once the recovered case has been
        autosaved (at once) in its turn. Kept when the open case is kept instead."""
        title = "Recovering autosaved session"

        def work(on_progress, cancel):
            session = entry.load()
            return session, _load_reference(session.image, on_progress, cancel)

        def shown(session, volume, found):
            opened = f"Recovered the session autosaved at {session.saved_at}"
            if not self.restore_session(session, volume, found, opened):
                return
            self.window.saved_generation = None  # recovered work is unsaved work
            self.window.autosaver.take_over(entry)

        self.window.jobs.run(title, work, lambda result: self._shown_or_located(title, *result, shown))

    def offer_recovery(self, automatic: bool = False) -> bool:
        """Offer to recover the newest autosave a crash left behind; True when recovering."""
        found = recoverable(self.window.data_dir)
        if not found:
            return False
        entry = found[0]
        if not automatic:
            answer = QMessageBox.question(
                self.window,
                "Recover unsaved work?",
                _recovery_question(entry),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard,
            )
            if answer != QMessageBox.StandardButton.Yes:
                entry.discard()
                return False
        self.recover(entry)
        return True


def _recovery_question(entry) -> str:
    """Why there is work to recover (a crash, or unsaved work kept at a normal exit), and the offer."""
    case = entry.description or "the last case"
    if entry.crashed:
        return f"Delineo did not close normally. Recover the work autosaved for {case}?"
    return f"Delineo was closed with unsaved changes, kept for the next start. Recover the work on {case}?"


def _is_session(path: Path) -> bool:
    return (path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)) or (
        path.is_dir() and (path / "session.json").exists()
    )


def _load_reference(
    reference: ImageReference, on_progress, cancel
) -> tuple[Volume, ScanResult | None] | None:
    """Load the image a session refers to, with the scan of its DICOM folder (None for a file or
    the sample); None when it is no longer where it was."""
    if reference.kind == "sample":
        from planning.sample_patient import make_sample_patient

        return make_sample_patient(reference.shape).volume, None
    path = Path(reference.path)
    if not path.exists():
        return None
    if reference.kind == "file":
        return read_image_file(path), None
    found = scan(path, on_progress=on_progress, cancel=cancel)
    series, warning = _series_of(found, reference)
    volume = load_series(series, on_progress=on_progress, cancel=cancel)
    if warning:
        volume.warnings.insert(0, warning)
    return volume, found


def _series_of(found: ScanResult, reference: ImageReference) -> tuple[ImageSeries, str]:
    """The scanned series a session refers to, by its key, and a warning ("" if none). A session
    saved before the parts of a split series had keys of their own names the series alone: then
    the part of the session's shape is taken, the first if several have it (the echoes of one
    series share theirs), and the warning says which."""
    try:
        return found.find_series(reference.series_uid), ""
    except DelineoError:
        shape = tuple(reference.shape)
        parts = [s for s in found.series if s.identity.series_instance_uid == reference.series_uid]
        fitting = [s for s in parts if (s.number_of_images, s.rows, s.columns) == shape]
        if not fitting:
            raise
    if len(fitting) == 1:
        return fitting[0], ""
    return fitting[0], (
        f"This session names series {reference.series_uid}, which holds {len(fitting)} volumes of its "
        f"images' size ({fitting[0].split_note} and others); it was opened on the first: check that "
        "it is the one the contours were drawn on (File ▸ Open can load another and import them)"
    )


def _several_doses(doses, shown) -> str:
    """What the window says when several RTDOSEs reference the series: each with what it holds
    ("rtdose.dcm (PLAN dose, PHYSICAL, GY)"), and which is shown and why, or that none is."""
    listed = ", ".join(f"{d.path.name} ({d.dose})" for d in doses)
    text = f"{len(doses)} RT Doses reference this series: {listed}: "
    if shown is None:
        return text + "none is shown; File ▸ Open dose… opens the one you want"
    parts = sorted({PARTIAL_SUMMATIONS[d.dose_summation] for d in doses if d is not shown})
    return (
        text + f"{shown.path.name} is shown, the whole plan's dose (the others are its "
        f"{' and '.join(parts)} doses); File ▸ Open dose… opens another"
    )


def _first_of(warnings: list[str]) -> str:
    """The first warning for the status bar, saying where the others are."""
    more = len(warnings) - 1
    return warnings[0] + (f" (and {more} more: View ▸ Messages)" if more else "")


def _rt_object_kind(path: Path) -> str | None:
    """ "RTSTRUCT", "SEG", "RTDOSE"… for a DICOM RT object file; None for anything else."""
    if not path.is_file() or is_image_file(path):
        return None
    try:
        return RT_OBJECT_KINDS.get(str(read_header(path).get("SOPClassUID", "")))
    except DelineoError:
        return None


def _choose_hint(series: int) -> str:
    """What the empty views say when `series` image series are listed and none opens ("" for none)."""
    if series == 0:
        return ""
    which = "it" if series == 1 else "one"
    return f"{series} series found.\nDouble-click {which} in the Patients list to open it."
