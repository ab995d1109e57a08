"""RTSTRUCTs with one damaged or inconsistent part: that part is left out, named in a warning, and
the rest of the file is read."""

import copy
from functools import partial

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from support.dicom_factory import ct_phantom, write_ct_series
from support.rtstruct_checks import dciodvfy_errors

from planning.errors import FormatError, GeometryError
from planning.imageio import load_volume
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structures import Mask, PlanarContour, Structure, StructureSet
from planning.tg263 import style_for


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 6-slice CT, two boxes A and B on slices 1–4, and the RTSTRUCT Delineo writes of them."""
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((6, 32, 32)))
    volume = load_volume(folder)
    boxes = {name: np.zeros(volume.grid.shape, bool) for name in "AB"}
    boxes["A"][1:5, 5:20, 5:20] = True
    boxes["B"][1:5, 10:25, 12:28] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    for name, box in boxes.items():
        structures.add(Structure(name, Mask.from_full(volume.grid, box)))
    path = tmp_path_factory.mktemp("rs") / "rs.dcm"
    write_rtstruct(structures, volume, path)
    return pydicom.dcmread(path), volume, boxes


def _variant(source, path, change):
    """A copy of the dataset `source`, changed in place by `change`, saved at `path`."""
    dataset = copy.deepcopy(source)
    change(dataset)
    dataset.save_as(path)
    return path


def test_an_roi_of_another_frame_of_reference_is_left_out(case, tmp_path):
    source, volume, boxes = case
    other = generate_uid()

    def second_in_other_frame(ds):
        ds.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = other
        frame = copy.deepcopy(ds.ReferencedFrameOfReferenceSequence[0])
        frame.FrameOfReferenceUID = other
        del frame.RTReferencedStudySequence
        ds.ReferencedFrameOfReferenceSequence.append(frame)

    path = _variant(source, tmp_path / "two_frames.dcm", second_in_other_frame)
    back = read_rtstruct(path, volume)
    assert back.names() == ["A"]
    np.testing.assert_array_equal(back["A"].mask.full(), boxes["A"])
    [warning] = back.warnings
    assert "B:" in warning and other in warning and volume.frame_of_reference_uid in warning

    def all_in_other_frame(ds):
        for item in ds.StructureSetROISequence:
            item.ReferencedFrameOfReferenceUID = other

    path = _variant(source, tmp_path / "rois_elsewhere.dcm", all_in_other_frame)
    with pytest.raises(GeometryError, match="no ROI is in the images' frame of reference.*A, B are"):
        read_rtstruct(path, volume)


def _first_contour(ds):
    return ds.ROIContourSequence[0].ContourSequence[0]


def _add_contour(ds, change):
    """Append to A a copy of its first contour, changed by `change`."""
    contour = copy.deepcopy(_first_contour(ds))
    change(contour)
    ds.ROIContourSequence[0].ContourSequence.append(contour)


def test_contours_with_unusable_contour_data_are_left_out_and_named(case, tmp_path):
    source, volume, boxes = case

    def empty(contour):
        contour.ContourData = []
        contour.NumberOfContourPoints = 0

    def absent(contour):
        del contour.ContourData

    def not_numbers(contour):
        raw = b"1.0\\abc\\" + contour.get_item(0x30060050).value.split(b"\\", 2)[2]
        contour[0x30060050] = RawDataElement(Tag(0x30060050), "DS", len(raw), raw, 0, True, True)

    def huge(contour):  # an exporter's overflow: 10¹⁵ mm
        contour.ContourData = [1e15, 0, 0, 1e15, 1, 0, 1e15 + 1, 1, 0]
        contour.NumberOfContourPoints = 3

    for change, problem in (
        (empty, "empty or absent ContourData"),
        (absent, "empty or absent ContourData"),
        (not_numbers, "ContourData values that are not numbers"),
        (huge, "coordinates of 10¹¹ mm or more (far outside any patient)"),
    ):
        path = _variant(source, tmp_path / f"{change.__name__}.dcm", partial(_add_contour, change=change))
        back = read_rtstruct(path, volume)
        assert f"A: 1 contour(s) with {problem} were left out" in back.warnings, back.warnings
        for name, box in boxes.items():
            np.testing.assert_array_equal(back[name].mask.full(), box)
        write_rtstruct(back, volume, tmp_path / f"{change.__name__}_again.dcm")  # nothing in the way


def test_contour_data_that_is_not_whole_points_is_left_out(case, tmp_path):
    source, volume, boxes = case

    def one_value_more(ds):
        contour = _first_contour(ds)
        contour.ContourData = [*contour.ContourData, 1.0]

    path = _variant(source, tmp_path / "not_whole.dcm", one_value_more)
    back = read_rtstruct(path, volume)
    assert any(
        "A: 1 contour(s) with a number of ContourData values that is not a multiple of 3" in w
        for w in back.warnings
    )
    expected = boxes["A"].copy()
    expected[1] = False  # A's first contour, on slice 1, is the one left out
    np.testing.assert_array_equal(back["A"].mask.full(), expected)
    np.testing.assert_array_equal(back["B"].mask.full(), boxes["B"])


def test_a_duplicate_roi_number_keeps_the_first_roi_alone(case, tmp_path):
    source, volume, boxes = case

    def b_takes_a_number(ds):
        ds.StructureSetROISequence[1].ROINumber = 1
        ds.ROIContourSequence[1].ReferencedROINumber = 1
        ds.RTROIObservationsSequence[1].ReferencedROINumber = 1
        ds.RTROIObservationsSequence[1].RTROIInterpretedType = "PTV"

    back = read_rtstruct(_variant(source, tmp_path / "duplicate.dcm", b_takes_a_number), volume)
    assert back.warnings == [
        "ROI number 1 is used twice (A, B); the second ROI and its contours were ignored"
    ]
    assert back.names() == ["A"] and back["A"].roi_type.value == "ORGAN"
    np.testing.assert_array_equal(back["A"].mask.full(), boxes["A"])  # not A xor B


def _with_points(ds, zs):
    """POINT markers on A at x 1, y 2 mm and each of `zs` (mm)."""
    for z in zs:
        point = copy.deepcopy(_first_contour(ds))
        point.ContourGeometricType = "POINT"
        point.ContourData = [1.0, 2.0, z]
        point.NumberOfContourPoints = 1
        ds.ROIContourSequence[0].ContourSequence.append(point)


def test_a_marker_beyond_the_images_is_kept_with_a_warning_and_written_without_an_image(case, tmp_path):
    source, volume, _ = case
    first, last = volume.slices[0].position_xyz[2], volume.slices[-1].position_xyz[2]
    path = _variant(source, tmp_path / "points.dcm", partial(_with_points, zs=(first, last + 0.6 * 2.5)))
    back = read_rtstruct(path, volume)
    assert len(back["A"].markers) == 2
    assert any(w.startswith("A: 1 marker(s) lie more than half a slice beyond") for w in back.warnings)
    out = tmp_path / "points_again.dcm"
    warnings = write_rtstruct(back, volume, out)
    assert any(w.startswith("A: 1 marker(s) lie on no loaded image") for w in warnings)
    assert dciodvfy_errors(out) == []
    points = [
        c
        for c in pydicom.dcmread(out).ROIContourSequence[0].ContourSequence
        if c.ContourGeometricType == "POINT"
    ]
    on_image, beyond = sorted(points, key=lambda c: float(c.ContourData[2]))
    assert on_image.ContourImageSequence[0].ReferencedSOPInstanceUID == volume.slices[0].sop_instance_uid
    assert "ContourImageSequence" not in beyond
    assert float(beyond.ContourData[2]) == pytest.approx(last + 1.5)
    assert len(read_rtstruct(out, volume)["A"].markers) == 2  # nothing lost


def test_a_marker_within_half_a_slice_of_the_last_image_references_it(case, tmp_path):
    source, volume, _ = case
    last = volume.slices[-1].position_xyz[2]
    path = _variant(source, tmp_path / "near.dcm", partial(_with_points, zs=(last + 0.4 * 2.5,)))
    back = read_rtstruct(path, volume)
    assert not any("marker" in w for w in back.warnings)
    out = tmp_path / "near_again.dcm"
    assert not any("marker" in w for w in write_rtstruct(back, volume, out))
    [point] = [
        c
        for c in pydicom.dcmread(out).ROIContourSequence[0].ContourSequence
        if c.ContourGeometricType == "POINT"
    ]
    assert point.ContourImageSequence[0].ReferencedSOPInstanceUID == volume.slices[-1].sop_instance_uid


def test_coordinates_too_large_to_write_name_the_structure(case, tmp_path):
    _, volume, boxes = case
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    marker = PlanarContour(np.array([[1e15, 0.0, -10.0]]), "POINT", "")
    structures.add(Structure("Seed", Mask.from_full(volume.grid, boxes["A"]), markers=[marker]))
    with pytest.raises(FormatError, match="Seed: coordinates must be finite and below 10¹¹ mm"):
        write_rtstruct(structures, volume, tmp_path / "huge.dcm")


@pytest.mark.parametrize("walker", ["bytes", "pydicom"])
def test_rois_without_contours_and_colours_out_of_range_are_named(case, tmp_path, monkeypatch, walker):
    """Both were read quietly: an empty structure, and the default colour instead of the file's."""
    source, volume, boxes = case
    if walker == "pydicom":  # the path for encodings the byte walker does not know
        import planning.rtstruct.roi_contour_sequence as roi_contour_sequence

        def not_plain(*args):
            raise ValueError("not the plain encoding")

        monkeypatch.setattr(roi_contour_sequence, "_parse_sequence", not_plain)

    def damage(ds):
        ds.ROIContourSequence[0].ROIDisplayColor = [300, -5, 1000]
        del ds.ROIContourSequence[1].ContourSequence

    back = read_rtstruct(_variant(source, tmp_path / "damaged.dcm", damage), volume)
    assert back.warnings == [
        "A: ROIDisplayColor '300\\-5\\1000' is not three whole numbers 0–255; its default colour is used",
        "ROI 'B' has no contours; it is read as an empty structure",
    ]
    assert back["A"].color == style_for("A")[0]  # the default colour for the name
    np.testing.assert_array_equal(back["A"].mask.full(), boxes["A"])
    assert back["B"].mask.is_empty

    def no_roi_contour_item(ds):
        del ds.ROIContourSequence[1]

    back = read_rtstruct(_variant(source, tmp_path / "no_item.dcm", no_roi_contour_item), volume)
    assert back.warnings == [
        "ROI 'B' has no contours (no ROI Contour item); it is read as an empty structure"
    ]


def _shifted(contour, mm_xyz):
    points = np.asarray(contour.ContourData, float).reshape(-1, 3) + mm_xyz
    contour.ContourData = [f"{v:.4f}" for v in points.ravel()]


@pytest.mark.parametrize("side", [(40.0, 0, 0), (-40.0, 0, 0), (0, 40.0, 0)], ids=["right", "left", "below"])
def test_contours_beyond_the_in_plane_edges_are_cut_off_and_counted(case, tmp_path, side):
    """B wholly beyond an edge (beyond the right one the file failed to read: 'mask box … leaves the
    grid'; beyond the others B was silently empty), A's first contour across the right edge."""
    source, volume, boxes = case

    def move(ds):
        for contour in ds.ROIContourSequence[1].ContourSequence:
            _shifted(contour, side)
        _shifted(_first_contour(ds), (18 * 0.9, 0, 0))  # 18 columns right: 23…40 of 0…31

    back = read_rtstruct(_variant(source, tmp_path / "beyond.dcm", move), volume)
    cut = "contours beyond the images' in-plane edges: {}; only what lies on the images is filled"
    assert f"B: {cut.format('4 wholly, 0 partly')}" in back.warnings
    assert f"A: {cut.format('0 wholly, 1 partly')}" in back.warnings
    assert back["B"].mask.is_empty
    expected = boxes["A"].copy()
    expected[1] = False
    expected[1, 5:20, 23:] = True
    np.testing.assert_array_equal(back["A"].mask.full(), expected)
