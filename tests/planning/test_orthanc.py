"""Delineo's DICOM networking against a real PACS product, Orthanc (1.10, Debian's package): echo,
send a CT series with an RTSTRUCT Delineo wrote, search by patient, study and series keys, and
retrieve with C-GET and C-MOVE into folders that load as the original images and structures."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from support.orthanc import HUMAN_CT, HUMAN_STUDY, Orthanc, load
from support.pacs import free_port

from planning.dicom.network import Node, echo, send
from planning.dicom.query import find_series, find_studies, person_name_query, person_name_variants
from planning.dicom.retrieve import retrieve
from planning.errors import NetworkError
from planning.imageio import load_volume
from planning.structure_io import load_structures


@pytest.fixture(scope="module")
def pacs(orthanc, orthanc_case):
    """Orthanc holding the case, sent by Delineo (C-STORE)."""
    load(orthanc, orthanc_case)
    return orthanc


def test_echo_and_a_wrong_called_ae_title(pacs):
    assert 0 < echo(pacs.node) < 5
    wrong = Node("NOT_ORTHANC", "127.0.0.1", pacs.port)
    with pytest.raises(
        NetworkError, match="NOT_ORTHANC@127.0.0.1.*rejected the association: Called AE title"
    ):
        echo(wrong)


def test_what_was_sent_is_held_series_by_series(pacs, orthanc_case):
    rtstruct = pydicom.dcmread(orthanc_case["rtstruct"], stop_before_pixels=True)
    series = find_series(pacs.node, HUMAN_STUDY)
    assert [(s.modality, s.instance_count) for s in sorted(series, key=lambda s: s.modality)] == [
        ("CT", 4),
        ("RTSTRUCT", 1),
    ]
    assert {s.series_uid for s in series} == {HUMAN_CT, rtstruct.SeriesInstanceUID}
    assert all(s.study_uid == HUMAN_STUDY for s in series)


def test_search_by_patient_and_study_keys(pacs, orthanc_case):
    everything = find_studies(pacs.node)
    assert {s.study_uid for s in everything} == {HUMAN_STUDY, orthanc_case["accented_study"]}
    human = next(s for s in everything if s.study_uid == HUMAN_STUDY)
    assert (human.date, human.description, human.series_count, human.instance_count) == (
        "20050101",
        "Visible Human Male",
        2,
        5,
    )
    assert set(human.modalities) == {"CT", "RTSTRUCT"}
    by_id = find_studies(pacs.node, patient_id=human.patient_id)
    assert [s.study_uid for s in by_id] == [HUMAN_STUDY]
    assert [s.study_uid for s in find_studies(pacs.node, patient_id="OSTER-?")] == [
        orthanc_case["accented_study"]
    ]
    assert [s.study_uid for s in find_studies(pacs.node, modality="RTSTRUCT")] == [HUMAN_STUDY]
    assert [s.study_uid for s in find_studies(pacs.node, study_date="20040101-20051231")] == [HUMAN_STUDY]
    assert find_studies(pacs.node, study_date="-20041231") == []
    assert [s.study_uid for s in find_studies(pacs.node, accession="ACC42")] == [
        orthanc_case["accented_study"]
    ]


def test_names_in_utf8_are_found_and_read_back(pacs, orthanc_case):
    """Stored in UTF-8, answered by Orthanc in its own character set (Latin-1 by default):
    the name is read back as sent, and searched in any case."""
    for typed in ("Øster*", "øster*", "ØSTER^ÅSE"):
        found = find_studies(pacs.node, patient_name=typed)
        assert [(s.study_uid, s.patient_name) for s in found] == [
            (orthanc_case["accented_study"], "Øster, Åse")
        ], typed


def test_names_typed_the_everyday_way_are_searched_in_the_dicom_form(pacs, orthanc_case):
    for typed in ("øster, åse", "Øster Åse", "øster å*"):
        found = find_studies(pacs.node, patient_name=typed)
        assert [s.study_uid for s in found] == [orthanc_case["accented_study"]], typed


def test_person_name_query():
    assert person_name_query("Doe, John") == "Doe^John*"
    assert person_name_query(" doe   john ") == "doe^john*"
    assert person_name_query("Doe, J*") == "Doe^J*"
    assert person_name_query("smith") == "smith*"
    assert person_name_query("sm?th") == "sm?th"
    assert person_name_query("van der Berg, Anna Maria") == "van der Berg^Anna Maria*"
    assert person_name_query("Doe^John") == "Doe^John"  # the DICOM form: as typed
    assert person_name_query("Yamada^Tarou=山田^太郎") == "Yamada^Tarou=山田^太郎"
    assert person_name_query("") == ""
    assert person_name_variants("müller, hans") == ("müller^hans*", "MÜLLER^HANS*", "Müller^Hans*")
    assert person_name_variants("SMITH") == ("SMITH*", "Smith*")
    assert person_name_variants("") == ("",)


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_loads_as_the_original_images_and_structures(pacs, orthanc_case, tmp_path, method):
    move_port = pacs.move_port if method == "move" else None
    result = retrieve(pacs.node, tmp_path / "study", HUMAN_STUDY, move_port=move_port)
    assert len(result.received) == 5 and result.failed == 0 and result.completed == 5
    volume = load_volume(tmp_path / "study")
    np.testing.assert_array_equal(volume.array, orthanc_case["volume"].array)
    np.testing.assert_allclose(volume.grid.spacing_xyz, orthanc_case["volume"].grid.spacing_xyz)
    np.testing.assert_allclose(volume.grid.origin_xyz, orthanc_case["volume"].grid.origin_xyz)
    rtstruct = next(
        p for p in result.received if pydicom.dcmread(p, stop_before_pixels=True).Modality == "RTSTRUCT"
    )
    structures = load_structures(rtstruct, volume)
    assert [s.name for s in structures] == [s.name for s in orthanc_case["structures"]]
    for got, sent in zip(structures, orthanc_case["structures"], strict=True):
        np.testing.assert_array_equal(got.mask.full(), sent.mask.full())
        assert got.mask.voxel_count > 500  # not empty: SpinalCord has 654 voxels, BODY far more

    only_ct = retrieve(pacs.node, tmp_path / "ct", HUMAN_STUDY, [HUMAN_CT], move_port=move_port)
    assert len(only_ct.received) == 4
    np.testing.assert_array_equal(load_volume(tmp_path / "ct").array, orthanc_case["volume"].array)


@pytest.mark.parametrize("method", ["get", "move"])
def test_a_study_the_pacs_does_not_hold_is_named_so(pacs, tmp_path, method):
    """Orthanc answers a study it does not hold with a bare failure (0xC000), not "no match"."""
    move_port = pacs.move_port if method == "move" else None
    with pytest.raises(NetworkError, match=r"has no study 1\.2\.3\.4 \(a search for it finds nothing\)"):
        retrieve(pacs.node, tmp_path, "1.2.3.4", move_port=move_port)
    with pytest.raises(NetworkError, match=r"has no series 1\.2\.3\.5 in study " + HUMAN_STUDY):
        retrieve(pacs.node, tmp_path, HUMAN_STUDY, ["1.2.3.5"], move_port=move_port)


def test_a_c_move_the_pacs_cannot_deliver_says_what_it_must_know(pacs, tmp_path):
    """Orthanc refuses with the same bare 0xC000 a destination it does not know and one it cannot
    reach (known at another port): the error says what the PACS must know of us."""
    with pytest.raises(
        NetworkError, match="must know the AE title 'STRANGER' with this computer's address and port"
    ):
        retrieve(pacs.node, tmp_path, HUMAN_STUDY, move_port=pacs.move_port, calling_ae="STRANGER")
    elsewhere = free_port()  # Orthanc knows DELINEO at pacs.move_port, but we listen here
    with pytest.raises(NetworkError, match=f"'DELINEO' with this computer's address and port {elsewhere}"):
        retrieve(pacs.node, tmp_path, HUMAN_STUDY, move_port=elsewhere)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.70"], ids=["jpeg-ls", "jpeg-lossless"]
)
def test_images_the_pacs_keeps_compressed_arrive_compressed_and_load(orthanc_case, tmp_path, syntax):
    """Orthanc compressing what it receives (JPEG-LS, JPEG lossless: the encoders it has) sends the
    CT as it keeps it, by C-GET and C-MOVE, and it loads as the original pixels."""
    with Orthanc(tmp_path / "orthanc", IngestTranscoding=syntax) as pacs:
        assert send([orthanc_case["ct"]], pacs.node).failed == []
        for move_port in (None, pacs.move_port):
            folder = tmp_path / f"study-{move_port}"
            result = retrieve(pacs.node, folder, HUMAN_STUDY, move_port=move_port)
            syntaxes = {
                str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                for p in result.received
            }
            assert len(result.received) == 4 and syntaxes == {syntax}, pacs.log
            np.testing.assert_array_equal(load_volume(folder).array, orthanc_case["volume"].array)
