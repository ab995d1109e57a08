"""The built-in sample patient: anatomy where it should be, realistic HU, a stable identity."""

import numpy as np

from planning.sample_patient import SAMPLE_PATIENT_ID, make_sample_patient
from planning.structures import RoiType


def test_sample_patient_anatomy_and_hu():
    sample = make_sample_patient((40, 128, 128))
    volume, structures = sample.volume, sample.structures
    assert volume.modality == "CT" and volume.array.dtype == np.int16
    assert volume.identity.patient_id == SAMPLE_PATIENT_ID
    assert len(volume.slices) == 40 and all(s.sop_instance_uid for s in volume.slices)
    assert set(structures.names()) == {"External", "Lung_R", "Lung_L", "Heart", "SpinalCord", "Bone", "GTV"}
    assert structures["External"].roi_type == RoiType.EXTERNAL and structures["GTV"].roi_type == RoiType.GTV

    def median_hu(name):
        return float(np.median(volume.array[structures[name].mask.full()]))

    assert -900 < median_hu("Lung_L") < -780
    assert 20 < median_hu("Heart") < 60 and 20 < median_hu("GTV") < 60
    assert median_hu("Bone") > 300
    outside = ~structures["External"].mask.full()
    assert np.median(volume.array[outside]) < -950  # air (the couch is a thin part of it)
    # Patient right lung at x < 0 (LPS), heart anterior-left, tumour in the right lung.
    grid = volume.grid

    def centre(name):
        return grid.index_to_patient(np.argwhere(structures[name].mask.full()).mean(axis=0)[::-1])

    assert centre("Lung_R")[0] < 0 < centre("Lung_L")[0]
    assert centre("Heart")[0] > 0 and centre("Heart")[1] < centre("SpinalCord")[1]
    assert centre("GTV")[0] < 0
    assert not (structures["GTV"].mask.full() & structures["Lung_R"].mask.full()).any()
    from planning.tg263 import check_name

    assert all(check_name(name).standard for name in structures.names())
    assert 10 < structures["GTV"].volume_cc < 25


def test_sample_patient_is_reproducible_and_has_a_couch():
    a, b = make_sample_patient((20, 64, 64)), make_sample_patient((20, 64, 64))
    assert np.array_equal(a.volume.array, b.volume.array)
    assert a.volume.identity == b.volume.identity
    column = a.volume.array[10, :, 32]
    body = a.structures["External"].mask.full()[10, :, 32]
    below = np.flatnonzero(body)[-1]
    assert (column[below + 1 :] > 100).any()  # the couch's carbon-fibre skin posterior to the body


def test_the_sample_structures_have_colours_told_apart():
    from planning.tg263 import delta_e

    colours = [s.color for s in make_sample_patient((20, 64, 64)).structures]
    assert min(delta_e(a, b) for i, a in enumerate(colours) for b in colours[i + 1 :]) >= 20
