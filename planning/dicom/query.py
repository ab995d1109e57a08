"""Search a PACS with pynetdicom (C-FIND, Study Root): the studies matching a patient, date,
modality or accession number, grouped by patient, and the series of a study. Bringing them here is
`planning.dicom.retrieve`.

Every failure is a NetworkError (or Cancelled) that names the node and says what happened: not
reachable, association rejected (why), or the search refused (the status in words).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from pydicom.dataset import Dataset

from planning.dicom.network import (
    _PENDING,
    DEFAULT_AE_TITLE,
    Node,
    _associate,
    _count,
    _meaning,
    _require,
    _status_text,
)
from planning.errors import Cancelled, NetworkError

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
_CANCELLED = 0xFE00
_DATE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")


@dataclass(frozen=True)
class StudyMatch:
    """A study the PACS found: who, when, what, and how much."""

    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str  # the patient's, YYYYMMDD, or "" when the PACS does not say
    date: str  # YYYYMMDD, or "" when the PACS does not say
    time: str
    description: str
    accession: str
    modalities: tuple[str, ...]
    series_count: int | None  # None: the PACS does not say
    instance_count: int | None

    #: Headers of `cells`, for a table of studies.
    HEADERS = ("Date", "Patient", "ID", "Born", "Description", "Modalities", "Series", "Images")

    @property
    def display_date(self) -> str:
        """The study date as YYYY-MM-DD (as given when not a DICOM date; "" when unknown)."""
        return _display_date(self.date)

    @property
    def patient(self) -> tuple[str, str, str]:
        """Who the study is of: (patient ID, name, birth date) as the PACS gave them."""
        return self.patient_id, self.patient_name, self.birth_date

    def cells(self) -> list[str]:
        """The study as a table row under `HEADERS` (a count the PACS does not give: "?")."""
        return [
            self.display_date,
            self.patient_name,
            self.patient_id,
            _display_date(self.birth_date),
            self.description,
            "/".join(self.modalities),
            count_text(self.series_count),
            count_text(self.instance_count),
        ]


def count_text(value: int | None, unknown: str = "?") -> str:
    """A count a PACS may leave out, as text."""
    return unknown if value is None else str(value)


@dataclass(frozen=True)
class SeriesMatch:
    """A series of a study the PACS found."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    number: int | None
    instance_count: int | None


def find_studies(
    node: Node,
    *,
    patient_id: str = "",
    patient_name: str = "",
    study_date: str = "",
    modality: str = "",
    accession: str = "",
    study_uid: str = "",
    calling_ae: str = DEFAULT_AE_TITLE,
    timeout_s: float = 30.0,
    limit: int = 500,
    cancel: threading.Event | None = None,
) -> list[StudyMatch]:
    """The studies on `node` matching every key given (C-FIND, Study Root, STUDY level), grouped
    by patient (`by_patient`): a search by name lists each patient found with their studies,
    newest first. `patient_name` and `patient_id` may hold the wildcards ``*`` and ``?``; a name
    typed the everyday way is searched in the DICOM form (`person_name_query`) and, as some PACS
    match names in the case they are stored in, again upper-cased, then capitalised, while
    nothing matches (`person_name_variants`); `study_date` is ``YYYYMMDD`` or a range
    ``YYYYMMDD-YYYYMMDD`` (either end may be left open); `modality` matches studies holding a
    series of it. At most `limit` matches are kept (the search is then
    cancelled at the PACS). An empty list: nothing matches.

    Raises NetworkError (not reachable, rejected, search refused), ValueError (a date that is
    not one), Cancelled."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id.strip()
    query.PatientBirthDate = ""
    query.StudyDate = check_date(study_date)
    query.StudyTime = ""
    query.StudyDescription = ""
    query.AccessionNumber = accession.strip()
    query.StudyInstanceUID = study_uid.strip()
    query.ModalitiesInStudy = modality.strip().upper()
    query.NumberOfStudyRelatedSeries = None
    query.NumberOfStudyRelatedInstances = None
    for name in person_name_variants(patient_name):
        query.PatientName = name
        _declare_character_set(query)
        found = _find(node, query, "studies", calling_ae, timeout_s, limit, cancel)
        if found:
            break
    studies = [
        StudyMatch(
            study_uid=_text(answer, "StudyInstanceUID"),
            patient_name=_person(answer),
            patient_id=_text(answer, "PatientID"),
            birth_date=_text(answer, "PatientBirthDate"),
            date=_text(answer, "StudyDate"),
            time=_text(answer, "StudyTime"),
            description=_text(answer, "StudyDescription"),
            accession=_text(answer, "AccessionNumber"),
            modalities=_values(answer, "ModalitiesInStudy"),
            series_count=_count(answer, "NumberOfStudyRelatedSeries"),
            instance_count=_count(answer, "NumberOfStudyRelatedInstances"),
        )
        for answer in found
        if _text(answer, "StudyInstanceUID")
    ]
    return by_patient(studies)


def by_patient(studies: list[StudyMatch]) -> list[StudyMatch]:
    """`studies` grouped by patient (ID, name and birth date), each patient's newest first, the
    patients in the order of their newest study (studies without a date last)."""
    newest_first = sorted(studies, key=lambda s: (s.date, s.time), reverse=True)
    rank = {patient: index for index, patient in enumerate(dict.fromkeys(s.patient for s in newest_first))}
    return sorted(newest_first, key=lambda s: rank[s.patient])


def find_series(
    node: Node,
    study_uid: str,
    *,
    calling_ae: str = DEFAULT_AE_TITLE,
    timeout_s: float = 30.0,
    limit: int = 2000,
    cancel: threading.Event | None = None,
) -> list[SeriesMatch]:
    """The series of study `study_uid` on `node` (C-FIND, Study Root, SERIES level), by series
    number. An empty list: the PACS knows no series of that study."""
    if not study_uid.strip():
        raise ValueError("a study instance UID is needed to list its series")
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid.strip()
    query.SeriesInstanceUID = ""
    query.Modality = ""
    query.SeriesDescription = ""
    query.SeriesNumber = None
    query.NumberOfSeriesRelatedInstances = None
    found = _find(node, query, "series", calling_ae, timeout_s, limit, cancel)
    series = [
        SeriesMatch(
            study_uid=_text(answer, "StudyInstanceUID") or study_uid.strip(),
            series_uid=_text(answer, "SeriesInstanceUID"),
            modality=_text(answer, "Modality"),
            description=_text(answer, "SeriesDescription"),
            number=_count(answer, "SeriesNumber"),
            instance_count=_count(answer, "NumberOfSeriesRelatedInstances"),
        )
        for answer in found
        if _text(answer, "SeriesInstanceUID")
    ]
    series.sort(key=lambda s: (s.number is None, s.number or 0, s.modality, s.series_uid))
    return series


def person_name_query(text: str) -> str:
    """A patient name as typed, in the DICOM form a PACS matches, matching the names that start
    so: ``Doe, John`` and ``doe john`` (family name first) become ``Doe^John*`` and ``doe^john*``,
    ``smith`` becomes ``smith*``; a name holding wildcards (``*``, ``?``) gets none added. The
    case is kept (see `person_name_variants`). A name in the DICOM form (holding ``^`` or ``=``)
    is searched as typed."""
    text = " ".join((text or "").split())
    if not text or "^" in text or "=" in text:
        return text
    if "," in text:
        family, _, given = text.partition(",")
    else:
        family, _, given = text.partition(" ")
    family, given = family.strip(), " ".join(given.replace(",", " ").split())
    name = f"{family}^{given}" if given else family
    return name if "*" in name or "?" in name else f"{name}*"


def person_name_variants(text: str) -> tuple[str, ...]:
    """The forms of a patient name as typed to search in turn until one matches, for a PACS that
    matches names case-sensitively: its `person_name_query`, that upper-cased (how most scanners
    store names), then capitalised (``Müller^Hans*``, how many RIS write them). ``("",)`` for no
    name."""
    name = person_name_query(text)
    return tuple(dict.fromkeys((name, name.upper(), name.title())))


def check_date(text: str) -> str:
    """`text` as a DICOM date or range (``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-``,
    ``-YYYYMMDD``, or empty); ValueError saying how to write it otherwise."""
    text = (text or "").strip().replace(" ", "")
    match = _DATE.match(text)
    if text == "-" or match is None or not all(_is_date(d) for d in (match[1], match[3]) if d):
        raise ValueError(
            f"{text!r} is not a study date: write YYYYMMDD, or a range YYYYMMDD-YYYYMMDD "
            "(an end may be left open: 20240101-)"
        )
    return text


def _display_date(text: str) -> str:
    """A DICOM date as YYYY-MM-DD (as given when not a DICOM date)."""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _is_date(text: str) -> bool:
    try:
        time.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


def _find(node, query, what, calling_ae, timeout_s, limit, cancel) -> list[Dataset]:
    refused = "does not offer searches (Study Root C-FIND)"
    association = _associate(node, [(STUDY_ROOT_FIND, None)], calling_ae, timeout_s, refused)
    found: list[Dataset] = []
    cancelled_here = False
    try:
        _require(association, STUDY_ROOT_FIND, node, "searches (Study Root C-FIND)")
        for status, identifier in association.send_c_find(query, STUDY_ROOT_FIND):
            if not status or "Status" not in status:
                raise NetworkError(f"{node} stopped answering the search for {what}{_status_text(status)}")
            code = int(status.Status)
            if code in _PENDING:
                if identifier is not None and len(found) < limit:
                    found.append(identifier)
                stop = len(found) >= limit or (cancel is not None and cancel.is_set())
                if stop and not cancelled_here:
                    association.send_c_cancel(1, query_model=STUDY_ROOT_FIND)
                    cancelled_here = True
            elif code in (0x0000, _CANCELLED):
                break
            else:
                meaning = _meaning(code, calling_ae)
                raise NetworkError(f"{node} refused the search for {what}: {meaning}{_status_text(status)}")
    finally:
        association.release()
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"search on {node} cancelled")
    return found


# -- identifiers ----------------------------------------------------------------------------------


def _declare_character_set(query: Dataset) -> None:
    """Declare the character set of a query whose keys are not plain ASCII (a name with accents):
    Latin-1 (ISO_IR 100) when it can write them, as most PACS that convert no character set
    store Western names in it and compare a query's bytes; UTF-8 (ISO_IR 192) otherwise."""
    text = "".join(str(query.get(k, "") or "") for k in ("PatientName", "PatientID", "AccessionNumber"))
    if not text.isascii():
        query.SpecificCharacterSet = "ISO_IR 100" if _latin1(text) else "ISO_IR 192"
    elif "SpecificCharacterSet" in query:
        del query.SpecificCharacterSet  # an upper-cased name may be ASCII: "Straße", "STRASSE"


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    return str(value).strip()


def _values(dataset: Dataset, keyword: str) -> tuple[str, ...]:
    value = dataset.get(keyword)
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))


def _person(dataset: Dataset) -> str:
    """The patient's name to read: ``FAMILY, Given`` (other components after)."""
    value = dataset.get("PatientName")
    if value is None:
        return ""
    parts = [p.strip() for p in str(value).split("=")[0].split("^")]
    parts = [p for p in parts if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""
