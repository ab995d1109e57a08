"""A small PACS for tests: a pynetdicom Query/Retrieve SCP on a free localhost port, serving real
DICOM files (indexed with pydicom) to C-FIND (STUDY and SERIES level, with wildcard, date range,
UID list and modality-in-study matching), C-GET and C-MOVE.

    with TestPacs([data_path("dicom", "ibsi1-lung-ct")]) as pacs:
        find_studies(pacs.node, patient_id="1")

`destinations` maps the AE titles C-MOVE may send to onto (host, port); `delay_s` slows each
instance sent (to cancel a retrieve midway); `refuse` maps a study UID to the failure status a
retrieve of it gets; `unsendable` names SOP Instance UIDs sent with a SOP class no retriever
proposes (so they fail at the PACS, as objects of a private class would); `honour_cancel=False`
makes it go on sending after a C-CANCEL; `pending=False` answers a C-MOVE only once done (pending
responses are optional, PS3.4 C.4.2.3), as some PACS do; `case_sensitive_names=True` matches
patient names in the case they are stored in, as some PACS do (names are matched in any case
otherwise); `latin1_only=True` reads the names of a query as Latin-1 bytes whatever character set
it declares, as a PACS converting none does (DCMTK's dcmqrscp), its files being in Latin-1.
"""

from __future__ import annotations

import fnmatch
import socket
import time
from collections import defaultdict
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from planning.dicom.network import Node
from planning.dicom.query import STUDY_ROOT_FIND
from planning.dicom.retrieve import STUDY_ROOT_GET, STUDY_ROOT_MOVE

STUDY_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
)
SERIES_KEYS = ("Modality", "SeriesDescription", "SeriesNumber")
PRIVATE_CLASS = "1.2.826.0.1.3680043.9.7433.99.1"
#: Studies of the real data sets `served_folders` holds.
LUNG_STUDY = "1.3.6.1.4.1.9590.100.1.2.96328687310426543129572151154132284399"
BREAST_STUDY = "2.16.840.1.113662.2.12.0.3057.1241703565.35"


def served_folders() -> list[Path]:
    """The data sets the tests' PACS serves: the IBSI lung CT (CT + RTSTRUCT), the Visible Human
    (a CT series) and the dicompyler breast plan (CT, RTSTRUCT, RTPLAN, RTDOSE)."""
    from support.data import data_path

    return [
        data_path("dicom", "ibsi1-lung-ct"),
        data_path("dicom", "varian-visible-human"),
        data_path("dicom", "dicompyler-breast"),
    ]


def free_port() -> int:
    """A TCP port free on localhost now: for a C-MOVE destination, or a node nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestPacs:
    __test__ = False  # not a test class, despite its name

    def __init__(
        self,
        folders,
        *,
        ae_title: str = "PACS",
        destinations: dict[str, tuple[str, int]] | None = None,
        delay_s: float = 0.0,
        refuse: dict[str, int] | None = None,
        unsendable: set[str] | None = None,
        get: bool = True,
        honour_cancel: bool = True,
        pending: bool = True,
        case_sensitive_names: bool = False,
        latin1_only: bool = False,
    ):
        self.ae_title = ae_title
        self.destinations = dict(destinations or {})
        self.delay_s = delay_s
        self.refuse = dict(refuse or {})
        self.unsendable = set(unsendable or ())
        self.offer_get = get
        self.honour_cancel = honour_cancel
        self.pending = pending
        self.case_sensitive_names = case_sensitive_names
        self.latin1_only = latin1_only
        self.files: dict[str, Path] = {}  # SOP Instance UID → file
        self.headers: dict[str, Dataset] = {}
        for folder in folders:
            for path in sorted(Path(folder).rglob("*")):
                if not path.is_file():
                    continue
                try:
                    header = pydicom.dcmread(path, stop_before_pixels=True)
                except (InvalidDicomError, OSError):
                    continue
                if "SOPInstanceUID" in header and "StudyInstanceUID" in header:
                    self.files[header.SOPInstanceUID] = path
                    self.headers[header.SOPInstanceUID] = header
        self.sent: list[str] = []  # SOP Instance UIDs sent (C-GET and C-MOVE)
        self.cancelled = False
        self._server = None

    # -- the index -------------------------------------------------------------------------------

    def studies(self) -> dict[str, list[Dataset]]:
        studies = defaultdict(list)
        for header in self.headers.values():
            studies[header.StudyInstanceUID].append(header)
        return studies

    def series(self) -> dict[str, list[Dataset]]:
        series = defaultdict(list)
        for header in self.headers.values():
            series[header.SeriesInstanceUID].append(header)
        return series

    def instances_of(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        return sorted(
            uid
            for uid, header in self.headers.items()
            if header.StudyInstanceUID == study_uid
            and (series_uid is None or header.SeriesInstanceUID == series_uid)
        )

    # -- the server ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def node(self) -> Node:
        return Node(self.ae_title, "127.0.0.1", self.port)

    def start(self) -> TestPacs:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        ae.add_supported_context(STUDY_ROOT_FIND)
        ae.add_supported_context(STUDY_ROOT_MOVE)
        if self.offer_get:
            ae.add_supported_context(STUDY_ROOT_GET)
            for context in AllStoragePresentationContexts:  # as stored: it does not decompress
                ae.add_supported_context(
                    context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=False, scp_role=True
                )
        stored = {(str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in self.headers.values()}
        for sop_class, syntax in sorted(stored):  # C-MOVE stores to the destination with these
            ae.add_requested_context(sop_class, [syntax])
        handlers = [
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_C_GET, self._get),
            (evt.EVT_C_MOVE, self._move),
        ]
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> TestPacs:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- C-FIND ----------------------------------------------------------------------------------

    def _find(self, event):
        query = event.identifier
        if self.latin1_only:
            _read_names_as_latin1(query)
        level = str(query.get("QueryRetrieveLevel", ""))
        if level == "STUDY":
            records = [self._study_record(headers) for headers in self.studies().values()]
        elif level == "SERIES":
            records = [self._series_record(headers) for headers in self.series().values()]
        else:
            yield 0xC000, None
            return
        for record in records:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            if _matches(query, record, self.case_sensitive_names):
                answer = Dataset()
                answer.QueryRetrieveLevel = level
                if record.get("SpecificCharacterSet"):  # the names' character set, as stored
                    answer.SpecificCharacterSet = record["SpecificCharacterSet"]
                for element in query:
                    if element.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                        setattr(answer, element.keyword, record.get(element.keyword, ""))
                yield 0xFF00, answer

    def _study_record(self, headers: list[Dataset]) -> dict:
        first = headers[0]
        record = {key: first.get(key, "") for key in STUDY_KEYS}
        record["StudyInstanceUID"] = first.StudyInstanceUID
        record["SpecificCharacterSet"] = first.get("SpecificCharacterSet", "")
        record["ModalitiesInStudy"] = sorted({h.Modality for h in headers})
        record["NumberOfStudyRelatedSeries"] = len({h.SeriesInstanceUID for h in headers})
        record["NumberOfStudyRelatedInstances"] = len(headers)
        return record

    def _series_record(self, headers: list[Dataset]) -> dict:
        first = headers[0]
        record = {key: first.get(key, "") for key in SERIES_KEYS}
        record["StudyInstanceUID"] = first.StudyInstanceUID
        record["SeriesInstanceUID"] = first.SeriesInstanceUID
        record["NumberOfSeriesRelatedInstances"] = len(headers)
        return record

    # -- C-GET and C-MOVE ------------------------------------------------------------------------

    def _selected(self, identifier) -> list[str]:
        study = str(identifier.get("StudyInstanceUID", ""))
        if str(identifier.get("QueryRetrieveLevel", "")) == "SERIES":
            wanted = _uid_list(identifier.get("SeriesInstanceUID"))
            return [uid for s in wanted for uid in self.instances_of(study, s)]
        return self.instances_of(study)

    def _get(self, event):
        yield from self._serve(event)

    def _move(self, event):
        destination = self.destinations.get(str(event.move_destination).strip())
        yield destination if destination is not None else (None, None)
        if not self.pending:
            dimse = event.assoc.dimse
            send = dimse.send_msg

            def final_only(message, context_id):
                if getattr(message, "Status", None) not in (0xFF00, 0xFF01):
                    send(message, context_id)

            dimse.send_msg = final_only
        yield from self._serve(event)

    def _serve(self, event):
        instances = self._selected(event.identifier)
        study = str(event.identifier.get("StudyInstanceUID", ""))
        yield len(instances)
        if study in self.refuse:
            yield self.refuse[study], None
            return
        for uid in instances:
            if event.is_cancelled:
                self.cancelled = True
                if self.honour_cancel:
                    yield 0xFE00, None
                    return
            if not event.assoc.is_established:
                return  # aborted by the retriever
            time.sleep(self.delay_s)
            dataset = pydicom.dcmread(self.files[uid])
            if uid in self.unsendable:
                dataset.SOPClassUID = PRIVATE_CLASS
                dataset.file_meta.MediaStorageSOPClassUID = PRIVATE_CLASS
            self.sent.append(uid)
            yield 0xFF00, dataset


def _read_names_as_latin1(query: Dataset) -> None:
    """The person names of `query` as a PACS converting no character set reads them: their bytes
    (in the character set the query declares) taken as Latin-1."""
    declared = convert_encodings(query.get("SpecificCharacterSet") or "ISO_IR 6")[0]
    for element in query:
        if element.VR == "PN" and element.value:
            element.value = str(element.value).encode(declared).decode("latin-1")


def _uid_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if not isinstance(value, str) else [v for v in value.split("\\") if v]


def _matches(query: Dataset, record: dict, case_sensitive_names: bool = False) -> bool:
    for element in query:
        keyword, value = element.keyword, element.value
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or keyword.startswith("NumberOf"):
            continue
        if value is None or value == "" or (not isinstance(value, str) and len(str(value)) == 0):
            continue  # a return key
        have = record.get(keyword, "")
        if keyword.endswith("UID"):
            if str(have) not in _uid_list(value):
                return False
        elif keyword == "ModalitiesInStudy":
            asked = _uid_list(value)
            if not set(asked) & set(have):
                return False
        elif element.VR == "DA":
            if not _in_range(str(have), str(value)):
                return False
        else:
            pattern, text = str(value), str(have)
            if element.VR == "PN" and not case_sensitive_names:
                pattern, text = pattern.upper(), text.upper()
            if not fnmatch.fnmatchcase(text, pattern):
                return False
    return True


def _in_range(date: str, wanted: str) -> bool:
    if "-" not in wanted:
        return date == wanted
    start, end = wanted.split("-", 1)
    return bool(date) and (not start or date >= start) and (not end or date <= end)
