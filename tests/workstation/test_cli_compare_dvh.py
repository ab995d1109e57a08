"""`delineo compare` and `delineo dvh` on real and generated files."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path

from workstation.cli import main


def _label_map(path, shift):
    labels = np.zeros((12, 40, 40), np.uint8)
    labels[2:10, 10:25, 10 + shift : 25 + shift] = 1
    labels[3:6, 28:35, 28:35] = 2
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(image, str(path))


def test_compare_label_maps_without_series(tmp_path, capsys):
    _label_map(tmp_path / "a.nii.gz", 0)
    _label_map(tmp_path / "b.nii.gz", 2)
    out = tmp_path / "report.html"
    assert main(["compare", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8")))
    dice = {r["reference_structure"]: float(r["dice"]) for r in rows}
    assert dice["Label_2"] == 1.0 and dice["Label_1"] == pytest.approx(2 * 13 / 30)
    assert "data:image/png" in out.read_text(encoding="utf-8")
    assert "Dice" in capsys.readouterr().out


def test_a_structure_its_labels_name_but_a_label_map_lacks_counts_as_missed(tmp_path, capsys):
    """Label 2 ("Kidney_L") is named by the labels file but absent from the test map: the organ
    was missed (Dice 0), not left out of the table and of the mean."""
    _label_map(tmp_path / "a.nii.gz", 0)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz")))
    labels[labels == 2] = 0
    missed = sitk.GetImageFromArray(labels)
    missed.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(missed, str(tmp_path / "b.nii.gz"))
    (tmp_path / "names.json").write_text(json.dumps({"1": "Liver", "2": "Kidney_L", "3": "Spleen"}))
    out = tmp_path / "report.html"
    arguments = ["compare", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--out", str(out)]
    assert main([*arguments, "--labels", str(tmp_path / "names.json")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "report.csv", encoding="utf-8")))
    dice = {r["reference_structure"]: float(r["dice"]) for r in rows}
    assert dice == {"Liver": 1.0, "Kidney_L": 0.0}  # Spleen: in neither map, not compared
    printed = capsys.readouterr().out
    assert "Kidney_L: named by the labels but absent from b.nii.gz; compared as empty" in printed
    assert "unmatched" not in printed


def test_compare_rtstruct_with_itself_on_its_series(tmp_path):
    folder = data_path("dicom", "varian-visible-human")
    rtstruct = next(folder.glob("RS*.dcm"))
    out = tmp_path / "same.html"
    assert main(["compare", str(rtstruct), str(rtstruct), "--series", str(folder), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out.with_suffix(".csv"), encoding="utf-8")))
    assert {r["reference_structure"] for r in rows} >= {"BODY", "SpinalCord"}
    assert all(float(r["dice"]) == 1.0 and float(r["hausdorff_mm"]) == 0.0 for r in rows)


def test_dvh_from_planar_contours_without_ct(tmp_path, capsys):
    folder = data_path("dicom", "dicompyler-breast")
    out, curves, plot = tmp_path / "dvh.csv", tmp_path / "curves.csv", tmp_path / "dvh.png"
    args = ["dvh", str(folder / "rtdose.dcm"), str(folder / "rtss.dcm"), "--out", str(out)]
    assert main([*args, "--levels", "10", "--curves", str(curves), "--plot", str(plot)]) == 0
    rows = {r["structure"]: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    reference = json.loads((folder / "dvh_reference.json").read_text())["no_interpolation"]
    for name in ("Breast", "Heart", "Tumor Bed"):  # sampled finer than dicompyler's voxel centres
        assert float(rows[name]["Dmean_Gy"]) == pytest.approx(reference[name]["Dmean_Gy"], rel=0.01)
        assert float(rows[name]["V10Gy_cc"]) == pytest.approx(reference[name]["V10Gy_cc"], rel=0.02, abs=0.1)
    assert "dose voxels" in rows["Scar"]["warnings"]
    # a structure of points only has its row, with no numbers (not a silent gap in the table)
    assert rows["Areola"]["volume_cc"] == "0" and rows["Areola"]["Dmean_Gy"] == ""
    assert rows["Areola"]["warnings"].startswith("no volume: the ROI has no contours")  # not "no closed"
    assert plot.stat().st_size > 10_000
    # curves: cumulative per dose and differential per bin; the bins add up to the volume
    table = list(csv.DictReader(open(curves, encoding="utf-8")))
    assert len(table) > 1000
    heart = [r for r in table if r["structure"] == "Heart"]
    assert heart[-1]["bin_volume_cc"] == ""
    total = sum(float(r["bin_volume_cc"]) for r in heart[:-1])
    assert total == pytest.approx(float(rows["Heart"]["volume_cc"]), rel=1e-3)
    assert float(heart[0]["volume_cc"]) == pytest.approx(total, rel=1e-3)
    assert "Tumor Bed" in capsys.readouterr().out


def _polygon_area_mm2(points) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def test_dvh_of_a_structure_on_two_slices_apart_without_ct(tmp_path):
    """The Tumor Bed kept on two slices 24 mm apart: without the CT the slice thickness is the
    structure set's (the BODY's 3 mm slices), not the 24 mm between its planes (8× the volume)."""
    import pydicom

    folder = data_path("dicom", "dicompyler-breast")
    dataset = pydicom.dcmread(folder / "rtss.dcm")
    number = next(r.ROINumber for r in dataset.StructureSetROISequence if r.ROIName == "Tumor Bed")
    item = next(r for r in dataset.ROIContourSequence if r.ReferencedROINumber == number)
    keep = [c for c in item.ContourSequence if round(float(c.ContourData[2]), 2) in (-20.44, 3.56)]
    item.ContourSequence = pydicom.Sequence(keep)
    dataset.save_as(tmp_path / "RS.two.dcm")
    out = tmp_path / "dvh.csv"
    args = ["dvh", str(folder / "rtdose.dcm"), str(tmp_path / "RS.two.dcm"), "--names", "Tumor Bed"]
    assert main([*args, "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out, encoding="utf-8")))
    slabs = sum(_polygon_area_mm2(np.reshape(c.ContourData, (-1, 3))) for c in keep) * 3.0 / 1000
    assert float(row["volume_cc"]) == pytest.approx(slabs, rel=0.01)
    assert "in 2 separate parts" in row["sampling"]
    assert "each of its 2 separate planes taken as one slice of 3 mm" in row["warnings"]


def _z_dose(path, frame_of_reference_uid):
    """An RTDOSE of D = 20 + 0.2 z Gy (z in mm) on 2.5 mm voxels around IBSI's lung CT."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.FrameOfReferenceUID = "RTDOSE", frame_of_reference_uid
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-150.0, -60.0, -50.0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.Rows, ds.Columns, ds.NumberOfFrames = [2.5, 2.5], 64, 64, 40
    ds.GridFrameOffsetVector = [2.5 * k for k in range(40)]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType, ds.DoseGridScaling = "GY", "PHYSICAL", "PLAN", 1e-4
    z = -50.0 + 2.5 * np.arange(40)
    dose = np.broadcast_to((20 + 0.2 * z)[:, None, None], (40, 64, 64))
    ds.PixelData = np.round(dose / 1e-4).astype(np.uint32).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dvh_of_a_structure_on_two_slices_apart_with_its_series(tmp_path):
    """IBSI's GTV-1 kept on two 3 mm slices 24 mm apart: with its CT each plane is one 3 mm slice
    (its mask's 23.5 cc, not 186.6 cc) and its doses are those of its slices; without the CT its
    thickness is a guess, and its row says so."""
    import pydicom

    folder = data_path("dicom", "ibsi1-lung-ct")
    dataset = pydicom.dcmread(folder / "RS.dcm")
    item = dataset.ROIContourSequence[0]
    keep = [c for c in item.ContourSequence if round(float(c.ContourData[2]), 1) in (-10.4, 13.6)]
    item.ContourSequence = pydicom.Sequence(keep)
    dataset.save_as(tmp_path / "RS.two.dcm")
    _z_dose(tmp_path / "RD.dcm", dataset.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    args = ["dvh", str(tmp_path / "RD.dcm"), str(tmp_path / "RS.two.dcm")]
    assert main([*args, "--series", str(folder / "image"), "--out", str(tmp_path / "series.csv")]) == 0
    row = next(csv.DictReader(open(tmp_path / "series.csv", encoding="utf-8")))
    assert float(row["volume_cc"]) == pytest.approx(23.48, rel=0.005)
    assert float(row["Dmin_Gy"]) >= 20 + 0.2 * (-10.4 - 1.5) - 1e-3
    assert float(row["Dmax_Gy"]) <= 20 + 0.2 * (13.6 + 1.5) + 1e-3
    assert "no images" not in row["warnings"]
    assert main([*args, "--out", str(tmp_path / "alone.csv")]) == 0
    row = next(csv.DictReader(open(tmp_path / "alone.csv", encoding="utf-8")))
    assert (
        "GTV-1: no images, and no structure of the set has two contour planes within 10 mm" in row["warnings"]
    )


def test_dvh_settings_a_structure_cannot_take_are_refused_before_anything_is_written(tmp_path, capsys):
    folder = data_path("dicom", "dicompyler-breast")
    out = tmp_path / "dvh.csv"
    args = ["dvh", str(folder / "rtdose.dcm"), str(folder / "rtss.dcm"), "--out", str(out)]
    assert main([*args, "--end-cap", "100", "--names", "Scar"]) == 1
    error = capsys.readouterr().err
    assert "Scar: the end cap must be > 0 mm and at most the slice thickness (3 mm)" in error
    assert main([*args, "--plot", str(tmp_path / "dvh.jpg")]) == 1
    assert "dvh.jpg: a plot is written as .pdf, .png, .svg" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse: names the option and the choices
        main([*args, "--factor", "3"])
    assert "--factor: invalid choice: '3'" in capsys.readouterr().err


def test_dvh_plot_darkens_colours_that_vanish_on_white():
    from planning.dvh import visible_on_white

    assert visible_on_white((1.0, 0.0, 0.0)) == (1.0, 0.0, 0.0)
    dark = visible_on_white((1.0, 1.0, 1.0))
    assert max(dark) <= 0.75 and dark[0] == dark[1] == dark[2]


def test_dvh_unknown_structure_is_a_clear_error(tmp_path, capsys):
    folder = data_path("dicom", "dicompyler-breast")
    code = main(
        [
            "dvh",
            str(folder / "rtdose.dcm"),
            str(folder / "rtss.dcm"),
            "--out",
            str(tmp_path / "x.csv"),
            "--names",
            "Liver",
        ]
    )
    assert code == 1 and "no structure named Liver" in capsys.readouterr().err


def test_dvh_refuses_a_dose_of_another_patient(tmp_path, capsys):
    # the breast plan's dose with the lung CT's structures: with or without the CT series
    dose = data_path("dicom", "dicompyler-breast", "rtdose.dcm")
    lung = data_path("dicom", "ibsi1-lung-ct")
    out = tmp_path / "dvh.csv"
    for series in ([], ["--series", str(lung)]):
        assert main(["dvh", str(dose), str(lung / "RS.dcm"), *series, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "delineo: error: rtdose.dcm is in frame of reference 2.16.840.1.113662.2.12.0.3057" in err
        assert "RS.dcm" in err and "different patient coordinate systems" in err
    assert not out.exists()


def test_dvh_leaves_out_an_roi_declared_in_another_frame_of_reference(tmp_path, capsys):
    """An RTSTRUCT naming the dose's frame and another (a registered MR's) passed the file's
    check, and the Heart, declared in the other frame, got a DVH read at unrelated positions of
    the dose; it now gets a row without numbers naming both frames."""
    import copy

    import pydicom

    folder = data_path("dicom", "dicompyler-breast")
    dataset = pydicom.dcmread(folder / "rtss.dcm")
    other = copy.deepcopy(dataset.ReferencedFrameOfReferenceSequence[0])
    other.FrameOfReferenceUID = "1.2.3.4.5"
    dataset.ReferencedFrameOfReferenceSequence.append(other)
    for item in dataset.StructureSetROISequence:
        if item.ROIName == "Heart":
            item.ReferencedFrameOfReferenceUID = "1.2.3.4.5"
    dataset.save_as(tmp_path / "RS.two.dcm")
    out = tmp_path / "dvh.csv"
    dose = folder / "rtdose.dcm"
    args = ["dvh", str(dose), str(tmp_path / "RS.two.dcm"), "--names", "Heart", "Breast", "--out", str(out)]
    assert main(args) == 0
    rows = {r["structure"]: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    assert rows["Heart"]["Dmean_Gy"] == "" and rows["Heart"]["volume_cc"] == "0"
    assert (
        "Heart: declared in frame of reference 1.2.3.4.5, the dose in 2.16.840.1.113662"
        in (rows["Heart"]["warnings"])
    )
    assert float(rows["Breast"]["Dmean_Gy"]) == pytest.approx(5.56, abs=0.01)
    assert "Heart: declared in frame of reference 1.2.3.4.5" in capsys.readouterr().out


def test_dvh_table_carries_what_the_dose_file_is(tmp_path, capsys):
    """A per-fraction dose, a biologically weighted one, relative doses: the CSV says so in every
    row and in its column names, not only on the terminal."""
    import pydicom

    folder = data_path("dicom", "dicompyler-breast")
    dataset = pydicom.dcmread(folder / "rtdose.dcm")
    dataset.DoseSummationType, dataset.DoseType = "FRACTION", "EFFECTIVE"
    dataset.save_as(tmp_path / "fraction.dcm")
    out = tmp_path / "fraction.csv"
    args = [str(folder / "rtss.dcm"), "--names", "Heart", "Breast", "--levels", "10"]
    assert main(["dvh", str(tmp_path / "fraction.dcm"), *args, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert {"Dmean_Gy(effective)", "V10Gy(effective)_cc"} <= set(rows[0])
    dmean = float(next(r for r in rows if r["structure"] == "Breast")["Dmean_Gy(effective)"])
    assert all(r["warnings"].startswith("fraction.dcm: the dose of one fraction") for r in rows)
    dataset.DoseSummationType, dataset.DoseType, dataset.DoseUnits = "PLAN", "PHYSICAL", "RELATIVE"
    dataset.save_as(tmp_path / "relative.dcm")
    out = tmp_path / "relative.csv"
    curves = tmp_path / "relative_curves.csv"
    relative_args = [*args[:-1], "0.5"]  # half the reference dose: V50%, not V0.5relative
    capsys.readouterr()
    command = [
        "dvh",
        str(tmp_path / "relative.dcm"),
        *relative_args,
        "--out",
        str(out),
        "--curves",
        str(curves),
    ]
    assert main(command) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    # doses in % of the reference, as the V_x name theirs (V50%); the D columns read "_relative"
    assert {"Dmean_%_of_reference", "D95%_%_of_reference", "V50%_cc", "V50%_%"} <= set(rows[0])
    breast = next(r for r in rows if r["structure"] == "Breast")
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Breast"))
    assert printed.endswith("% of reference")
    assert f"Dmean {float(breast['Dmean_%_of_reference']):.2f}" in " ".join(printed.split())
    assert float(breast["Dmean_%_of_reference"]) == pytest.approx(100 * dmean, abs=0.01)  # the same dose
    curve = [r for r in csv.DictReader(open(curves, encoding="utf-8")) if r["structure"] == "Breast"]
    highest = max(float(r["dose_%_of_reference"]) for r in curve)
    assert highest == pytest.approx(float(breast["Dmax_%_of_reference"]), abs=1)  # its bins too
    assert all("fractions of the planning system's reference dose, not Gy" in r["warnings"] for r in rows)


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "{a}", "{b}", "--out", "{out}/r.csv"],
        ["dvh", "{a}", "{b}", "--out", "{out}/d.csv", "--curves", "{out}/d.csv"],
    ],
    ids=["compare-report-as-csv", "dvh-curves-over-table"],
)
def test_one_file_named_for_two_outputs_is_refused(command, tmp_path, capsys):
    """A report and its CSV, or a table and its curves, at one path: one would replace the other."""
    _label_map(tmp_path / "a.nii.gz", 0)
    _label_map(tmp_path / "b.nii.gz", 2)
    places = {"a": str(tmp_path / "a.nii.gz"), "b": str(tmp_path / "b.nii.gz"), "out": str(tmp_path)}
    assert main([part.format(**places) for part in command]) == 1
    assert "named for two of the outputs" in capsys.readouterr().err


def test_compare_csv_names_its_units_and_unmatched_names_are_listed(tmp_path, capsys):
    _label_map(tmp_path / "a.nii.gz", 0)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz")))
    only_one = sitk.GetImageFromArray((labels == 1).astype(np.uint8))
    only_one.SetSpacing((1.0, 1.0, 2.5))
    sitk.WriteImage(only_one, str(tmp_path / "b.nii.gz"))
    out = tmp_path / "r.html"
    assert main(["compare", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out.with_suffix(".csv"), encoding="utf-8")))
    assert "relative_volume_difference_fraction" in row and "relative_volume_difference" not in row
    said = "1 structure pair(s) compared, mean Dice 1.000; only in the reference (not compared, not in "
    assert said + "the mean): Label_2" in capsys.readouterr().out


def test_a_curves_file_that_cannot_be_finished_leaves_the_earlier_one_whole(tmp_path, monkeypatch, capsys):
    from planning.dvh import DVH

    folder = data_path("dicom", "dicompyler-breast")
    curves = tmp_path / "curves.csv"
    args = ["dvh", str(folder / "rtdose.dcm"), str(folder / "rtss.dcm"), "--out", str(tmp_path / "d.csv")]
    assert main([*args, "--curves", str(curves)]) == 0
    earlier = curves.read_bytes()
    calls = []

    def disk_full_on_the_third(self):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self)

    real = DVH.differential
    monkeypatch.setattr(DVH, "differential", disk_full_on_the_third)
    assert main([*args, "--curves", str(curves)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert curves.read_bytes() == earlier and sorted(p.name for p in tmp_path.iterdir()) == [
        "curves.csv",
        "d.csv",
    ]


def test_compare_pairs_structures_named_differently_when_told(tmp_path, capsys):
    """TG-263 names against clinical ones (Lung_L / Lt Lung): unmatched by name, paired by --pair,
    and the CSV says the pair was named explicitly; a pair naming an absent structure is refused."""
    _label_map(tmp_path / "a.nii.gz", 0)
    _label_map(tmp_path / "b.nii.gz", 2)
    (tmp_path / "a.json").write_text(json.dumps({"1": "Lt Lung", "2": "A_Aorta"}))
    (tmp_path / "b.json").write_text(json.dumps({"1": "Lung_L", "2": "Aorta"}))
    out = tmp_path / "r.html"
    arguments = ["compare", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--out", str(out)]
    assert main([*arguments, "--pair", "Lt Lung=Lung_L", "--pair", "A_Aorta = Aorta"]) == 0
    rows = list(csv.DictReader(open(out.with_suffix(".csv"), encoding="utf-8")))
    assert [(r["reference_structure"], r["test_structure"], r["note"]) for r in rows] == [
        ("Lt Lung", "Lung_L", "paired explicitly"),
        ("A_Aorta", "Aorta", "paired explicitly"),
    ]
    assert float(rows[0]["dice"]) == pytest.approx(2 * 13 / 30) and float(rows[1]["dice"]) == 1.0
    printed = capsys.readouterr().out
    assert "Lt Lung ↔ Lung_L" in printed and "2 structure pair(s) compared" in printed
    assert main([*arguments, "--pair", "Lt Lung=Lung_R"]) == 1
    assert (
        "the b.nii.gz set has no structure 'Lung_R' (named in an explicit pair); its structures are Lung_L"
        in (capsys.readouterr().err)
    )
    with pytest.raises(SystemExit):
        main([*arguments, "--pair", "Lt Lung"])
    assert (
        "'Lt Lung' is not a pair: write the reference name, '=' and the test name" in capsys.readouterr().err
    )
