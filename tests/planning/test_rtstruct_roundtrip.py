"""Mask → RTSTRUCT → mask on analytic shapes, checked by dciodvfy, plastimatch and the analytic truth.

Every kind of file the writer produces (plain, keyhole, simplified, with holes, oblique, MR,
interpolated planes) goes through dciodvfy. Volumes are compared with the analytic volume, and
plastimatch (`--xor-contours`) rasterises Delineo's files independently.
"""

import threading

import numpy as np
import pydicom
import pytest
from support.dicom_factory import (
    ct_phantom,
    tilted_positions,
    write_ct_series,
    write_latin1_ct_series,
)
from support.rtstruct_checks import dciodvfy_errors, dice, hd95_mm, on_volume_grid, plastimatch_masks

from planning.errors import Cancelled, DelineoError, GeometryError
from planning.geometry import Grid
from planning.imageio import load_volume
from planning.rtstruct.check import check_rtstruct
from planning.rtstruct.contours import Loops, parents
from planning.rtstruct.reader import read_rtstruct
from planning.rtstruct.writer import write_rtstruct
from planning.structures import GenerationAlgorithm, Mask, PlanarContour, RoiType, Structure, StructureSet

SHAPE = (36, 72, 80)
SPACING = (0.9, 0.9, 2.0)
ORIGIN = (-36.0, -32.0, -35.0)


def analytic_shapes(grid: Grid) -> dict[str, tuple[np.ndarray, float | None]]:
    """Name → (mask sampled at voxel centres, analytic volume in cc or None)."""
    k, j, i = np.indices(grid.shape)
    x, y, z = np.moveaxis(grid.index_to_patient(np.stack([i, j, k], axis=-1).astype(float)), -1, 0)
    r = np.sqrt(x**2 + y**2 + z**2)
    shapes = {
        "Sphere": (r <= 16.0, 4 / 3 * np.pi * 16.0**3 / 1000),
        # Faces half-way between voxel centres: the sampled box is exact (33 × 27 × 10 voxels).
        "Box": (
            (np.abs(x + 0.45) < 14.85) & (np.abs(y + 0.05) < 12.15) & (np.abs(z) < 10),
            29.7 * 24.3 * 20 / 1000,
        ),
        # Axis along x: the 6 mm tube is sampled by 0.9 mm pixels, not only by 2 mm slices.
        "Torus": ((np.sqrt(y**2 + z**2) - 18.0) ** 2 + x**2 <= 6.0**2, 2 * np.pi**2 * 18 * 36 / 1000),
        "FlatRing": ((np.sqrt(x**2 + y**2) - 18.0) ** 2 + z**2 <= 6.0**2, None),  # a hole on every slice
        "Shell": ((r <= 18.0) & (r > 10.0), 4 / 3 * np.pi * (18.0**3 - 10.0**3) / 1000),
        "TwoIslands": (
            (np.sqrt((x + 18) ** 2 + y**2 + z**2) <= 9) | (np.sqrt((x - 18) ** 2 + y**2 + z**2) <= 9),
            None,
        ),
    }
    island = r <= 12.0
    island[30, 60, 70] = True  # a one-voxel island far from the sphere: a speck, dropped
    shapes["OneVoxelIsland"] = (island, None)
    # Centred on a voxel, 8 mm (4 slices) to its poles: each pole is one voxel (0.4 mm² traced).
    px, py, pz = grid.index_to_patient(np.array([40.0, 36.0, 18.0]))
    shapes["PolarSphere"] = (np.sqrt((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2) <= 8.02, None)
    edge = np.zeros(grid.shape, bool)
    edge[:8, 10:40, :12] = True  # touches the first slice and the first column
    shapes["EdgeBox"] = (edge, None)
    return shapes


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom(SHAPE), spacing_xyz=SPACING, origin_xyz=ORIGIN)
    volume = load_volume(folder)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Phantom")
    truth = analytic_shapes(volume.grid)
    for name, (mask, _) in truth.items():
        structures.add(
            Structure(name, Mask.from_full(volume.grid, mask), algorithm=GenerationAlgorithm.AUTOMATIC)
        )
    return folder, volume, structures, truth, tmp_path_factory.mktemp("out")


def contour_volume_cc(path, name: str, spacing_z: float) -> float:
    """Volume a planning system computes from the contours: signed areas × slice spacing."""
    dataset = pydicom.dcmread(path)
    number = next(r.ROINumber for r in dataset.StructureSetROISequence if r.ROIName == name)
    roi = next(r for r in dataset.ROIContourSequence if r.ReferencedROINumber == number)
    total = 0.0
    for contour in roi.ContourSequence:
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)[:, :2]
        x, y = points[:, 0], points[:, 1]
        total += 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return abs(total) * spacing_z / 1000


@pytest.mark.parametrize(
    "kind, options",
    [("plain", {}), ("keyhole", {"keyhole": True}), ("simplified", {"simplify_mm": 0.3})],
)
def test_round_trip_on_analytic_shapes(case, kind, options):
    folder, volume, structures, truth, out = case
    path = out / f"{kind}.dcm"
    warnings = write_rtstruct(structures, volume, path, **options)
    assert dciodvfy_errors(path) == []
    assert [w for w in warnings if "island" in w] == [
        "OneVoxelIsland: 1 island(s) dropped (nothing of it touches them on the neighbouring slices), "
        "each under 1 mm² (slice 31 of 36)"
    ]  # the speck, dropped and named; the sphere's one-voxel poles are kept
    back = read_rtstruct(path, volume)
    assert back.names() == structures.names()
    half_diagonal = 0.5 * float(np.linalg.norm(SPACING))
    for name, (mask, true_cc) in truth.items():
        got = back[name].mask.full()
        assert dice(got, mask) >= 0.99, name
        assert hd95_mm(got, mask, volume.grid.spacing_zyx) <= half_diagonal, name
        if kind != "simplified" and name != "OneVoxelIsland":
            np.testing.assert_array_equal(got, mask, err_msg=name)  # exact, not just close
        if true_cc is not None and true_cc >= 10:
            assert back[name].volume_cc == pytest.approx(true_cc, rel=0.01), name
            assert contour_volume_cc(path, name, SPACING[2]) == pytest.approx(true_cc, rel=0.01), name


def test_one_voxel_poles_of_a_sphere_keep_its_first_and_last_slices(case):
    """The one-voxel poles of a drawn sphere (0.4 mm² traced, under the 1 mm² speck threshold)
    were dropped as islands: planning systems showed the GTV a slice shorter at each end. They
    touch the sphere on the next slice, so they are kept; read back by Delineo and plastimatch."""
    folder, volume, structures, truth, out = case
    sphere = truth["PolarSphere"][0]
    assert sphere[22].sum() == sphere[14].sum() == 1  # the poles are one voxel each
    path = out / "poles.dcm"
    subset = StructureSet(volume.grid, volume.frame_of_reference_uid, "Poles")
    subset.add(Structure("GTV_sphere", Mask.from_full(volume.grid, sphere), roi_type=RoiType.GTV))
    assert write_rtstruct(subset, volume, path) == []
    assert dciodvfy_errors(path) == []
    ours = read_rtstruct(path, volume)["GTV_sphere"].mask.full()
    np.testing.assert_array_equal(ours, sphere)
    theirs = on_volume_grid(plastimatch_masks(path, folder, out / "poles")["GTV_sphere"], volume)
    slices = [np.flatnonzero(mask.any(axis=(1, 2))) for mask in (sphere, ours, theirs)]
    assert [(s[0], s[-1]) for s in slices] == [(14, 22)] * 3
    assert theirs[14].sum() == theirs[22].sum() == 1
    report = check_rtstruct(path, volume, run_dciodvfy=False)
    assert [(f.severity, f.roi, f.message) for f in report.findings] == [
        (
            "note",
            "GTV_sphere",
            "2 contour(s) enclose less than 1 mm², about one voxel: usual at a structure's first and "
            "last slices or across a thin part, a stray speck elsewhere",
        )
    ]  # the poles are not alarmed about


def test_a_small_island_in_a_small_hole_is_covered_by_filling_the_hole(case):
    """An island that touches the structure on the next slice is kept, but not inside a hole that
    is filled: written alone, the even-odd rule would cut it out of the filled hole."""
    folder, volume, _, _, out = case
    box = np.zeros(volume.grid.shape, bool)
    box[10:14, 20:30, 20:30] = True
    box[12, 23:26, 23:26] = False  # a 3 × 3 hole (6.9 mm² traced) …
    box[12, 24, 24] = True  # … with a voxel in it, touching the box on the slices next to it
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Nested")
    structures.add(Structure("Box", Mask.from_full(volume.grid, box)))
    path = out / "nested.dcm"
    notes = []
    assert write_rtstruct(structures, volume, path, min_island_mm2=10.0, notes=notes) == []
    assert notes == [
        "holes under 10 mm² filled in 1 structure(s) (Box); a hole that small changes no structure's extent"
    ]
    filled = box.copy()
    filled[12, 23:26, 23:26] = True
    np.testing.assert_array_equal(read_rtstruct(path, volume)["Box"].mask.full(), filled)


def test_small_holes_filled_are_one_note_for_all_structures_and_specks_a_warning_each(case):
    """On the benchmark's 117 organs, 56 got a warning each for one-voxel pits filled ('N hole(s)
    filled, each under 1 mm²'), burying the warnings that matter. Filling them changes no extent:
    one note names the structures; a dropped speck is still a warning of its own."""
    folder, volume, _, _, out = case
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Pits")
    for name, z in (("Pitted", 10), ("Speckled", 20)):
        box = np.zeros(volume.grid.shape, bool)
        box[z : z + 4, 20:30, 20:30] = True
        box[z + 2, 24, 24] = False  # a one-voxel hole, 0.5 mm² traced
        if name == "Speckled":
            box[z + 2, 5, 5] = True  # a one-voxel speck away from the box
        structures.add(Structure(name, Mask.from_full(volume.grid, box)))
    notes = []
    assert write_rtstruct(structures, volume, out / "pits.dcm", notes=notes) == [
        "Speckled: 1 island(s) dropped (nothing of it touches them on the neighbouring slices), each "
        "under 1 mm² (slice 23 of 36)"
    ]
    assert notes == [
        "holes under 1 mm² filled in 2 structure(s) (Pitted, Speckled); a hole that small changes no "
        "structure's extent"
    ]


def test_simplifying_that_changes_a_volume_by_more_than_2_percent_says_so(case):
    """Douglas–Peucker changed volumes without a word (a small GTV −27.8 % at 2 mm): a change of
    more than 2 % is a warning with the volumes before and after, as the file is read back."""
    folder, volume, _, truth, out = case
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Simplified")
    notched = np.zeros(volume.grid.shape, bool)
    notched[10:14, 1:71, 5:75] = True
    for start in (5, 20, 35, 50):  # 1 pixel deep, 10 wide: a simplified outline runs over them
        notched[10:14, 1, 5 + start : 15 + start] = notched[10:14, 70, 5 + start : 15 + start] = False
        notched[10:14, 1 + start : 11 + start, 5] = notched[10:14, 1 + start : 11 + start, 74] = False
    for name, mask in (("Notched", notched), ("Box", truth["Box"][0])):
        structures.add(Structure(name, Mask.from_full(volume.grid, mask)))
    path = out / "simplified_2mm.dcm"
    warnings = write_rtstruct(structures, volume, path, simplify_mm=2.0)
    back = read_rtstruct(path, volume)
    before, after = structures["Notched"].volume_cc, back["Notched"].volume_cc
    assert after > 1.02 * before
    change = f"({100 * (after / before - 1):+.1f} %)"
    assert warnings == [
        f"Notched: simplifying its contours (2 mm) changes its volume from {before:.3f} to {after:.3f} cc "
        f"{change}; export it without simplifying to keep its volume"
    ]
    assert back["Box"].volume_cc == structures["Box"].volume_cc


def test_simplifying_keeps_small_targets_and_still_simplifies_large_outlines(case):
    """At 2 mm a GTV 12 mm across lost 27.8 % of its volume and its PTV 5.8 % (Douglas–Peucker
    chords cut convex outlines inwards): each contour's tolerance is now at most 5 % of its size."""
    from planning.margins import expand

    folder, volume, _, _, out = case
    grid = volume.grid
    y, x = np.indices(grid.shape[1:])
    radius = np.hypot((y - 36) * SPACING[1], (x - 40) * SPACING[0])  # mm, in each plane
    gtv = np.zeros(grid.shape, bool)
    gtv[16:19] = radius <= 4.5
    gtv[17] = radius <= 6.0
    gtv = Mask.from_full(grid, gtv)
    structures = StructureSet(grid, volume.frame_of_reference_uid, "Simplified")
    for name, mask in (
        ("GTV", gtv),
        ("PTV", expand(gtv, 5)),
        ("External", Mask.from_full(grid, np.repeat([radius <= 30], grid.shape[0], axis=0))),
    ):
        structures.add(Structure(name, mask))
    plain, simplified = out / "unsimplified.dcm", out / "simplified_small.dcm"
    write_rtstruct(structures, volume, plain)
    assert write_rtstruct(structures, volume, simplified, simplify_mm=2.0) == []
    back = read_rtstruct(simplified, volume)
    for name in ("GTV", "PTV", "External"):
        assert back[name].volume_cc == pytest.approx(structures[name].volume_cc, rel=0.02), name
    points = {
        path: [
            sum(c.NumberOfContourPoints for c in roi.ContourSequence)
            for roi in pydicom.dcmread(path).ROIContourSequence
        ]
        for path in (plain, simplified)
    }
    assert points[simplified][2] < 0.2 * points[plain][2]  # the outline 60 mm across: 1.5 mm


def test_plastimatch_reads_delineo_files_like_delineo(case):
    folder, volume, structures, truth, out = case
    for kind, options in (("pm_plain", {}), ("pm_keyhole", {"keyhole": True})):
        path = out / f"{kind}.dcm"
        write_rtstruct(structures, volume, path, **options)
        ours = read_rtstruct(path, volume)
        theirs = plastimatch_masks(path, folder, out / kind)
        for structure in ours:
            other = on_volume_grid(theirs[structure.name], volume)
            assert dice(structure.mask.full(), other) >= 0.98, (kind, structure.name)


def test_imported_contours_are_keyholed_too(case):
    """Structures read from a file and not edited keep their own contours; asked for keyholes,
    their holes are joined too (the option was ignored for them), covering the same voxels."""
    folder, volume, structures, truth, out = case
    write_rtstruct(structures, volume, out / "separate_holes.dcm")
    imported = read_rtstruct(out / "separate_holes.dcm", volume)
    assert all(structure.contours for structure in imported)  # kept as read, not traced again
    path = out / "imported_keyholed.dcm"
    warnings = write_rtstruct(imported, volume, path, keyhole=True)
    assert not any("keyholed" in w for w in warnings)
    assert dciodvfy_errors(path) == []
    dataset = pydicom.dcmread(path)
    for name in ("FlatRing", "Shell"):  # a hole on every plane; a hole on the middle ones
        number = next(r.ROINumber for r in dataset.StructureSetROISequence if r.ROIName == name)
        roi = next(r for r in dataset.ROIContourSequence if r.ReferencedROINumber == number)
        points = [np.asarray(c.ContourData, float).reshape(-1, 3) for c in roi.ContourSequence]
        loops = Loops.from_list(
            [p[:, :2] for p in points], [round((p[0, 2] - ORIGIN[2]) / SPACING[2]) for p in points]
        )
        assert (parents(loops) == -1).all(), f"{name}: a hole is still a contour of its own"
    back = read_rtstruct(path, volume)
    for structure in imported:
        np.testing.assert_array_equal(back[structure.name].mask.full(), structure.mask.full(), structure.name)
    theirs = plastimatch_masks(path, folder, out / "pm_imported_keyholed")
    for name in ("FlatRing", "Shell"):
        assert dice(on_volume_grid(theirs[name], volume), back[name].mask.full()) >= 0.98, name
    ring = truth["FlatRing"][0]
    assert contour_volume_cc(path, "FlatRing", SPACING[2]) == pytest.approx(
        ring.sum() * 0.9 * 0.9 * 2 / 1000, rel=0.01
    )


def test_file_content_follows_the_planning_system_rules(case):
    folder, volume, structures, truth, out = case
    structures["Sphere"].roi_type = RoiType.GTV
    path = out / "rules.dcm"
    write_rtstruct(structures, volume, path, min_island_mm2=0.0, label="A label longer than 16")
    ds = pydicom.dcmread(path)
    image = pydicom.dcmread(sorted(folder.iterdir())[0])
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyID", "FrameOfReferenceUID"):
        assert ds.get(keyword) == image.get(keyword), keyword
    assert ds.Manufacturer == "Delineo" and ds.SoftwareVersions and ds.StructureSetDate
    assert ds.StructureSetLabel == "A label longer t" and ds.StructureSetName == "A label longer than 16"
    assert ds.SOPInstanceUID != image.SOPInstanceUID and ds.SeriesInstanceUID != image.SeriesInstanceUID
    chain = (
        ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    )
    assert chain.SeriesInstanceUID == image.SeriesInstanceUID
    listed = {item.ReferencedSOPInstanceUID for item in chain.ContourImageSequence}
    assert listed == {ref.sop_instance_uid for ref in volume.slices}
    numbers = [roi.ROINumber for roi in ds.StructureSetROISequence]
    assert len(set(numbers)) == len(numbers) == len(structures)
    assert [o.ReferencedROINumber for o in ds.RTROIObservationsSequence] == numbers
    types = {o.ReferencedROINumber: o.RTROIInterpretedType for o in ds.RTROIObservationsSequence}
    assert types[numbers[0]] == "GTV" and all(types.values())
    assert {roi.ROIGenerationAlgorithm for roi in ds.StructureSetROISequence} == {"AUTOMATIC"}
    position_of = {ref.sop_instance_uid: ref.position_xyz[2] for ref in volume.slices}
    for roi in ds.ROIContourSequence:
        assert len(roi.ROIDisplayColor) == 3
        for contour in roi.ContourSequence:
            raw = contour.get_item(0x30060050).value
            assert max(len(v.strip()) for v in raw.split(b"\\")) <= 16
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            assert contour.NumberOfContourPoints == len(points) >= 3
            assert not np.allclose(points[0], points[-1])
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            uid = contour.ContourImageSequence[0].ReferencedSOPInstanceUID
            np.testing.assert_allclose(points[:, 2], position_of[uid], atol=1e-3)
    # Holes: the shell's middle planes hold an outer contour and a hole, filled even-odd.
    shell = next(r for r in ds.ROIContourSequence if r.ReferencedROINumber == structures["Shell"].number)
    per_image = {}
    for contour in shell.ContourSequence:
        uid = contour.ContourImageSequence[0].ReferencedSOPInstanceUID
        per_image[uid] = per_image.get(uid, 0) + 1
    assert max(per_image.values()) == 2


def test_names_are_made_unique_ignoring_case_and_numbers_kept(case):
    folder, volume, structures, truth, out = case
    grid = volume.grid
    twins = StructureSet(grid, volume.frame_of_reference_uid)
    twins.add(Structure("Liver", structures["Sphere"].mask.copy()))
    twins.add(Structure("LIVER", structures["Box"].mask.copy()))
    twins.add(Structure("Body", structures["Box"].mask.copy(), roi_type=RoiType.EXTERNAL))
    twins.add(Structure("External", structures["Box"].mask.copy(), roi_type=RoiType.EXTERNAL))
    twins.add(Structure("Nothing", Mask(grid)))
    path = out / "twins.dcm"
    warnings = write_rtstruct(twins, volume, path)
    names = [roi.ROIName for roi in pydicom.dcmread(path).StructureSetROISequence]
    assert names == ["Liver", "LIVER_2", "Body", "External", "Nothing"]
    assert any("EXTERNAL" in w for w in warnings) and any("Nothing: empty" in w for w in warnings)
    assert dciodvfy_errors(path) == []
    back = read_rtstruct(path, volume)
    assert back["Nothing"].mask.is_empty and back["LIVER_2"].volume_cc == pytest.approx(
        twins["LIVER"].volume_cc
    )


def test_markers_are_written_and_read_back_without_filling(case):
    folder, volume, structures, truth, out = case
    grid = volume.grid
    markers = StructureSet(grid, volume.frame_of_reference_uid)
    point = grid.index_to_patient(np.array([[40.0, 36.0, 18.0]]))
    markers.add(
        Structure(
            "Iso",
            Mask(grid),
            roi_type=RoiType.ISOCENTER,
            markers=[PlanarContour(point, "POINT")],
        )
    )
    path = out / "marker.dcm"
    write_rtstruct(markers, volume, path)
    assert dciodvfy_errors(path) == []
    back = read_rtstruct(path, volume)["Iso"]
    assert back.mask.is_empty and back.roi_type == RoiType.ISOCENTER
    assert len(back.markers) == 1 and back.markers[0].geometric_type == "POINT"
    np.testing.assert_allclose(back.markers[0].points, point, atol=1e-3)


def test_progress_and_cancel(case):
    folder, volume, structures, truth, out = case
    calls = []
    write_rtstruct(structures, volume, out / "progress.dcm", on_progress=lambda *a: calls.append(a))
    assert calls[0] == ("Writing RTSTRUCT", 0, len(structures)) and calls[-1][1] == len(structures)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        write_rtstruct(structures, volume, out / "cancelled.dcm", cancel=cancel)
    assert not (out / "cancelled.dcm").exists()


def test_refuses_volumes_it_cannot_reference(case, tmp_path):
    folder, volume, structures, truth, out = case
    from planning.volume import Volume

    bare = Volume(volume.array, volume.grid)  # e.g. a NIfTI: no images to reference
    with pytest.raises(GeometryError, match="not loaded from a DICOM series"):
        write_rtstruct(structures, bare, tmp_path / "x.dcm")
    other = StructureSet(volume.grid.with_shape((10, 10, 10)), volume.frame_of_reference_uid)
    with pytest.raises(GeometryError, match="not the image grid"):
        write_rtstruct(other, volume, tmp_path / "x.dcm")
    foreign = StructureSet(volume.grid, "1.2.3.4")
    with pytest.raises(GeometryError, match="one frame of reference"):
        write_rtstruct(foreign, volume, tmp_path / "x.dcm")
    with pytest.raises(DelineoError, match="no structure to write"):  # dciodvfy: empty Type 1 sequences
        write_rtstruct(StructureSet(volume.grid, volume.frame_of_reference_uid), volume, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def _rotation(degrees_x: float, degrees_y: float, degrees_z: float) -> np.ndarray:
    ax, ay, az = np.radians([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_oblique_series_contours_lie_in_each_image_plane(tmp_path):
    rotation = _rotation(20, -15, 30)
    orientation = (*rotation[:, 0], *rotation[:, 1])
    folder = tmp_path / "oblique"
    write_ct_series(folder, ct_phantom((16, 40, 44)), spacing_xyz=(1.1, 1.1, 2.5), orientation=orientation)
    volume = load_volume(folder)
    assert not np.allclose(volume.grid.direction, np.eye(3))
    grid = volume.grid
    k, j, i = np.indices(grid.shape)
    centre = grid.index_to_patient(np.array([22.0, 20.0, 8.0]))
    points = grid.index_to_patient(np.stack([i, j, k], axis=-1).astype(float)) - centre
    r = np.linalg.norm(points, axis=-1)
    structures = StructureSet(grid, volume.frame_of_reference_uid)
    structures.add(Structure("Shell", Mask.from_full(grid, (r <= 14) & (r > 6))))
    path = tmp_path / "oblique.dcm"
    write_rtstruct(structures, volume, path)
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(read_rtstruct(path, volume)["Shell"].mask.full(), (r <= 14) & (r > 6))
    # Independently of Delineo's geometry code: each contour lies in the plane its image's header
    # defines, and filling it on that image (ray casting, even-odd) gives the voxels back.
    images = {}
    for file in folder.iterdir():
        header = pydicom.dcmread(file, stop_before_pixels=True)
        images[header.SOPInstanceUID] = header
    order = sorted(
        images,
        key=lambda uid: float(
            np.dot(
                np.asarray(images[uid].ImagePositionPatient, float), np.cross(rotation[:, 0], rotation[:, 1])
            )
        ),
    )
    filled = {uid: np.zeros(grid.shape[1:], bool) for uid in images}
    for contour in pydicom.dcmread(path).ROIContourSequence[0].ContourSequence:
        header = images[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        origin = np.asarray(header.ImagePositionPatient, float)
        row, column = np.asarray(header.ImageOrientationPatient, float).reshape(2, 3)
        data = np.asarray(contour.ContourData, float).reshape(-1, 3) - origin
        assert np.abs(data @ np.cross(row, column)).max() < 1e-3
        u = data @ row / float(header.PixelSpacing[1])
        v = data @ column / float(header.PixelSpacing[0])
        filled[contour.ContourImageSequence[0].ReferencedSOPInstanceUID] ^= _ray_cast(
            u, v, header.Rows, header.Columns
        )
    stacked = np.stack([filled[uid] for uid in order])
    np.testing.assert_array_equal(stacked, (r <= 14) & (r > 6))


def _ray_cast(u: np.ndarray, v: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Pixel centres inside polygon (u, v) by counting edge crossings of a ray towards +u."""
    centre_v, centre_u = np.mgrid[:rows, :columns].astype(float)
    inside = np.zeros((rows, columns), bool)
    for u0, v0, u1, v1 in zip(u, v, np.roll(u, -1), np.roll(v, -1), strict=True):
        if v0 == v1:
            continue
        spans = (centre_v >= min(v0, v1)) & (centre_v < max(v0, v1))
        crossing = u0 + (centre_v - v0) * (u1 - u0) / (v1 - v0)
        inside ^= spans & (crossing > centre_u)
    return inside


def test_mr_series_with_empty_type2_attributes(tmp_path):
    folder = tmp_path / "mr"
    paths = write_ct_series(folder, ct_phantom((8, 32, 32)), spacing_xyz=(0.8, 0.8, 3.0))
    for path in paths:  # turn the CT into an MR as a scanner that leaves Type 2 values empty writes it
        ds = pydicom.dcmread(path)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.Modality = "MR"
        for keyword in (
            "KVP",
            "RescaleType",
            "StudyID",
            "AccessionNumber",
            "ReferringPhysicianName",
            "PatientSex",
        ):
            if keyword in ds:
                delattr(ds, keyword)
        ds.PatientName = "Müller^Jürgen"
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.save_as(path)
    volume = load_volume(folder)
    assert volume.modality == "MR"
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    box = np.zeros(volume.grid.shape, bool)
    box[2:6, 8:20, 10:24] = True
    structures.add(Structure("Brain", Mask.from_full(volume.grid, box)))
    path = tmp_path / "mr.dcm"
    write_rtstruct(structures, volume, path)
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.StudyID == "" and ds.AccessionNumber == "" and ds.ReferringPhysicianName == ""
    assert str(ds.PatientName) == "Müller^Jürgen" and ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0].ReferencedSOPClassUID == (
        "1.2.840.10008.5.1.4.1.1.4"
    )
    np.testing.assert_array_equal(read_rtstruct(path, volume)["Brain"].mask.full(), box)


def test_interpolated_planes_get_no_contours_and_are_rebuilt_on_reading(tmp_path):
    folder = tmp_path / "gap"
    hu = ct_phantom((12, 40, 40))
    positions = [(-20.0, -18.0, -15.0 + 2.5 * k) for k in range(12) if k != 6]  # slice 6 missing
    write_ct_series(
        folder, hu[[k for k in range(12) if k != 6]], positions=positions, spacing_xyz=(1.0, 1.0, 2.5)
    )
    volume = load_volume(folder)
    assert volume.slices[6] is None and volume.grid.shape[0] == 12
    grid = volume.grid
    k, j, i = np.indices(grid.shape)
    ball = (i - 20) ** 2 + (j - 20) ** 2 + ((k - 6) * 2.5) ** 2 <= 144
    structures = StructureSet(grid, volume.frame_of_reference_uid)
    structures.add(Structure("Ball", Mask.from_full(grid, ball)))
    path = tmp_path / "gap.dcm"
    warnings = write_rtstruct(structures, volume, path)
    assert any("interpolated planes" in w for w in warnings)
    assert dciodvfy_errors(path) == []
    back = read_rtstruct(path, volume)["Ball"].mask.full()
    np.testing.assert_array_equal(
        back[[k for k in range(12) if k != 6]], ball[[k for k in range(12) if k != 6]]
    )
    assert dice(back[6], ball[6]) >= 0.95  # rebuilt between the neighbouring images


def test_contours_on_a_slice_missing_from_the_series_are_kept_not_interpolated_over(tmp_path):
    """Drawn on the whole series, read onto the series less slice 6: plane 6 holds the file's own
    contours (a square only there), not the blend of planes 5 and 7 (397 voxels differed on a lung)."""
    hu = ct_phantom((12, 40, 40))
    paths = write_ct_series(tmp_path / "whole", hu, spacing_xyz=(1.0, 1.0, 2.5))
    volume = load_volume(tmp_path / "whole")
    shape = np.zeros(volume.grid.shape, bool)
    shape[3:10, 10:30, 8:24] = True
    shape[6, 12:20, 28:36] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Box", Mask.from_full(volume.grid, shape)))
    write_rtstruct(structures, volume, tmp_path / "rs.dcm")
    paths[6].unlink()
    gap = load_volume(tmp_path / "whole")
    assert gap.slices[6] is None and gap.grid.shape == volume.grid.shape
    np.testing.assert_array_equal(read_rtstruct(tmp_path / "rs.dcm", gap)["Box"].mask.full(), shape)


def test_derived_structures_read_back_can_be_rebuilt(case):
    """A derived structure's recipe travels in its ROI Description: read back, it is up to date,
    goes stale when a source changes and is rebuilt with those built from it."""
    from planning.derived import derive, rebuild, stale

    folder, volume, structures, truth, out = case
    plan = StructureSet(volume.grid, volume.frame_of_reference_uid)
    plan.add(Structure("GTV", structures["Sphere"].mask.copy(), roi_type=RoiType.GTV))
    plan.add(Structure("BODY", structures["Box"].mask.copy(), roi_type=RoiType.EXTERNAL))
    plan.add(derive({"op": "expand", "source": "GTV", "margins": 5}, plan, name="CTV"))
    plan.add(derive({"op": "expand", "source": "CTV", "margins": 3, "within": "BODY"}, plan, name="PTV"))
    path = out / "derived.dcm"
    write_rtstruct(plan, volume, path)

    back = read_rtstruct(path, volume)
    assert back["PTV"].recipe["within"] == "BODY" and back["CTV"].recipe["source"] == "GTV"
    assert stale(back) == []
    back.set_mask("GTV", Mask.from_full(volume.grid, np.roll(back["GTV"].mask.full(), 3, axis=2)))
    assert stale(back) == ["CTV", "PTV"]  # the PTV through the CTV
    assert rebuild(back) == ["CTV", "PTV"] and stale(back) == []
    assert not (back["PTV"].mask.full() & ~back["BODY"].mask.full()).any()

    # without its sources a derived structure is read as it was drawn, with a warning
    alone = read_rtstruct(path, volume, names=["PTV"])
    assert any("PTV: derived from BODY, CTV" in w for w in alone.warnings)
    assert stale(alone) == ["PTV"]
    assert alone["PTV"].volume_cc == pytest.approx(plan["PTV"].volume_cc, rel=0.02)


@pytest.mark.parametrize("sources, kept", [(24, True), (60, False)])
def test_a_long_recipe_keeps_to_the_roi_description_or_is_said_lost(case, sources, kept):
    """The ROI Description holds 1024 characters: a recipe too long with its summary travels
    alone; one too long by itself is written as a plain structure, with a warning."""
    from planning.derived import derive

    folder, volume, structures, truth, out = case
    plan = StructureSet(volume.grid, volume.frame_of_reference_uid)
    names = [f"Bowel_Loop_Segment_{i:02d}" for i in range(sources)]
    for name in names:
        plan.add(Structure(name, structures["Sphere"].mask.copy()))
    recipe = {"op": "expand", "source": {"op": "union", "sources": names}, "margins": 5}
    plan.add(derive(recipe, plan, name="PRV_Bowel"))
    warnings = write_rtstruct(plan, volume, out / "long.dcm")
    back = read_rtstruct(out / "long.dcm", volume)
    restored = back["PRV_Bowel"].recipe or {}
    assert ({k: v for k, v in restored.items() if k != "built_from"} == recipe) is kept
    assert any("PRV_Bowel: its recipe is too long" in w for w in warnings) is not kept


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # the old-style values written here
def test_old_style_dates_of_the_images_are_written_as_dicom_dates(tmp_path):
    """Images of ACR-NEMA heritage state "1996.06.11" and "14:30:05"; an RTSTRUCT copying them
    as they are fails validation (dciodvfy: bad DA/TM). They are written as 19960611, 143005;
    a value that is no date at all is left empty (unknown)."""
    folder = tmp_path / "ct"
    write_ct_series(folder, ct_phantom((3, 16, 16)))
    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.StudyDate, dataset.StudyTime, dataset.PatientBirthDate = "1996.06.11", "14:30:05", "unknown"
        dataset.save_as(path)
    volume = load_volume(folder)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Body", Mask.from_full(volume.grid, volume.array > -500)))
    write_rtstruct(structures, volume, tmp_path / "rs.dcm")
    written = pydicom.dcmread(tmp_path / "rs.dcm")
    assert (written.StudyDate, written.StudyTime, written.PatientBirthDate) == ("19960611", "143005", "")
    assert dciodvfy_errors(tmp_path / "rs.dcm") == []


def _tilted_series(folder):
    write_ct_series(folder, ct_phantom((6, 32, 32)), positions=tilted_positions(6))
    volume = load_volume(folder)
    assert any("gantry tilt" in w for w in volume.warnings)
    return volume


def test_gantry_tilted_series_gets_contours_on_every_image(tmp_path):
    folder = tmp_path / "tilt"
    volume = _tilted_series(folder)
    grid = volume.grid
    box = np.zeros(grid.shape, bool)
    box[1:5, 5:20, 5:20] = True
    structures = StructureSet(grid, volume.frame_of_reference_uid)
    structures.add(Structure("GTV", Mask.from_full(grid, box)))
    path = tmp_path / "tilt.dcm"
    assert write_rtstruct(structures, volume, path) == []
    assert dciodvfy_errors(path) == []
    # Independently of the writer's plane origins: the contours, carried onto the grid through
    # patient coordinates, enclose exactly the mask, each on the image of its own plane.
    uids = [ref.sop_instance_uid for ref in volume.slices]
    filled = np.zeros(grid.shape, bool)
    for contour in pydicom.dcmread(path).ROIContourSequence[0].ContourSequence:
        index = grid.patient_to_index(np.asarray(contour.ContourData, float).reshape(-1, 3))
        k = int(np.rint(index[:, 2].mean()))
        assert np.abs(index[:, 2] - k).max() < 1e-3
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == uids[k]
        filled[k] ^= _ray_cast(index[:, 0], index[:, 1], *grid.shape[1:])
    np.testing.assert_array_equal(filled, box)
    back = read_rtstruct(path, volume)
    assert back.warnings == []
    np.testing.assert_array_equal(back["GTV"].mask.full(), box)
    theirs = plastimatch_masks(path, folder, tmp_path / "plastimatch")
    assert dice(on_volume_grid(theirs["GTV"], volume), box) >= 0.99


def test_latin1_text_copied_from_the_images_is_declared(tmp_path):
    folder = tmp_path / "latin1"
    write_latin1_ct_series(folder, ct_phantom((4, 32, 32)))
    volume = load_volume(folder)
    box = np.zeros(volume.grid.shape, bool)
    box[1:3, 5:20, 5:20] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("GTV", Mask.from_full(volume.grid, box)))
    path = tmp_path / "latin1.dcm"
    write_rtstruct(structures, volume, path)
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert dciodvfy_errors(path) == []
    assert (str(ds.ReferringPhysicianName), ds.StudyID, ds.AccessionNumber) == (
        "Müller^Jürgen",
        "Ä1",
        "Zürich-7",
    )
