"""DICOM-SEG export and import through highdicom: exact masks, names, types, colours, references."""

import numpy as np
import pydicom
import pytest
from support.dicom_factory import ct_phantom, write_ct_series
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
