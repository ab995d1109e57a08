"""Grouping images into volumes: by tolerance, never by rounding buckets."""

import numpy as np
import pydicom
from support.dicom_factory import ct_phantom, write_ct_series

from planning.dicom.scan import scan
from planning.imageio import load_volume


def test_orientation_jitter_across_a_rounding_boundary_stays_one_series(tmp_path):
    """0.2345 ± 1e-7 fell in two 3-decimal buckets: 'holds 2 image series; choose one'."""
    s = 0.2345
    c = np.sqrt(1 - s * s)
    hu = ct_phantom((4, 16, 20))
    paths = write_ct_series(tmp_path, hu, orientation=(c, s, 0, -s, c, 0))
    for k, path in enumerate(paths):
        jittered = s + (1e-7 if k % 2 else -1e-7)
        dataset = pydicom.dcmread(path)
        dataset.ImageOrientationPatient = [f"{v:.10f}" for v in (c, jittered, 0, -jittered, c, 0)]
        dataset.save_as(path)
    assert len(scan(tmp_path).series) == 1
    np.testing.assert_array_equal(load_volume(tmp_path).array, hu)


def test_orientations_beyond_the_tolerance_are_still_split(tmp_path):
    hu = ct_phantom((4, 16, 20))
    write_ct_series(tmp_path, hu[:2], series_uid="1.2.3")
    write_ct_series(
        tmp_path,
        hu[2:],
        series_uid="1.2.3",
        orientation=(1, 0, 0, 0, 0.999, 0.0447),
        file_names=["b0.dcm", "b1.dcm"],
    )
    assert len(scan(tmp_path).series) == 2
