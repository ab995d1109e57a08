"""Files and folders a scan cannot read are named wherever the series they may belong to is used."""

import os

import numpy as np
import pytest
from support.dicom_factory import ct_phantom, write_ct_series

import planning.dicom.headers as headers
from planning.dicom.load import load_series
from planning.dicom.scan import scan
from planning.errors import DelineoError
from planning.imageio import load_volume
from workstation.cli import main


@pytest.fixture
def hu():
    return ct_phantom((6, 16, 20))


def test_a_last_slice_cut_in_its_header_is_named_in_the_warnings(tmp_path, hu, capsys):
    """It was read as an object 'without image' and the volume lost a slice silently."""
    paths = write_ct_series(tmp_path, hu)
    paths[-1].write_bytes(paths[-1].read_bytes()[:300])
    (tmp_path / "notes.txt").write_text("not an image")
    volume = load_volume(tmp_path)
    assert volume.shape[0] == 5
    [warning] = volume.warnings
    assert "CT0005.dcm: the file ends inside its header (truncated)" in warning
    assert "notes.txt" not in warning
    assert main(["info", str(tmp_path)]) == 0
    assert "CT0005.dcm: the file ends inside its header" in capsys.readouterr().out


def test_an_unreadable_middle_file_is_named(tmp_path, hu, monkeypatch):
    paths = write_ct_series(tmp_path, hu)
    walk = headers._walk

    def refuse(path):
        if path.name == paths[2].name:
            raise PermissionError(13, "Permission denied", str(path))
        return walk(path)

    monkeypatch.setattr(headers, "_walk", refuse)
    volume = load_series(scan(tmp_path).series[0])
    assert any("CT0002.dcm: cannot be read (Permission denied)" in w for w in volume.warnings)


def _refuse_folder(monkeypatch, folder):
    scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)


def test_an_unreadable_subfolder_is_named(tmp_path, hu, monkeypatch):
    write_ct_series(tmp_path / "a", hu[:3], origin_xyz=(0, 0, 0))
    write_ct_series(tmp_path / "b", hu[3:], origin_xyz=(0, 0, 7.5), file_names=["x.dcm", "y.dcm", "z.dcm"])
    _refuse_folder(monkeypatch, tmp_path / "b")
    volume = load_volume(tmp_path)
    np.testing.assert_array_equal(volume.array, hu[:3])
    assert any(f"{tmp_path / 'b'}: folder cannot be read (Permission denied)" in w for w in volume.warnings)


def test_an_unreadable_folder_gives_the_reason(tmp_path, hu, monkeypatch):
    write_ct_series(tmp_path, hu)
    _refuse_folder(monkeypatch, tmp_path)
    with pytest.raises(
        DelineoError, match=r"no CT/MR image series found .*folder cannot be read \(Permission"
    ):
        load_volume(tmp_path)


def test_text_files_beside_a_series_are_not_taken_for_missing_slices(tmp_path, hu):
    # a LICENSE or README has no suffix to tell; its text does (dicompyler-breast warned about it)
    write_ct_series(tmp_path, hu)
    (tmp_path / "LICENSE").write_text("Permission is hereby granted, free of charge…\n" * 40)
    (tmp_path / "README").write_text("Ü" * 700)  # a multi-byte character cut at 1 kB
    (tmp_path / "IM9999").write_bytes(b"\x00\x01binary, not DICOM" * 10)
    volume = load_volume(tmp_path)
    assert len(volume.warnings) == 1 and "IM9999" in volume.warnings[0]
    assert "LICENSE" not in volume.warnings[0] and "README" not in volume.warnings[0]


def test_text_named_as_a_dicom_file_is_named_as_a_missing_slice(tmp_path, hu):
    """An error page saved as a slice's .dcm was taken for a README: the series lost that slice
    with only an 'irregular slice spacing' warning, naming no file."""
    paths = write_ct_series(tmp_path, hu)
    paths[3].write_text("<html><body>502 Bad Gateway</body></html>\n" * 20)
    volume = load_volume(tmp_path)
    assert any("CT0003.dcm: not a DICOM file" in warning for warning in volume.warnings)
