"""Rule-based contours: a synthetic thorax with analytic answers, and two real CTs."""

from __future__ import annotations

import numpy as np
import pytest
from support.data import data_path
from support.segmentation_models import dice

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.imageio import load_volume
from planning.volume import Volume
from segmentation.rules import RuleModel

SPACING_XYZ = (2.0, 2.0, 2.5)


def thorax(shape=(48, 128, 128)):
    """Supine thorax: body on a couch that touches its back, two lungs meeting at an anterior
    junction, a trachea descending from the top slice and splitting into the two main bronchi,
    a spine and a ring of ribs. z grows toward the head, x toward the patient's left."""
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    cy, cx = 56.0, 64.0
    body = ((y - cy) / 38) ** 2 + ((x - cx) / 52) ** 2 <= 1
    lung_r = ((y - 54) / 26) ** 2 + ((x - 42) / 20) ** 2 + ((z - 22) / 24) ** 2 <= 1  # patient's right
    lung_l = ((y - 54) / 26) ** 2 + ((x - 86) / 20) ** 2 + ((z - 22) / 24) ** 2 <= 1
    # The anterior junction line: the lungs touch over a 4-voxel-high strip in front.
    junction = (np.abs(x - 64) <= 3) & (np.abs(y - 36) <= 2) & (np.abs(z - 22) <= 8)
    trachea = ((y - 48) ** 2 + (x - 64) ** 2 <= 9) & (z >= 36)
    bronchi = np.zeros(shape, bool)
    for side in (-1, 1):
        for t in np.linspace(0, 1, 40):
            zc, xc = 36 - 8 * t, 64 + side * 14 * t
            bronchi |= ((y - 48) ** 2 + (x - xc) ** 2 + ((z - zc) * 1.25) ** 2) <= 5
    spine = ((y - 84) ** 2 + (x - 64) ** 2) <= 36
    ring = (((y - cy) / 34) ** 2 + ((x - cx) / 48) ** 2 <= 1) & (
        ((y - cy) / 31) ** 2 + ((x - cx) / 45) ** 2 > 1
    )
    ribs = ring & (np.cos(np.arctan2(y - cy, x - cx) * 8) > 0.3) & (z % 8 < 3)
    couch = (y >= 94) & (y <= 98) & (np.abs(x - 64) <= 60)
    hu = np.full(shape, -1000.0)
    hu[couch] = -900  # foam
    hu[couch & ((y == 94) | (y == 98))] = 300  # shells; the top one touches the back
    hu[body] = 40
    lungs = (lung_r | lung_l) & body
    hu[lungs | junction] = -850
    hu[(trachea | bronchi) & body] = -1000
    hu[(spine | ribs) & body] = 700
    hu += rng.normal(0, 15, shape)
    grid = Grid(shape, SPACING_XYZ)
    truth = {
        "body": body,
        "couch": couch & ~body,
        "airway": (trachea | bronchi) & body,
        "Lung_R": lung_r & body & ~(trachea | bronchi),
        "Lung_L": lung_l & body & ~(trachea | bronchi),
        "bones": (spine | ribs) & body,
    }
    return Volume(hu.astype(np.int16), grid, modality="CT"), truth


@pytest.fixture(scope="module")
def synthetic():
    volume, truth = thorax()
    return RuleModel().predict(volume), truth


def test_body_leaves_the_couch_out_and_fills_the_lungs(synthetic):
    result, truth = synthetic
    body = result["External"].mask.full()
    assert not (body & truth["couch"]).any()
    assert dice(body, truth["body"]) > 0.97
    assert body[truth["Lung_L"] | truth["Lung_R"] | truth["airway"]].all()  # internal air filled


def test_lungs_are_split_left_right_without_the_airway(synthetic):
    result, truth = synthetic
    left, right = result["Lung_L"].mask.full(), result["Lung_R"].mask.full()
    assert dice(left, truth["Lung_L"]) > 0.9 and dice(right, truth["Lung_R"]) > 0.9
    assert not (left & right).any()
    trachea = truth["airway"] & (np.arange(truth["airway"].shape[0]) >= 36)[:, None, None]
    assert not ((left | right) & trachea).any()
    assert np.count_nonzero((left | right) & truth["airway"]) < 0.1 * np.count_nonzero(truth["airway"])


def test_bones(synthetic):
    result, truth = synthetic
    assert dice(result["Bone"].mask.full(), truth["bones"]) > 0.85


def test_progress_and_structure_choice():
    volume, _ = thorax((24, 128, 128))
    calls = []
    result = RuleModel().predict(volume, structures=["External"], on_progress=lambda *a: calls.append(a))
    assert result.names() == ["External"]
    assert calls[-1][1] == calls[-1][2]


def test_an_image_not_in_hounsfield_units_is_warned_about():
    volume, _ = thorax((24, 128, 128))
    model = RuleModel()
    model.predict(volume, structures=["External"])
    assert model.last_run.warnings == []
    shifted = Volume((volume.array + 600).astype(np.int16), volume.grid)  # rescaled: air at −400
    model.predict(shifted, structures=["External"])
    [warning] = model.last_run.warnings
    assert "expects a CT in Hounsfield units" in warning and "(1st–99th percentile)" in warning
    # no negative value at all (an MR given as a file, a CT stored without its rescale): refused
    stored = Volume((volume.array - volume.array.min()).astype(np.int16), volume.grid)
    with pytest.raises(DelineoError, match="no negative value .lowest 0.: it is not such a CT"):
        model.predict(stored, structures=["External"])


def outside_air(volume: Volume, corner_zyx) -> np.ndarray:
    """The air around the patient: the 3D region below −500 HU holding a corner voxel."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(volume.array < -500)
    assert labels[corner_zyx] > 0
    return labels == labels[corner_zyx]


def test_pancreas_ct_body_couch_and_lungs():
    volume = load_volume(data_path("dicom", "pancreas-ct-134"))
    result = RuleModel().predict(volume)
    body = result["External"].mask.full()
    # The couch (read off HU profiles under the back): its top shell is at row 387 in every
    # slice (the back lies on it in slices 0–35); from slice 85 on a pad on it starts at row 377.
    assert not body[:, 387:].any() and not body[89:, 377:].any()
    assert body[15:30, 383, 256].all()  # …while the skin right above it stays in
    assert not (body & outside_air(volume, (30, 5, 5))).any()
    assert 25000 < result["External"].volume_cc < 40000  # a 40 cm abdomen, ~700 cm² across
    left, right = result["Lung_L"], result["Lung_R"]
    assert left.volume_cc > 200 and right.volume_cc > 200
    x_left = volume.grid.index_to_patient(np.array(np.nonzero(left.mask.full())).mean(axis=1)[::-1])[0]
    x_right = volume.grid.index_to_patient(np.array(np.nonzero(right.mask.full())).mean(axis=1)[::-1])[0]
    assert x_left > x_right + 100  # LPS: patient left is +x
    columns = np.flatnonzero(left.mask.full().any(axis=(0, 1)))
    assert columns.min() > np.flatnonzero(right.mask.full().any(axis=(0, 1))).max()


def test_lung_ct_body_couch_and_the_one_lung_in_view():
    volume = load_volume(data_path("dicom", "ibsi1-lung-ct", "image"))
    result = RuleModel().predict(volume)
    body = result["External"].mask.full()
    # The patient lies on the couch: skin at row 197 (≈ 0 HU), couch rows 198–200 (≈ −380 HU).
    assert not body[:, 198:].any()
    assert body[20:40, 197, 120].all()
    assert not (body & outside_air(volume, (30, 170, 5))).any()
    # The field of view holds the right hemithorax: the lung in it is the right one, and the
    # lung air cut by the image edge stays inside the body.
    assert result["Lung_R"].volume_cc > 700 and result["Lung_L"].volume_cc < 10
    lung = result["Lung_R"].mask.full()
    assert body[lung].all()


def test_voxels_that_are_not_numbers_are_taken_as_the_lowest_value():
    volume, _ = thorax((24, 128, 128))
    model = RuleModel()
    plain = model.predict(volume, structures=["External"])["External"].mask.full()
    floating = volume.with_array(volume.array.astype(np.float32))
    floating.array[:, :4, :4] = np.nan  # outside the patient, in the air
    result = model.predict(floating, structures=["External"])
    [warning] = model.last_run.warnings
    assert "voxels that are not numbers (NaN or infinite) were segmented as -10" in warning
    np.testing.assert_array_equal(result["External"].mask.full(), plain)


@pytest.fixture(scope="module")
def two_lung_ct():
    """A real thorax with both lungs: the lung CT (the patient's right hemithorax, cut near the
    spine) joined to its left–right mirror image, 30 slices, stored in LPS order."""
    loaded = load_volume(data_path("dicom", "ibsi1-lung-ct", "image"))
    hu = loaded.array[15:45]
    hu = np.ascontiguousarray(np.concatenate([hu, hu[:, :, ::-1]], axis=2))
    grid = Grid(hu.shape, loaded.grid.spacing_xyz, loaded.grid.slice_position(15))
    volume = Volume(hu, grid, modality="CT", slices=loaded.slices[15:45])
    return volume, RuleModel().predict(volume)


def centre_x(structure) -> float:
    """LPS x (mm) of a structure's centre of mass."""
    index_zyx = np.array(np.nonzero(structure.mask.full())).mean(axis=1)
    return float(structure.mask.grid.index_to_patient(index_zyx[::-1])[0])


def test_the_same_patient_stored_sagittally_and_flipped_gets_the_same_contours(two_lung_ct):
    volume, axial = two_lung_ct
    assert axial["Lung_L"].volume_cc > 300 and axial["Lung_R"].volume_cc > 300
    assert centre_x(axial["Lung_L"]) > centre_x(axial["Lung_R"]) + 100  # LPS: patient left is +x
    # Stored as sagittal slices: slice index along patient x (left), rows toward anterior,
    # columns toward superior; stored[i, j, k] = axial[k, ny - 1 - j, i].
    stored = np.ascontiguousarray(np.transpose(volume.array, (2, 1, 0))[:, ::-1, :])
    ny = volume.shape[1]
    s = volume.grid.spacing_xyz
    direction = np.column_stack([(0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0)])  # index x, y, z
    origin = volume.grid.index_to_patient(np.array([0.0, ny - 1.0, 0.0]))
    grid = Grid(stored.shape, (s[2], s[1], s[0]), tuple(origin), direction)
    sagittal = Volume(stored, grid, modality="CT")
    # The two grids put each voxel at the same place in the patient.
    index = np.array([[3, 7, 11], [17, 150, 25], [200, 0, 29]])  # (x, y, z) of the axial volume
    moved = np.stack([index[:, 2], ny - 1 - index[:, 1], index[:, 0]], axis=1)  # of the sagittal
    np.testing.assert_allclose(grid.index_to_patient(moved), volume.grid.index_to_patient(index), atol=1e-6)

    result = RuleModel().predict(sagittal)
    assert result.names() == axial.names()
    for name in ("External", "Lung_L", "Lung_R", "Bone"):
        back = np.transpose(result[name].mask.full()[:, ::-1, :], (2, 1, 0))
        np.testing.assert_array_equal(back, axial[name].mask.full(), err_msg=name)
        assert result[name].mask.grid.same_as(grid)
    assert centre_x(result["Lung_L"]) > centre_x(result["Lung_R"]) + 100


def test_an_axial_dicom_series_of_a_prone_patient_keeps_its_couch_at_the_bottom(two_lung_ct):
    """A scanner stores axial images with the couch at the bottom whatever the patient position:
    a prone patient's rows run toward anterior and columns toward the patient's right. The same
    voxels with that geometry get the same External (couch left out) and the lungs swap names."""
    volume, supine = two_lung_ct
    prone_grid = Grid(volume.shape, volume.grid.spacing_xyz, (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    prone = RuleModel().predict(Volume(volume.array, prone_grid, modality="CT", slices=volume.slices))
    np.testing.assert_array_equal(prone["External"].mask.full(), supine["External"].mask.full())
    np.testing.assert_array_equal(prone["Lung_L"].mask.full(), supine["Lung_R"].mask.full())
    np.testing.assert_array_equal(prone["Lung_R"].mask.full(), supine["Lung_L"].mask.full())


def test_a_cancel_during_the_last_step_is_honoured(monkeypatch):
    import threading

    import segmentation.rules.lungs as lungs
    from planning.errors import Cancelled

    cancel = threading.Event()
    real = lungs.lung_masks

    def cancelled_meanwhile(*args, **kwargs):
        cancel.set()  # the user clicks Cancel while the lungs, the last step, are found
        return real(*args, **kwargs)

    monkeypatch.setattr(lungs, "lung_masks", cancelled_meanwhile)
    with pytest.raises(Cancelled):
        RuleModel().predict(thorax()[0], cancel=cancel)
