"""load_structures / save_structures: label maps through patient coordinates, RTSTRUCT, SEG."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series

from planning.errors import DelineoError, FormatError, GeometryError
from planning.imageio import load_volume, read_image_file, save_volume
from planning.structure_io import load_structures, save_structures
from planning.structures import GenerationAlgorithm, Mask, Structure, StructureSet
from planning.volume import Volume


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, ct_phantom((6, 24, 28)), spacing_xyz=(1.0, 1.0, 2.0), origin_xyz=(0.0, 0.0, 0.0))
    return folder, load_volume(folder)


def labels_on(volume, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(volume.grid.shape, np.uint8)
    labels[1:5, 4:12, 5:15] = 1
    labels[2:6, 10:20, 12:24] = 2
    labels[rng.random(volume.grid.shape) < 0.01] = 3
    return labels


def test_totalsegmentator_labels_with_flipped_y_land_on_the_ct_grid():
    example = data_path("dicom", "totalseg-example")
    volume = load_volume(example / "ct")
    raw = read_image_file(example / "labels.nii.gz")
    assert raw.grid.direction[1, 1] == -1  # stored upside down
    structures = load_structures(example / "labels.nii.gz", volume)
    assert len(structures) == 31 and structures.warnings == []
    names = json.loads((example / "labels.json").read_text())
    assert structures.names() == [names[str(v)] for v in sorted(int(k) for k in names)]
    liver = structures["liver"].mask.full()
    np.testing.assert_array_equal(liver, (raw.array == 5)[:, ::-1, :])  # flipped back through geometry
    assert structures["liver"].algorithm == GenerationAlgorithm.AUTOMATIC


def test_label_map_on_another_grid_is_resampled_with_a_warning(ct, tmp_path):
    folder, volume = ct
    fine = np.zeros((12, 48, 56), np.uint8)
    fine[2:10, 8:24, 10:30] = 4  # = voxels 1:5, 4:12, 5:15 of the CT grid
    image = sitk.GetImageFromArray(fine)
    image.SetSpacing((0.5, 0.5, 1.0))
    image.SetOrigin((-0.25, -0.25, -0.5))
    path = tmp_path / "fine.nrrd"
    sitk.WriteImage(image, str(path))
    structures = load_structures(path, volume, {4: "Liver"})
    assert structures.names() == ["Liver"]
    assert any("resampled" in w for w in structures.warnings)
    expected = np.zeros(volume.grid.shape, bool)
    expected[1:5, 4:12, 5:15] = True
    np.testing.assert_array_equal(structures["Liver"].mask.full(), expected)


def test_labels_beyond_the_images_are_counted_in_a_warning(ct, tmp_path):
    folder, volume = ct
    taller = np.zeros((9, 24, 28), np.uint8)  # three more 2 mm slices above the CT's six
    taller[4:8, 5:10, 5:10] = 1  # slices 6 and 7 lie beyond the CT: 2 × 25 voxels
    image = sitk.GetImageFromArray(taller)
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(tmp_path / "taller.nii.gz"))
    structures = load_structures(tmp_path / "taller.nii.gz", volume)
    assert structures.warnings == ["50 labelled voxels (0.1 cc) lie beyond the images and are left out"]
    assert structures["Label_1"].mask.full().sum() == 50
    image = sitk.GetImageFromArray(taller[:6])  # the same grid as the CT: nothing to count
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(tmp_path / "same.nii.gz"))
    assert load_structures(tmp_path / "same.nii.gz", volume).warnings == []


def test_names_from_a_list_or_a_sidecar_and_a_label_map_round_trip(ct, tmp_path):
    folder, volume = ct
    labels = labels_on(volume)
    path = tmp_path / "labels.nii.gz"
    save_volume(volume.with_array(labels), path)
    assert load_structures(path, volume, ["Liver", "Spleen", "Specks"]).names() == [
        "Liver",
        "Spleen",
        "Specks",
    ]
    (tmp_path / "labels.json").write_text(json.dumps({"1": "Liver", "2": "Spleen"}))
    structures = load_structures(path, volume)
    assert structures.names() == ["Liver", "Spleen", "Label_3"]
    out = tmp_path / "out.nrrd"
    assert save_structures(structures, volume, out) == []
    assert json.loads((tmp_path / "out.json").read_text()) == {"1": "Liver", "2": "Spleen", "3": "Label_3"}
    again = load_structures(out, volume)
    np.testing.assert_array_equal(again.to_label_map(), labels)
    structures.add(Structure("Liver_PRV", structures["Liver"].mask.copy()))
    warnings = save_structures(structures, volume, out)
    assert len(warnings) == 1 and "more than one structure" in warnings[0] and "RTSTRUCT" in warnings[0]


def test_rtstruct_and_folders_and_clear_refusals(ct, tmp_path):
    folder, volume = ct
    structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
    box = np.zeros(volume.grid.shape, bool)
    box[1:5, 4:12, 5:15] = True
    structures.add(Structure("Liver", Mask.from_full(volume.grid, box)))
    rs_folder = tmp_path / "rs"
    rs_folder.mkdir()
    assert save_structures(structures, volume, rs_folder / "RS.dcm") == []
    for source in (rs_folder / "RS.dcm", rs_folder):
        np.testing.assert_array_equal(load_structures(source, volume)["Liver"].mask.full(), box)
    with pytest.raises(FormatError, match="holds no structures"):
        load_structures(next(folder.iterdir()), volume)
    with pytest.raises(DelineoError, match="no RTSTRUCT or SEG"):
        load_structures(folder, volume)
    with pytest.raises(FormatError, match="cannot tell the format"):
        save_structures(structures, volume, tmp_path / "x.txt")
    floats = tmp_path / "floats.nii.gz"
    save_volume(volume.with_array(np.full(volume.grid.shape, 0.5, np.float32)), floats)
    with pytest.raises(FormatError, match="not whole numbers"):
        load_structures(floats, volume)
    far = Volume(labels_on(volume), volume.grid.with_shape(volume.grid.shape, (500, 0, 0)))
    save_volume(far, tmp_path / "far.nii.gz")
    with pytest.raises(GeometryError, match="does not overlap"):
        load_structures(tmp_path / "far.nii.gz", volume)
