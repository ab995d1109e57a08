"""Reading RTSTRUCTs that planning systems wrote, checked against plastimatch and reference masks."""

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from support.data import data_path
from support.dicom_factory import ct_phantom, tilted_positions, write_ct_series
from support.rtstruct_checks import (
    copy_with_uids,
    dciodvfy_errors,
    dice,
    hd95_mm,
    on_volume_grid,
    plastimatch_masks,
)

from planning.errors import DicomReadError, GeometryError
from planning.imageio import load_volume, read_image_file
from planning.rtstruct.drawn_planes import DrawnPlanes, regular_planes
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structure_io import labels_on_grid, load_structures
from planning.structures import Mask, Structure, StructureSet


def _images_only(folder: Path, target: Path, pattern: str) -> Path:
    """A folder of links to the image files alone (some sample folders also hold RT objects)."""
    target.mkdir()
    for path in folder.glob(pattern):
        (target / path.name).symlink_to(path)
    return target


@pytest.fixture(scope="module")
def varian():
    folder = data_path("dicom", "varian-visible-human")
    return folder, next(folder.glob("RS.*.dcm")), load_volume(folder)


@pytest.fixture(scope="module")
def mim(tmp_path_factory):
    folder = _images_only(
        data_path("dicom", "rt-utils", "mock_data"), tmp_path_factory.mktemp("x") / "ct", "ct_*.dcm"
    )
    return folder, load_volume(folder)


def _agrees_with_plastimatch(rtstruct, series, volume, out) -> dict[str, float]:
    ours = read_rtstruct(rtstruct, volume)
    theirs = plastimatch_masks(rtstruct, series, out)
    scores = {}
    for structure in ours:
        other = on_volume_grid(theirs[structure.name.replace(" ", "_")], volume)
        scores[structure.name] = dice(structure.mask.full(), other)
        if structure.volume_cc >= 1.0:
            assert scores[structure.name] >= 0.98, (structure.name, scores[structure.name])
    return scores


def test_varian_file_matches_plastimatch_and_the_reference_mask(varian, tmp_path):
    folder, rtstruct, volume = varian
    scores = _agrees_with_plastimatch(rtstruct, folder, volume, tmp_path)
    assert scores["BODY"] >= 0.999
    structures = read_rtstruct(rtstruct, volume)
    assert structures.names() == ["BODY", "SpinalCord"]
    body = structures["BODY"]
    assert body.roi_type.value == "EXTERNAL" and body.color == (0, 255, 0) and body.number == 13
    assert len(body.contours) == 4 and all(c.image_uid for c in body.contours)
    reference = read_image_file(folder / "Mask.nii.gz")  # 1 = SpinalCord, 2 = BODY outside the cord
    labels = labels_on_grid(reference.array.astype(np.uint8), reference.grid, volume.grid)
    assert dice(body.mask.full(), labels >= 1) >= 0.99


def test_mim_file_with_a_hole_matches_plastimatch(mim, tmp_path):
    folder, volume = mim
    rtstruct = data_path("dicom", "rt-utils", "mock_data", "rt.dcm")
    scores = _agrees_with_plastimatch(rtstruct, folder, volume, tmp_path)
    assert scores == {"ROI-1": pytest.approx(1.0, abs=0.02)}
    structures = read_rtstruct(rtstruct, volume)
    mask = structures["ROI-1"].mask.full()
    hole, solid = np.rint(
        volume.grid.patient_to_index(np.array([[-40.0, -40.0, 60.0], [-49.0, -49.0, 60.0]]))
    )
    assert not mask[int(hole[2]), int(hole[1]), int(hole[0])]  # the inner contour is a hole
    assert mask[int(solid[2]), int(solid[1]), int(solid[0])]
    # The file invents a frame of reference UID but references the loaded images one by one.
    assert any("frame of reference" in w for w in structures.warnings)


def test_cerr_file_without_image_references_is_placed_by_position(tmp_path):
    folder = _images_only(data_path("dicom", "ibsi1-lung-ct", "image"), tmp_path / "ct", "DCM_IMG_*.dcm")
    volume = load_volume(folder)
    rtstruct = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    scores = _agrees_with_plastimatch(rtstruct, folder, volume, tmp_path / "pm")
    assert scores["GTV-1"] >= 0.99
    gtv = read_rtstruct(rtstruct, volume)["GTV-1"]
    assert not any(c.image_uid for c in gtv.contours) and gtv.roi_type.value == "GTV"
    assert 300 < gtv.volume_cc < 400


def test_broken_rt_utils_files_give_clear_errors(mim):
    folder, volume = mim
    broken = data_path("dicom", "rt-utils", "mock_data")
    for name in ("invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"):
        with pytest.raises(GeometryError) as error:
            read_rtstruct(broken / name, volume)
        message = str(error.value)
        assert name in message and "not loaded" in message and "ROI-1" in message
        assert "load the complete image series" in message
        partial = read_rtstruct(broken / name, volume, allow_missing_images=True)
        assert len(partial) == 4 and any("left out" in w for w in partial.warnings)
    with pytest.raises(DicomReadError, match="not an RT Structure Set"):
        read_rtstruct(broken / "ct_1.dcm", volume)


def test_structures_of_another_frame_of_reference_are_refused(varian, mim):
    _, _, varian_volume = varian
    with pytest.raises(GeometryError, match="frame of reference"):
        read_rtstruct(data_path("dicom", "rt-utils", "mock_data", "rt.dcm"), varian_volume)


def test_unedited_import_is_written_back_losslessly(varian, tmp_path):
    folder, rtstruct, volume = varian
    structures = read_rtstruct(rtstruct, volume)
    path = tmp_path / "again.dcm"
    write_rtstruct(structures, volume, path)
    assert dciodvfy_errors(path) == []
    again = read_rtstruct(path, volume)
    for before in structures:
        after = again[before.name]
        np.testing.assert_array_equal(after.mask.full(), before.mask.full())
        assert len(after.contours) == len(before.contours)
        for a, b in zip(after.contours, before.contours, strict=True):
            np.testing.assert_allclose(a.points, b.points, atol=5e-4)  # DS rounding to 1 µm only
    assert again["BODY"].roi_type == structures["BODY"].roi_type


def test_totalsegmentator_labels_round_trip(tmp_path):
    """31 model labels (NIfTI with a flipped y axis) → RTSTRUCT → masks, by Delineo and plastimatch."""
    example = data_path("dicom", "totalseg-example")
    with pytest.raises(GeometryError, match="SOPInstanceUID"):  # the example CT was stripped of UIDs
        volume = load_volume(example / "ct")
        write_rtstruct(load_structures(example / "labels.nii.gz", volume), volume, tmp_path / "no.dcm")
    series = copy_with_uids(example / "ct", tmp_path / "ct")
    volume = load_volume(series)
    labels = load_structures(example / "labels.nii.gz", volume)
    assert len(labels) == 31 and "liver" in labels
    path = tmp_path / "totalseg.dcm"
    write_rtstruct(labels, volume, path)
    assert dciodvfy_errors(path) == []
    back = read_rtstruct(path, volume)
    theirs = plastimatch_masks(path, series, tmp_path / "pm")
    half_diagonal = 0.5 * float(np.linalg.norm(volume.grid.spacing_xyz))
    for structure in labels:
        mask = structure.mask.full()
        got = back[structure.name].mask.full()
        if structure.volume_cc >= 1.0:
            assert dice(got, mask) >= 0.99, structure.name
            assert hd95_mm(got, mask, volume.grid.spacing_zyx) <= half_diagonal, structure.name
        assert dice(on_volume_grid(theirs[structure.name], volume), got) >= 0.98, structure.name


def test_explicit_vr_and_undefined_length_encodings_read_the_same(varian, tmp_path):
    """The fast sequence walker and pydicom agree whatever the encoding of the file."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    folder, rtstruct, volume = varian
    reference = read_rtstruct(rtstruct, volume)
    dataset = pydicom.dcmread(rtstruct)
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    explicit = tmp_path / "explicit.dcm"
    dataset.save_as(explicit, enforce_file_format=True)
    dataset.ROIContourSequence.is_undefined_length = True
    undefined = tmp_path / "undefined.dcm"
    dataset.save_as(undefined, enforce_file_format=True)
    for path in (explicit, undefined):
        again = read_rtstruct(path, volume)
        for structure in reference:
            np.testing.assert_array_equal(again[structure.name].mask.full(), structure.mask.full())
            assert again[structure.name].color == structure.color


@pytest.fixture(scope="module")
def ibsi(tmp_path_factory):
    folder = _images_only(
        data_path("dicom", "ibsi1-lung-ct", "image"), tmp_path_factory.mktemp("x") / "ct", "DCM_IMG_*.dcm"
    )
    return pydicom.dcmread(data_path("dicom", "ibsi1-lung-ct", "RS.dcm")), load_volume(folder)


def _damaged(source, path: Path, change) -> Path:
    """A copy of `source` whose first contour's (N, 3) points `change` rewrites."""
    dataset = copy.deepcopy(source)
    contour = dataset.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    contour.ContourData = [f"{v:.4f}"[:16] for v in change(points).ravel()]
    dataset.save_as(path)
    return path


def test_contours_on_no_image_plane_are_named_for_what_is_wrong(ibsi, tmp_path):
    source, volume = ibsi
    whole = read_rtstruct(data_path("dicom", "ibsi1-lung-ct", "RS.dcm"), volume)["GTV-1"]

    def tilted(points):
        points[0, 2] += 7.3
        return points

    def between(points):  # half way to the next slice, and slightly tilted: no plane within half a slice
        points[:, 2] += 0.5 * volume.grid.spacing_xyz[2] - 0.1
        points[0, 2] += 0.4
        return points

    def not_numbers(points):
        points[0, 0] = np.nan
        return points

    for change, problem, advice in (
        (tilted, "spread over up to 7.3 mm", "damaged"),
        (between, "between the loaded slices", "other slice positions"),
    ):
        path = _damaged(source, tmp_path / f"{change.__name__}.dcm", change)
        with pytest.raises(GeometryError) as error:
            read_rtstruct(path, volume)
        message = str(error.value)
        assert "1 contour(s) of GTV-1" in message and "no image plane" in message, message
        assert problem in message and advice in message and "beyond" not in message, message
        kept = read_rtstruct(path, volume, allow_missing_images=True)
        assert any(problem in w and "left out" in w for w in kept.warnings)
        assert 0 < whole.volume_cc - kept["GTV-1"].volume_cc < 0.1 * whole.volume_cc
    with pytest.warns(UserWarning, match="Invalid value for VR DS"):  # pydicom, writing the damage
        damaged = _damaged(source, tmp_path / "nan.dcm", not_numbers)
    kept = read_rtstruct(damaged, volume)
    assert (
        "GTV-1: 1 contour(s) with coordinates that are not numbers (NaN or infinite) were left out"
        in kept.warnings
    )
    assert 0 < whole.volume_cc - kept["GTV-1"].volume_cc < 0.1 * whole.volume_cc


def test_contours_on_the_images_of_a_tilted_series_are_read_without_warning(tmp_path):
    folder = tmp_path / "tilt"
    write_ct_series(folder, ct_phantom((6, 32, 32)), positions=tilted_positions(6))
    volume = load_volume(folder)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("SQ", Mask.from_full(volume.grid, np.ones(volume.grid.shape, bool))))
    path = tmp_path / "square.dcm"
    write_rtstruct(structures, volume, path)
    # A square at x -10…0, y -5…5 mm (patient coordinates) on every image, referencing it.
    dataset = pydicom.dcmread(path)
    template = dataset.ROIContourSequence[0].ContourSequence[0]
    contours = []
    for ref in volume.slices:
        contour = copy.deepcopy(template)
        contour.ContourImageSequence[0].ReferencedSOPInstanceUID = ref.sop_instance_uid
        z = ref.position_xyz[2]
        contour.ContourData = [-10, -5, z, 0, -5, z, 0, 5, z, -10, 5, z]
        contour.NumberOfContourPoints = 4
        contours.append(contour)
    dataset.ROIContourSequence[0].ContourSequence = contours
    dataset.save_as(path)
    back = read_rtstruct(path, volume)
    assert back.warnings == []
    k, j, i = np.indices(volume.grid.shape)
    x, y, _ = np.moveaxis(volume.grid.index_to_patient(np.stack([i, j, k], axis=-1).astype(float)), -1, 0)
    np.testing.assert_array_equal(back["SQ"].mask.full(), (x > -10) & (x < 0) & (y > -5) & (y < 5))


@pytest.fixture(scope="module")
def drawn_on_2p5mm(tmp_path_factory):
    """A 2.5 mm CT, a structure whose square differs on each plane (2–8) and the RTSTRUCT of it;
    and a writer of other reconstructions of the same frame of reference (new series)."""
    root = tmp_path_factory.mktemp("reslice")
    frame, study = generate_uid(), generate_uid()

    def series(name: str, count: int, spacing_z: float):
        write_ct_series(
            root / name,
            ct_phantom((count, 24, 24)),
            spacing_xyz=(1.0, 1.0, spacing_z),
            frame_of_reference_uid=frame,
            study_uid=study,
        )
        return load_volume(root / name)

    volume = series("ct_2p5", 10, 2.5)
    shape = np.zeros(volume.grid.shape, bool)
    for k in range(2, 9):
        shape[k, 5 : 7 + k, 6 : 6 + 2 * k] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Squares", Mask.from_full(volume.grid, shape)))
    write_rtstruct(structures, volume, root / "rs.dcm")
    return root / "rs.dcm", shape, series


def test_contours_of_another_reconstruction_go_on_the_image_planes_they_are_nearest_to(
    drawn_on_2p5mm, tmp_path
):
    """Drawn on 2.5 mm planes, read onto 1.25 mm and 5 mm slices of the same frame of reference:
    each image plane takes the nearest contour plane (half-way: the upper). Before, every other
    1.25 mm plane was empty and a 5 mm plane held its neighbours' contours combined even-odd."""
    rtstruct, shape, series = drawn_on_2p5mm
    nearest = {1.25: [(j + 1) // 2 for j in range(19)], 5.0: [2 * j for j in range(5)]}
    for spacing, planes in nearest.items():
        volume = series(f"ct_{spacing}", len(planes), spacing)
        structures = read_rtstruct(rtstruct, volume)
        np.testing.assert_array_equal(structures["Squares"].mask.full(), shape[planes], err_msg=str(spacing))
        unused = "; 3 contour(s) on planes no image plane is nearest to were not used" if spacing == 5 else ""
        assert structures.warnings[0] == (
            f"the contours of rs.dcm were drawn on planes spaced 2.50 mm, not on these images' planes; "
            f"placed on the image's {spacing:.2f} mm planes by nearest plane (each image plane takes the "
            f"contour plane within 1.25 mm of it){unused}; every structure keeps its outlines as drawn, "
            "moved onto the image planes that take them"
        )
        moved = structures["Squares"].drawn_elsewhere
        assert structures.warnings[1:] == (
            []
            if spacing == 1.25
            else [
                f"Squares: its contours enclose {moved.drawn_cc:.2f} cc on the 2.50 mm planes they were "
                f"drawn on, {moved.placed_cc:.2f} cc on these 5.00 mm images ({100 * moved.change:+.1f} %); "
                "3 of its contours lie on planes no image plane takes"
            ]
        )
        write_rtstruct(structures, volume, tmp_path / f"again_{spacing}.dcm")
        again = read_rtstruct(tmp_path / f"again_{spacing}.dcm", volume)
        assert again.warnings == []
        np.testing.assert_array_equal(again["Squares"].mask.full(), shape[planes])
    # Planes as regular on the images the file references (every other one) are left as drawn.
    volume = series("ct_own", 10, 2.5)
    sparse = StructureSet(volume.grid, volume.frame_of_reference_uid)
    sparse.add(
        Structure("Sparse", Mask.from_full(volume.grid, shape & (np.arange(10) % 2 == 0)[:, None, None]))
    )
    write_rtstruct(sparse, volume, tmp_path / "sparse.dcm")
    back = read_rtstruct(tmp_path / "sparse.dcm", volume)
    assert back.warnings == []
    np.testing.assert_array_equal(back["Sparse"].mask.full(), sparse["Sparse"].mask.full())


def _contours_by_plane(path: Path) -> dict[float, list[pydicom.Dataset]]:
    """The first ROI's contour items of an RTSTRUCT by their z (mm, to 1 µm)."""
    by_z = {}
    for item in pydicom.dcmread(path).ROIContourSequence[0].ContourSequence:
        by_z.setdefault(round(float(item.ContourData[2]), 3), []).append(item)
    return by_z


def _points(item) -> np.ndarray:
    return np.array(item.ContourData, float).reshape(-1, 3)


def _slab_volume_cc(by_z: dict, thickness_mm: float) -> float:
    """The volume of one outer contour per plane, each a slab `thickness_mm` thick (shoelace)."""
    total = 0.0
    for (item,) in by_z.values():
        x, y = _points(item)[:, 0], _points(item)[:, 1]
        total += 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return total * thickness_mm / 1000.0


def test_structures_read_onto_another_reconstruction_are_written_with_their_outlines_as_drawn(tmp_path):
    """A ball drawn on a 2.5 mm CT with 1 mm pixels, read onto 1.25 mm and 5 mm reconstructions
    with 0.7 mm pixels of its frame of reference and exported there. Before, it was traced again on
    the new pixels without a word: no exported contour was the drawn one (areas up to 2.1 % off on
    the shared planes, twice the points on 1.25 mm). Now each image plane holds the outline of the
    drawn plane nearest to it, exactly as drawn, referencing its image, and the export says so with
    the volumes as drawn and as written."""
    frame, study = generate_uid(), generate_uid()

    def series(name: str, count: int, spacing_z: float, pixel_mm: float):
        write_ct_series(
            tmp_path / name,
            ct_phantom((count, round(48 / pixel_mm), round(48 / pixel_mm))),
            spacing_xyz=(pixel_mm, pixel_mm, spacing_z),
            origin_xyz=(-24.0, -24.0, 0.0),
            frame_of_reference_uid=frame,
            study_uid=study,
        )
        return load_volume(tmp_path / name)

    drawn_on = series("ct_2p5", 12, 2.5, 1.0)
    k, j, i = np.indices(drawn_on.grid.shape)
    x, y, z = np.moveaxis(drawn_on.grid.index_to_patient(np.stack([i, j, k], -1).astype(float)), -1, 0)
    original = StructureSet(drawn_on.grid, drawn_on.frame_of_reference_uid)
    original.add(Structure("Ball", Mask.from_full(drawn_on.grid, x**2 + y**2 + (z - 13.75) ** 2 <= 144)))
    write_rtstruct(original, drawn_on, tmp_path / "rs.dcm")
    drawn = _contours_by_plane(tmp_path / "rs.dcm")
    drawn_z = np.array(sorted(drawn))
    for spacing, count in ((1.25, 24), (5.0, 6)):
        volume = series(f"ct_{spacing}", count, spacing, 0.7)
        structures = read_rtstruct(tmp_path / "rs.dcm", volume)
        moved = structures["Ball"].drawn_elsewhere
        assert moved.spacing_mm == pytest.approx(2.5)
        assert moved.drawn_cc == pytest.approx(_slab_volume_cc(drawn, 2.5), abs=1e-5)
        path = tmp_path / f"rs_{spacing}.dcm"
        assert write_rtstruct(structures, volume, path) == [
            "1 structure(s) were drawn on another reconstruction's planes (2.50 mm apart) and are written "
            f"on these images' {spacing:.2f} mm planes, each image plane holding the outline of the drawn "
            f"plane nearest to it as drawn; their volumes as drawn → as written: Ball {moved.drawn_cc:.2f} → "
            f"{moved.placed_cc:.2f} cc ({100 * moved.change:+.1f} %)"
        ]
        written = _contours_by_plane(path)
        assert moved.placed_cc == pytest.approx(_slab_volume_cc(written, spacing), abs=1e-5)
        images = {round(ref.position_xyz[2], 3): ref.sop_instance_uid for ref in volume.slices}
        for plane, (item,) in written.items():
            nearest = drawn_z[
                np.argmin(np.abs(drawn_z - plane) - 1e-6 * (drawn_z > plane))
            ]  # half-way: upper
            np.testing.assert_array_equal(_points(item)[:, :2], _points(drawn[nearest][0])[:, :2])
            np.testing.assert_allclose(_points(item)[:, 2], plane)
            assert item.ContourImageSequence[0].ReferencedSOPInstanceUID == images[plane]
        assert dciodvfy_errors(path) == []
        again = read_rtstruct(path, volume)
        assert again.warnings == []
        np.testing.assert_array_equal(again["Ball"].mask.full(), structures["Ball"].mask.full())
        theirs = plastimatch_masks(path, tmp_path / f"ct_{spacing}", tmp_path / f"pm_{spacing}")
        assert dice(on_volume_grid(theirs["Ball"], volume), structures["Ball"].mask.full()) >= 0.98
    # edited, it is traced on these images: what drawn_elsewhere said of its contours goes with them
    inside = tuple(slice(v, v + 1) for v in np.argwhere(structures["Ball"].mask.full())[0])
    structures.edit_mask("Ball", inside, np.ones((1, 1, 1), bool))
    assert structures["Ball"].contours is None and structures["Ball"].drawn_elsewhere is None
    assert write_rtstruct(structures, volume, tmp_path / "edited.dcm") == []


def test_the_ibsi_gtv_keeps_its_volume_on_1p5_and_6_mm_reconstructions(tmp_path):
    """GTV-1, 358.68 cc on its 3 mm CT, was 179.34 cc on 1.5 mm and 209.26 cc on 6 mm slices. On
    6 mm slices it is now its 13 contours on the image planes, each 6 mm thick: 2.9 % less."""
    rtstruct = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    images = sorted(
        (pydicom.dcmread(p) for p in data_path("dicom", "ibsi1-lung-ct", "image").glob("DCM_IMG_*.dcm")),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    for name, step, expected in (("1p5", 0.5, 358.68), ("6", 2.0, 348.20)):
        series = generate_uid()
        (tmp_path / name).mkdir()
        for n, t in enumerate(np.arange(0, len(images) - 1 + 1e-9, step)):
            image = copy.deepcopy(images[int(t)])  # the pixels do not matter here, the positions do
            z = float(image.ImagePositionPatient[2]) + 3.0 * (t - int(t))
            image.ImagePositionPatient[2] = f"{z:.3f}"
            image.SeriesInstanceUID, image.SOPInstanceUID = series, generate_uid()
            image.file_meta.MediaStorageSOPInstanceUID = image.SOPInstanceUID
            image.save_as(tmp_path / name / f"IMG{n:04d}.dcm")
        structures = read_rtstruct(rtstruct, load_volume(tmp_path / name))
        assert structures["GTV-1"].volume_cc == pytest.approx(expected, abs=0.01), name
        assert any("placed on the image's" in w and "by nearest plane" in w for w in structures.warnings)


def test_contour_planes_are_regular_only_when_each_lies_on_one_spacing_or_a_multiple():
    flat = [np.full(4, z) for z in (-1.0, 2.0, 5.0, 11.0, 14.0)]  # one plane missing: a multiple
    drawn = regular_planes(flat)
    assert drawn == DrawnPlanes(-1.0, 3.0, 6)
    np.testing.assert_array_equal(
        drawn.nearest(np.array([-2.6, -2.5, 0.5, 0.4, 15.4, 15.6])), [-1, 0, 1, 0, 5, -1]
    )
    assert regular_planes([z + np.array([0, 0, 0, 0.3]) for z in flat]) is None  # not planar
    assert regular_planes([z + 0.3 * (i % 2) for i, z in enumerate(flat)]) is None  # off the planes
    assert regular_planes(flat[:1]) is None
