"""`delineo mesh`: label maps and RTSTRUCTs to mesh files."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from support.data import data_path
from vtkmodules.vtkIOGeometry import vtkSTLReader

from workstation.cli import main


def label_map(path, direction=(1, 0, 0, 0, -1, 0, 0, 0, 1)):
    labels = np.zeros((20, 30, 30), np.uint8)
    labels[4:16, 5:20, 5:15] = 1
    labels[4:16, 5:20, 15:25] = 7
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.0, 1.0, 2.0))
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return labels


def test_label_map_to_stl_for_printing(tmp_path, capsys):
    label_map(tmp_path / "labels.nii.gz")
    (tmp_path / "names.json").write_text('{"1": "Liver", "7": "Stomach"}')
    code = main(
        ["mesh", str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json"),
         "--out", str(tmp_path / "out"), "--format", "stl", "--print"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "Liver" in out and "Stomach" in out and "1 shell(s)" in out
    reader = vtkSTLReader()
    reader.SetFileName(str(tmp_path / "out" / "Liver.stl"))
    reader.Update()
    x0, x1, y0, y1, z0, z1 = reader.GetOutput().GetBounds()
    # patient LPS mm: columns 5–14, rows 5–19 on a flipped y axis, slices 4–15 of 2 mm
    assert 4 < x0 < 5.5 and 14 < x1 < 15.5
    assert -20.5 < y0 < -19 and -5.5 < y1 < -4
    assert 6.5 < z0 < 8 and 30 < z1 < 31.5


def test_rtstruct_needs_its_series(tmp_path, capsys):
    rtstruct = data_path("dicom", "ibsi1-lung-ct", "RS.dcm")
    assert main(["mesh", str(rtstruct), "--out", str(tmp_path)]) == 1
    assert "needs --series" in capsys.readouterr().err
    code = main(
        [
            "mesh",
            str(rtstruct),
            "--series",
            str(rtstruct.parent / "image"),
            "--out",
            str(tmp_path),
            "--format",
            "ply",
        ]
    )
    assert code == 0
    assert (tmp_path / "GTV-1.ply").exists()
