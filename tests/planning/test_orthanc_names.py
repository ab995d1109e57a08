"""Searching patients by name on a real PACS product, Orthanc (Debian's package), matching names
without regard to case (its default) and with it (`CaseSensitivePN`, as some PACS do): two
patients named alike, one with two studies, a mixed-case name with an umlaut stored in
Latin-1 and a Polish name stored in UTF-8."""

from __future__ import annotations

import pytest
from support.orthanc import Orthanc, prepare_names

from planning.dicom.network import send
from planning.dicom.query import find_studies


@pytest.fixture(scope="module", params=[False, True], ids=["any-case", "case-sensitive"])
def names(request, tmp_path_factory):
    """(Orthanc holding `prepare_names`'s studies, (patient ID, date) → study UID)."""
    root = tmp_path_factory.mktemp("names")
    studies = prepare_names(root / "files")
    with Orthanc(root / "orthanc", CaseSensitivePN=request.param) as pacs:
        result = send([root / "files"], pacs.node)
        assert result.failed == [] and len(result.sent) == len(studies), pacs.log
        yield pacs, studies


def test_studies_are_grouped_by_patient_newest_first(names):
    pacs, studies = names
    found = find_studies(pacs.node)
    assert [(s.patient_id, s.date) for s in found] == [
        ("SMITH-1", "20230610"),
        ("SMITH-1", "20200105"),
        ("SMITH-2", "20220301"),
        ("MUELLER-1", "20210101"),
        ("NOWAK-1", "20190101"),
    ]
    assert [s.study_uid for s in found] == [studies[s.patient_id, s.date] for s in found]
    assert [s.cells()[1:4] for s in found[1:3]] == [
        ["SMITH, JOHN", "SMITH-1", "1950-03-12"],
        ["SMITH, JOHN", "SMITH-2", "1972-11-01"],
    ]


@pytest.mark.parametrize("typed", ["smith", "Smith", "smith, j", "SMITH^JOHN"])
def test_a_name_in_any_case_finds_the_patients_it_starts(names, typed):
    """Stored upper-case, as scanners write names: found typed in lower case, a family name alone
    matching the names that start with it."""
    pacs, studies = names
    found = find_studies(pacs.node, patient_name=typed)
    assert [s.study_uid for s in found] == [
        studies["SMITH-1", "20230610"],
        studies["SMITH-1", "20200105"],
        studies["SMITH-2", "20220301"],
    ]


@pytest.mark.parametrize("typed", ["müller", "Müller, Hans", "MÜLLER", "müller^hans"])
def test_a_mixed_case_latin1_name_is_found_in_any_case(names, typed):
    """Stored `Müller^Hans` in Latin-1: found typed in lower or upper case too (searched again
    capitalised on a PACS that matches case), and read back as stored."""
    pacs, studies = names
    found = find_studies(pacs.node, patient_name=typed)
    assert [(s.study_uid, s.patient_name) for s in found] == [
        (studies["MUELLER-1", "20210101"], "Müller, Hans")
    ]


def test_a_name_latin1_cannot_write_is_asked_in_utf8(names):
    """Found; Orthanc answers in its own character set (Latin-1 by default), which drops the Ł."""
    pacs, studies = names
    for typed in ("łukasiewicz", "ŁUKASIEWICZ, JAN"):
        found = find_studies(pacs.node, patient_name=typed)
        assert [(s.study_uid, s.patient_name) for s in found] == [
            (studies["NOWAK-1", "20190101"], "ukasiewicz, Jan")
        ], typed
