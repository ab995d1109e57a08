"""DICOM-SEG export and import through highdicom: exact masks, names, types, colours, references."""

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from support.dicom_factory import (
    ct_phantom,
    tilted_positions,
    write_ct_series,
    write_enhanced_ct,
    write_latin1_ct_series,
)
from support.rtstruct_checks import dciodvfy_errors

from planning.errors import DelineoError, GeometryError
from planning.imageio import load_volume
from planning.seg import read_seg, write_seg
from planning.structure_io import load_structures, save_structures
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((10, 32, 36)), spacing_xyz=(0.8, 0.8, 2.5))
    volume = load_volume(folder)
    grid = volume.grid
    z, y, x = np.indices(grid.shape)
    ball = (z - 5) ** 2 * 9 + (y - 16) ** 2 + (x - 18) ** 2 <= 64
    structures = StructureSet(grid, volume.frame_of_reference_uid, "Seg test")
    structures.add(
        Structure(
            "PTV_7000",
            Mask.from_full(grid, ball),
            (0, 128, 255),
            RoiType.PTV,
            GenerationAlgorithm.SEMIAUTOMATIC,
        )
    )
    structures.add(Structure("Parotid_L", Mask.from_full(grid, ball & (x < 18)), (255, 128, 255)))  # overlaps
    structures.add(
        Structure(
            "Body", Mask.from_full(grid, y > 3), (0, 255, 0), RoiType.EXTERNAL, GenerationAlgorithm.AUTOMATIC
        )
    )
    structures.add(Structure("Nothing", Mask(grid)))
    return folder, volume, structures


def test_seg_round_trip_is_exact(case, tmp_path):
    folder, volume, structures = case
    path = tmp_path / "structures.seg.dcm"
    warnings = save_structures(structures, volume, path)
    assert warnings == ["Nothing: empty, left out of the SEG"]
    assert dciodvfy_errors(path) == []
    back = load_structures(path, volume)
    assert back.names() == ["PTV_7000", "Parotid_L", "Body"]
    for structure in back:
        original = structures[structure.name]
        np.testing.assert_array_equal(structure.mask.full(), original.mask.full())
        assert structure.roi_type == original.roi_type
        assert structure.color == original.color
        assert structure.algorithm == original.algorithm


def test_seg_references_the_images_and_copies_patient_and_study(case, tmp_path):
    folder, volume, structures = case
    path = tmp_path / "refs.seg.dcm"
    write_seg(structures, volume, path)
    seg = pydicom.dcmread(path)
    image = pydicom.dcmread(sorted(folder.iterdir())[0])
    for keyword in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert seg.get(keyword) == image.get(keyword)
    assert seg.Manufacturer == "Delineo"
    referenced = {
        item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {ref.sop_instance_uid for ref in volume.slices}


def test_seg_reading_selects_and_refuses_clearly(case, tmp_path):
    folder, volume, structures = case
    path = tmp_path / "select.seg.dcm"
    write_seg(structures, volume, path)
    assert read_seg(path, volume, names=["body"]).names() == ["Body"]
    with pytest.raises(DelineoError, match="no segment named Liver"):
        read_seg(path, volume, names=["Liver"])
    other_folder = tmp_path / "other"
    write_ct_series(other_folder, ct_phantom((10, 32, 36)))
    with pytest.raises(GeometryError, match="frame of reference"):
        read_seg(path, load_volume(other_folder))


@pytest.mark.parametrize("gaps", [False, True])
def test_seg_is_what_highdicom_writes_for_the_same_structures(case, tmp_path, gaps):
    # the SEG is built one frame at a time; highdicom, given the images and every segment's
    # planes in one array, writes the same file but for its UIDs, times and its own credit.
    # With gaps: planes where no structure has voxels (left out of the position dimension), and
    # a structure on planes 2, 3 and 7 only
    import highdicom as hd

    folder, volume, structures = case
    if gaps:
        gappy = np.zeros(volume.grid.shape, bool)
        gappy[[2, 3, 7], 5:9, 5:12] = True
        structures = StructureSet(volume.grid, volume.frame_of_reference_uid, "Seg test")
        structures.add(Structure("Gappy", Mask.from_full(volume.grid, gappy)))
        structures.add(Structure("Parotid_L", case[2]["Parotid_L"].mask))
    drawn = [s for s in structures if not s.mask.is_empty]
    ours = tmp_path / "ours.seg.dcm"
    write_seg(structures, volume, ours)
    by_uid = {image.SOPInstanceUID: image for image in map(pydicom.dcmread, sorted(folder.iterdir()))}
    images = [by_uid[ref.sop_instance_uid] for ref in volume.slices]
    pixels = np.stack([s.mask.full() for s in drawn], axis=-1)
    theirs = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription.from_dataset(d) for d in pydicom.dcmread(ours).SegmentSequence
        ],
        series_instance_uid=pydicom.uid.generate_uid(),
        series_number=1,
        sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1,
        manufacturer="Delineo",
        manufacturer_model_name="Delineo",
        software_versions=pydicom.dcmread(ours).SoftwareVersions,
        device_serial_number="0",
        content_label="SEG_TEST",
        content_description="Delineo structures",
        series_description="Delineo segmentation",
    )
    theirs_file = tmp_path / "theirs.seg.dcm"
    theirs.save_as(theirs_file)
    mine, theirs = pydicom.dcmread(ours), pydicom.dcmread(theirs_file)
    own = [
        "SOPInstanceUID",
        "SeriesInstanceUID",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "ContentDate",
    ]
    own += ["ContentTime", "ContributingEquipmentSequence", "DimensionOrganizationSequence"]
    for dataset in (mine, theirs):
        for keyword in own:
            dataset.pop(keyword, None)
        for dimension in dataset.DimensionIndexSequence:
            del dimension.DimensionOrganizationUID
    assert mine.to_json_dict() == theirs.to_json_dict()
    assert mine.SegmentsOverlap == ("NO" if gaps else "YES")  # Parotid_L lies inside PTV_7000


def test_seg_covers_the_images_only_when_planes_were_interpolated_on_loading(tmp_path):
    folder = tmp_path / "gap"
    hu = ct_phantom((12, 40, 40))
    kept = [k for k in range(12) if k != 6]  # slice 6 missing: interpolated on loading
    positions = [(-20.0, -18.0, -15.0 + 2.5 * k) for k in kept]
    write_ct_series(folder, hu[kept], positions=positions, spacing_xyz=(1.0, 1.0, 2.5))
    volume = load_volume(folder)
    assert volume.slices[6] is None
    k, j, i = np.indices(volume.grid.shape)
    ball = (i - 20) ** 2 + (j - 20) ** 2 + ((k - 6) * 2.5) ** 2 <= 144
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Ball", Mask.from_full(volume.grid, ball)))
    structures.add(Structure("Speck", Mask.from_full(volume.grid, (k == 6) & (j == 20) & (i == 20))))
    path = tmp_path / "gap.seg.dcm"
    warnings = write_seg(structures, volume, path)
    assert "Speck: voxels only on interpolated planes, left out of the SEG" in warnings
    assert dciodvfy_errors(path) == []
    back = read_seg(path, volume)
    assert back.names() == ["Ball"]
    np.testing.assert_array_equal(back["Ball"].mask.full()[kept], ball[kept])
    # the interpolated plane is rebuilt from its neighbours, as an RTSTRUCT's is
    overlap = (back["Ball"].mask.full()[6] & ball[6]).sum()
    assert 2 * overlap / (back["Ball"].mask.full()[6].sum() + ball[6].sum()) >= 0.95
    only_speck = StructureSet(volume.grid, volume.frame_of_reference_uid)
    only_speck.add(Structure("Speck", structures["Speck"].mask))
    with pytest.raises(DelineoError, match="no structure has any voxel on the images"):
        write_seg(only_speck, volume, path)


def test_seg_of_an_enhanced_multiframe_ct_references_its_frames(tmp_path):
    path = tmp_path / "enhanced.dcm"
    write_enhanced_ct(path, ct_phantom((5, 24, 28)))
    volume = load_volume(path)
    k, j, i = np.indices(volume.grid.shape)
    block = (k >= 1) & (k <= 3) & (j > 5) & (j < 15) & (i > 4) & (i < 20)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Block", Mask.from_full(volume.grid, block)))
    out = tmp_path / "block.seg.dcm"
    write_seg(structures, volume, out)
    assert dciodvfy_errors(out) == []
    seg = pydicom.dcmread(out)
    frames = [
        item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber
        for item in seg.PerFrameFunctionalGroupsSequence
    ]
    assert sorted(frames) == sorted(volume.slices[k].frame for k in (1, 2, 3))
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 1  # one image, five frames
    np.testing.assert_array_equal(read_seg(out, volume)["Block"].mask.full(), block)


def test_seg_takes_any_label_and_names(case, tmp_path):
    folder, volume, structures = case
    named = StructureSet(volume.grid, volume.frame_of_reference_uid, "Plan 2 — Müller/Jürgen")
    named.add(Structure("Läsion 1", structures["PTV_7000"].mask, roi_type=RoiType.GTV))
    path = tmp_path / "named.seg.dcm"
    write_seg(named, volume, path)
    assert dciodvfy_errors(path) == []
    assert pydicom.dcmread(path).ContentLabel == "PLAN_2___M_LLER_"
    assert read_seg(path, volume).names() == ["Läsion 1"]


def test_seg_keeps_every_rt_roi_type(case, tmp_path):
    # the coded segmented property says organ, target or body; the rest travels in the segment
    # description, so a BOLUS or SUPPORT does not come back as an ORGAN
    folder, volume, structures = case
    typed = StructureSet(volume.grid, volume.frame_of_reference_uid)
    mask = structures["PTV_7000"].mask
    for roi_type in RoiType:
        typed.add(
            Structure(f"S_{roi_type.value}", mask, roi_type=roi_type, description=f"made as {roi_type}")
        )
    path = tmp_path / "types.seg.dcm"
    write_seg(typed, volume, path)
    back = read_seg(path, volume)
    assert {s.name: s.roi_type for s in back} == {s.name: s.roi_type for s in typed}
    assert {s.name: s.description for s in back} == {s.name: s.description for s in typed}  # kept too


def test_fractional_seg_of_another_program_is_read_from_half(case, tmp_path):
    import highdicom as hd

    folder, volume, structures = case
    images = sorted(
        (pydicom.dcmread(p) for p in folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2])
    )
    fractions = np.zeros((len(images), *volume.grid.shape[1:]), np.float32)
    fractions[4, 10:20, 10:20] = 0.3
    fractions[5, 10:20, 10:20] = 0.7
    fractions[6, 10:15, 10:20] = 1.0
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=fractions,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="Probable",
                segmented_property_category=codes.SCT.AnatomicalStructure,
                segmented_property_type=codes.SCT.Organ,
                algorithm_type="AUTOMATIC",
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="Other", family=codes.DCM.ArtificialIntelligence, version="1"
                ),
            )
        ],
        series_instance_uid=pydicom.uid.generate_uid(),
        series_number=1,
        sop_instance_uid=pydicom.uid.generate_uid(),
        instance_number=1,
        manufacturer="Other",
        manufacturer_model_name="Other",
        software_versions="1",
        device_serial_number="1",
    )
    path = tmp_path / "fractional.seg.dcm"
    seg.save_as(path)
    expected = np.zeros(volume.grid.shape, bool)
    z = {float(d.ImagePositionPatient[2]): i for i, d in enumerate(images)}
    for k, ref in enumerate(volume.slices):
        expected[k] = fractions[z[float(ref.position_xyz[2])]] >= 0.5
    np.testing.assert_array_equal(read_seg(path, volume)["Probable"].mask.full(), expected)


def test_seg_on_slightly_irregular_slices_reads_back(tmp_path):
    # slice gaps varying by up to 2 % (the loader keeps such a stack as it is; highdicom's
    # volume reconstruction refuses more than 1 %): frames go back onto their own planes
    folder = tmp_path / "irregular"
    steps = [0.0, 3.0, 6.05, 9.0, 11.95, 15.0, 18.06, 21.0]
    write_ct_series(folder, ct_phantom((8, 30, 34)), positions=[(-10.0, -12.0, z) for z in steps])
    volume = load_volume(folder)
    assert volume.grid.shape[0] == 8 and all(volume.slices)
    k, j, i = np.indices(volume.grid.shape)
    blob = (k >= 1) & (k <= 6) & ((j - 15) ** 2 + (i - 17) ** 2 <= 40 - 4 * (k - 3) ** 2)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("Blob", Mask.from_full(volume.grid, blob)))
    path = tmp_path / "irregular.seg.dcm"
    write_seg(structures, volume, path)
    np.testing.assert_array_equal(read_seg(path, volume)["Blob"].mask.full(), blob)


def test_seg_of_a_gantry_tilted_series_has_a_frame_on_every_image(tmp_path):
    folder = tmp_path / "tilt"
    write_ct_series(folder, ct_phantom((6, 32, 32)), positions=tilted_positions(6))
    volume = load_volume(folder)
    box = np.zeros(volume.grid.shape, bool)
    box[1:5, 5:20, 5:20] = True
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("GTV", Mask.from_full(volume.grid, box)))
    path = tmp_path / "tilt.seg.dcm"
    assert write_seg(structures, volume, path) == []
    assert dciodvfy_errors(path) == []
    frames = pydicom.dcmread(path).PerFrameFunctionalGroupsSequence
    sources = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID for f in frames}
    assert sources == {volume.slices[k].sop_instance_uid for k in range(1, 5)}
    np.testing.assert_array_equal(read_seg(path, volume)["GTV"].mask.full(), box)


def test_seg_declares_latin1_text_copied_from_the_images(tmp_path):
    folder = tmp_path / "latin1"
    write_latin1_ct_series(folder, ct_phantom((4, 32, 32)))
    volume = load_volume(folder)
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    structures.add(Structure("GTV", Mask.from_full(volume.grid, np.ones(volume.grid.shape, bool))))
    path = tmp_path / "latin1.seg.dcm"
    write_seg(structures, volume, path)
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert (ds.SpecificCharacterSet, str(ds.ReferringPhysicianName), ds.StudyID) == (
        "ISO_IR 192",
        "Müller^Jürgen",
        "Ä1",
    )


def test_seg_made_on_a_thicker_reconstruction_is_resampled_not_striped(tmp_path):
    # same scan, same frame of reference: a SEG made on the 3 mm images, read onto the 1 mm ones,
    # lies on every third plane; its frames are not the 1 mm images', so it is resampled
    from pydicom.uid import generate_uid

    frame_of_reference, study = generate_uid(), generate_uid()
    hu = ct_phantom((30, 32, 36))
    common = {"frame_of_reference_uid": frame_of_reference, "study_uid": study}
    write_ct_series(tmp_path / "thin", hu, spacing_xyz=(0.8, 0.8, 1.0), **common)
    write_ct_series(tmp_path / "thick", hu[::3], spacing_xyz=(0.8, 0.8, 3.0), **common)
    thin, thick = load_volume(tmp_path / "thin"), load_volume(tmp_path / "thick")
    z, y, x = np.indices(thick.grid.shape)
    ball = (z - 5) ** 2 * 9 + (y - 16) ** 2 + (x - 18) ** 2 <= 64
    structures = StructureSet(thick.grid, thick.frame_of_reference_uid)
    structures.add(Structure("GTV", Mask.from_full(thick.grid, ball)))
    write_seg(structures, thick, tmp_path / "thick.seg.dcm")
    planes = read_seg(tmp_path / "thick.seg.dcm", thin)["GTV"].mask.full().any(axis=(1, 2))
    assert np.flatnonzero(planes).tolist() == list(range(8, 23))  # 3 mm planes 3–7, nearest voxel
