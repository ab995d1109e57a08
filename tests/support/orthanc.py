"""A real PACS for tests: Orthanc (Debian's ``orthanc`` package) run on free localhost ports with a
configuration of its own, its storage in a temporary folder, and no HTTP server.

    with Orthanc(tmp_path) as pacs:
        send([folder], pacs.node)
        retrieve(pacs.node, out, study_uid, move_port=pacs.move_port)

Orthanc knows Delineo's AE title (`DELINEO`) at ``127.0.0.1:move_port`` as a C-MOVE destination.
Like dciodvfy and plastimatch, a missing Orthanc skips the test locally and fails it under CI.
The system service the package installs is never used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from planning.dicom.network import DEFAULT_AE_TITLE, Node, echo, send
from planning.errors import NetworkError
from planning.imageio import load_volume
from planning.rtstruct.writer import write_rtstruct
from planning.structure_io import load_structures
from support.data import data_path
from support.pacs import free_port
from support.tools import require

ORTHANC_AE = "ORTHANC"
#: The Visible Human's study and CT series, and the name of a patient named in UTF-8 (made here)
HUMAN_STUDY = "1.2.246.352.221.5271554249207340477.2668154799156707489"
HUMAN_CT = "1.2.246.352.221.5272685235804956408.10526521834793870012"
ACCENTED_NAME = "Øster^Åse"


class Orthanc:
    """Orthanc started in `folder` (its storage, index, configuration and log go there)."""

    def __init__(self, folder: Path, *, ae_title: str = ORTHANC_AE, **settings):
        self.folder = Path(folder)
        self.ae_title = ae_title
        self.move_port = free_port()  # where Orthanc sends a C-MOVE to DELINEO
        self.settings = settings
        self.port = 0
        self._process: subprocess.Popen | None = None

    @property
    def node(self) -> Node:
        return Node(self.ae_title, "127.0.0.1", self.port)

    @property
    def log(self) -> str:
        """What Orthanc logged so far (to read when a test fails)."""
        path = self.folder / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout_s: float = 30.0) -> Orthanc:
        binary = require("Orthanc")
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "Name": "Delineo tests",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.ae_title,
            "DicomPort": self.port,
            "DicomCheckCalledAet": True,
            "HttpServerEnabled": False,
            "HttpPort": free_port(),
            "RemoteAccessAllowed": False,
            "Plugins": [],
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"delineo": [DEFAULT_AE_TITLE, "127.0.0.1", self.move_port]},
            "DicomScuTimeout": 10,
            **self.settings,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        with (self.folder / "orthanc.log").open("w") as log:
            self._process = subprocess.Popen(
                [binary, str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with status {self._process.returncode}:\n{self.log}")
            try:
                echo(self.node, timeout_s=2.0)
                return self
            except NetworkError:
                if time.monotonic() > deadline:
                    self.stop()
                    message = f"Orthanc did not answer C-ECHO within {timeout_s:g} s:\n{self.log}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def prepare_case(root: Path) -> dict:
    """The files sent to Orthanc: the Visible Human's 4 CT slices with an RTSTRUCT Delineo wrote
    from the Varian one, and 2 CT slices (rt-utils) of a patient named in UTF-8."""
    human = data_path("dicom", "varian-visible-human")
    ct = root / "ct"
    ct.mkdir(parents=True)
    for path in human.glob("CT.*.dcm"):
        shutil.copy(path, ct)
    volume = load_volume(ct)
    structures = load_structures(next(human.glob("RS.*.dcm")), volume)
    rtstruct = root / "rs.dcm"
    write_rtstruct(structures, volume, rtstruct)
    accented = root / "accented"
    accented.mkdir()
    study = generate_uid()[:50]
    for number, path in enumerate(sorted(data_path("dicom", "rt-utils", "mock_data").glob("ct_*.dcm"))):
        dataset = pydicom.dcmread(path)
        dataset.SpecificCharacterSet = "ISO_IR 192"
        dataset.PatientName = ACCENTED_NAME
        dataset.PatientID = "OSTER-1"
        dataset.AccessionNumber = "ACC42"
        dataset.StudyInstanceUID = study
        dataset.SeriesInstanceUID = f"{study}.1"
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.{number}"
        dataset.save_as(accented / f"{number}.dcm", enforce_file_format=True)
    return {
        "ct": ct,
        "volume": volume,
        "rtstruct": rtstruct,
        "structures": load_structures(rtstruct, volume),
        "accented": accented,
        "accented_study": study,
    }


#: The patients `prepare_names` makes: (ID, name, character set, birth date, study dates)
NAMED_PATIENTS = (
    ("SMITH-1", "SMITH^JOHN", "", "19500312", ("20200105", "20230610")),
    ("SMITH-2", "SMITH^JOHN", "", "19721101", ("20220301",)),
    ("MUELLER-1", "Müller^Hans", "ISO_IR 100", "19600101", ("20210101",)),
    ("NOWAK-1", "Łukasiewicz^Jan", "ISO_IR 192", "19781224", ("20190101",)),
)


def prepare_names(root: Path) -> dict[tuple[str, str], str]:
    """One CT slice (rt-utils) per study of `NAMED_PATIENTS`, written under `root`: two patients
    named alike, one of them with two studies, a name in mixed case with an umlaut stored in
    Latin-1 (ISO_IR 100), as a RIS writes it, and one Latin-1 cannot write, stored in UTF-8.
    (patient ID, study date) → study instance UID."""
    source = sorted(data_path("dicom", "rt-utils", "mock_data").glob("ct_*.dcm"))[0]
    root.mkdir(parents=True, exist_ok=True)
    studies = {}
    for patient_id, name, character_set, birth_date, dates in NAMED_PATIENTS:
        for date in dates:
            dataset = pydicom.dcmread(source)
            dataset.SpecificCharacterSet = character_set or "ISO_IR 6"
            dataset.PatientName, dataset.PatientID = name, patient_id
            dataset.PatientBirthDate, dataset.StudyDate = birth_date, date
            study = studies[patient_id, date] = generate_uid()[:50]
            dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, f"{study}.1"
            dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.1"
            dataset.save_as(root / f"{patient_id}_{date}.dcm", enforce_file_format=True)
    return studies


def load(orthanc: Orthanc, case: dict) -> None:
    """Send the case to Orthanc with Delineo (C-STORE)."""
    result = send([case["ct"], case["rtstruct"], case["accented"]], orthanc.node)
    assert result.failed == [] and len(result.sent) == 4 + 1 + 2, orthanc.log
