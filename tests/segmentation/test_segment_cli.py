"""`delineo segment` and `delineo models` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from support.data import data_path
from support.dicom_factory import write_ct_series
from support.segmentation_models import dice, phantom, write_model

from planning.imageio import load_volume
from planning.rtstruct.reader import read_rtstruct
from segmentation import registry
from workstation.cli import main


@pytest.fixture
def spheres_model(tmp_path, monkeypatch):
    """A test model "spheres" (HU thresholds: Spheres > 100, Dense > 500) where $DELINEO_MODELS
    points."""
    models = tmp_path / "models"
    write_model(models / "spheres", [100.0, 500.0], names=["Spheres", "Dense"])
    monkeypatch.setenv("DELINEO_MODELS", str(models))
    registry.clear_cache()


def _rules(image, out, *structures: str) -> int:
    """`delineo segment IMAGE --model ct_rules --structures ... --out OUT`."""
    command = ["segment", str(image), "--model", "ct_rules", "--structures", *structures]
    return main([*command, "--out", str(out)])


def test_rtstruct_out_from_a_dicom_series(tmp_path, capsys):
    volume, truth = phantom()
    write_ct_series(tmp_path / "ct", volume.array, spacing_xyz=volume.grid.spacing_xyz)
    out = tmp_path / "rules.dcm"
    assert _rules(tmp_path / "ct", out, "External", "Bone") == 0
    printed = capsys.readouterr()
    assert "External" in printed.out and "100.0%" in printed.err  # the progress bar finished
    loaded = load_volume(tmp_path / "ct")
    structures = read_rtstruct(out, loaded)
    assert structures.names() == ["External", "Bone"]
    # each ROI names the model and version that drew it (ROI Description)
    assert {s.description for s in structures} == {"Auto-contoured by ct_rules 1.0"}
    assert dice(structures["External"].mask.full(), truth["body"]) > 0.97
    assert dice(structures["Bone"].mask.full(), truth["small"]) > 0.8  # the 800 HU sphere


def test_mask_folder_keeps_overlaps_and_label_map_names(tmp_path, spheres_model, capsys):
    volume, truth = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    assert main(["segment", str(image), "--model", "spheres", "--out", str(tmp_path / "masks")]) == 0
    spheres = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks" / "Spheres.nii.gz"))) > 0
    dense = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks" / "Dense.nii.gz"))) > 0
    assert dense.any() and not (dense & ~spheres).any()  # overlapping structures both kept
    assert dice(spheres, truth["big"] | truth["small"]) > 0.9
    assert "not written by this run" not in capsys.readouterr().out
    assert main(["segment", str(image), "--model", "spheres", "--out", str(tmp_path / "labels.nii.gz")]) == 0
    assert json.loads((tmp_path / "labels.json").read_text()) == {"1": "Spheres", "2": "Dense"}
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "labels.nii.gz")))
    np.testing.assert_array_equal(labels == 2, dense)
    # the label map holds Spheres only outside Dense: the warning and the table say how much
    printed = capsys.readouterr().out
    kept, drawn = int((labels == 1).sum()), int(spheres.sum())
    [warning] = [line for line in printed.splitlines() if "more than one structure" in line]
    assert f"Spheres keeps {kept:,} of {drawn:,} voxels ({kept / drawn:.0%}" in warning
    assert "Dense keeps" not in warning
    assert "a mask folder (--out FOLDER) or an RTSTRUCT (--out NAME.dcm) keeps overlaps" in warning
    voxel_cc = float(np.prod(volume.grid.spacing_xyz)) / 1000
    [row] = [line for line in printed.splitlines() if line.strip().startswith("Spheres")]
    assert f"({kept * voxel_cc:.1f} cc in labels.nii.gz: overlaps lost)" in row
    # another tile overlap: the same spheres; out of range, or for a model without tiles: refused
    overlapped = tmp_path / "overlap.nii.gz"
    assert (
        main(["segment", str(image), "--model", "spheres", "--out", str(overlapped), "--overlap", "0.25"])
        == 0
    )
    assert dice(sitk.GetArrayFromImage(sitk.ReadImage(str(overlapped))) == 2, dense) > 0.95
    with pytest.raises(SystemExit):
        main(["segment", str(image), "--model", "spheres", "--out", str(overlapped), "--overlap", "1"])
    assert "--overlap: must be from 0 to less than 1, got 1" in capsys.readouterr().err
    assert (
        main(["segment", str(image), "--model", "ct_rules", "--out", str(overlapped), "--overlap", "0.5"])
        == 1
    )
    assert "--overlap applies to network models only; ct_rules has no tiles" in capsys.readouterr().err
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "ct_rules 1.0  (built-in" in listing and "spheres 0.1  (user, delineo, CT)" in listing
    assert "structures: Spheres, Dense" in listing
    models_folder = tmp_path / "models"  # $DELINEO_MODELS: not taken for TotalSegmentator's folder
    assert f"of those, folders that exist: {models_folder} (user)" in listing


def test_rtstruct_needs_dicom_input_and_unknown_models_are_named(tmp_path, capsys):
    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    assert main(["segment", str(image), "--model", "ct_rules", "--out", str(tmp_path / "x.dcm")]) == 1
    assert "an RTSTRUCT needs DICOM images" in capsys.readouterr().err
    assert main(["segment", str(image), "--model", "no_such_model", "--out", str(tmp_path / "x")]) == 1
    assert "no model named 'no_such_model'; available: ct_rules" in capsys.readouterr().err
    # images whose UIDs an RTSTRUCT cannot reference are refused before the model runs
    one_slice = data_path("dicom", "rt-utils", "one_slice_data")
    assert main(["segment", str(one_slice), "--model", "ct_rules", "--out", str(tmp_path / "x.dcm")]) == 1
    captured = capsys.readouterr()
    assert "the images lack FrameOfReferenceUID" in captured.err and "Rule-based" not in captured.err
    assert main(["segment", str(image), "--model", "ct_rules", "--out", str(tmp_path / "out.txt")]) == 1
    assert "--out out.txt: not an output this command writes" in capsys.readouterr().err
    assert not (tmp_path / "out.txt").exists()


def test_a_broken_model_folder_or_a_taken_name_does_not_hide_the_others(
    tmp_path, monkeypatch, capsys, caplog
):
    """A folder whose dataset.json is JSON of the wrong shape is reported and skipped; a user's
    model named as the built-in one is listed beside it under a name of its own."""
    models = tmp_path / "models"
    broken = models / "Dataset998_List" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (broken / "fold_0").mkdir(parents=True)
    (broken / "plans.json").write_text("{}")
    (broken / "dataset.json").write_text("[1, 2]")
    copy = write_model(models / "my_copy", [100.0], names=["Spheres"])
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(
        json.dumps({**manifest, "name": "head_neck_openkbp", "version": "9.9"})
    )
    monkeypatch.setenv("DELINEO_MODELS", str(models))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("nnUNet_results", "TOTALSEG_HOME_DIR", "TOTALSEG_WEIGHTS_PATH"):
        monkeypatch.delenv(variable, raising=False)
    registry.clear_cache()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "head_neck_openkbp 0.6.0  (built-in" in listing
    assert f"head_neck_openkbp@user 9.9  (user, delineo, CT)  [{copy}]" in listing
    assert f"skipping model folder {broken}: {broken / 'dataset.json'}: not a JSON object" in caplog.text
    assert (
        "two models are named 'head_neck_openkbp'" in caplog.text
        and "'head_neck_openkbp@user'" in caplog.text
    )
    volume, truth = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    out = tmp_path / "out"
    assert (
        main(["segment", str(image), "--model", "ct_rules", "--structures", "External", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["segment", str(image), "--model", "head_neck_openkbp@user", "--out", str(out / "copy")]) == 0
    assert "head_neck_openkbp@user: 1 structure(s)" in capsys.readouterr().out  # runs under its listed name
    spheres = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "copy" / "Spheres.nii.gz"))) > 0
    assert dice(spheres, truth["big"] | truth["small"]) > 0.9


def test_fold_and_structure_mistakes_are_refused_before_loading(tmp_path, spheres_model, monkeypatch, capsys):
    """--folds takes fold numbers or 'all'; --structures are checked against the model's list
    before the image and the model are loaded (minutes on a big series)."""
    image = tmp_path / "ct.nii.gz"
    out = str(tmp_path / "labels.nii.gz")
    with pytest.raises(SystemExit):
        main(["segment", str(image), "--model", "spheres", "--out", out, "--folds", "0", "x"])
    assert "--folds: expected a fold number (0, 1, 2, …) or 'all', got 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["segment", str(image), "--model", "spheres", "--out", out, "--folds", "-1"])
    assert "got '-1'" in capsys.readouterr().err

    def not_now(*args, **kwargs):
        raise AssertionError("loaded before the structures were checked")

    monkeypatch.setattr("planning.imageio.load_volume", not_now)
    monkeypatch.setattr(registry, "load_model", not_now)
    for model, drawn in (("spheres", "Spheres, Dense"), ("ct_rules", "External, Lung_L, Lung_R, Bone")):
        command = ["segment", str(image), "--model", model, "--out", out, "--structures", "Bone", "Lung"]
        assert main(command) == 1
        missing = "'Bone', 'Lung'" if model == "spheres" else "'Lung'"
        assert f"{model} has no structure {missing}; it draws: {drawn}" in capsys.readouterr().err


def test_mirroring_is_offered_for_every_model_that_can_mirror(tmp_path, spheres_model, capsys):
    """--mirroring used to be refused for every model but nnU-Net's, even Delineo models that
    mirror by default. A Delineo model mirrors along its manifest's axes (--no-mirroring: not
    at all); one trained without mirrored images, or a rules model, is refused naming why."""
    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    out = tmp_path / "labels.nii.gz"
    command = ["segment", str(image), "--model", "spheres", "--out", str(out), "--overwrite"]
    assert main([*command, "--mirroring"]) == 1
    assert "spheres was not trained on mirrored images" in capsys.readouterr().err
    rules = ["segment", str(image), "--model", "ct_rules", "--out", str(out), "--mirroring"]
    assert main(rules) == 1
    assert "mirroring applies to network models; ct_rules draws by rules" in capsys.readouterr().err

    manifest_path = tmp_path / "models" / "spheres" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["inference"]["mirror_axes_zyx"] = [2]
    manifest_path.write_text(json.dumps(manifest))
    registry.clear_cache()
    spheres = {}
    for choice in ("--mirroring", "--no-mirroring"):
        assert main([*command, choice]) == 0
        spheres[choice] = sitk.GetArrayFromImage(sitk.ReadImage(str(out))) == 1
    np.testing.assert_array_equal(spheres["--mirroring"], spheres["--no-mirroring"])  # voxel by voxel
    entry = registry.find_model("spheres")
    for mirroring, axes in ((True, (2,)), (False, ())):
        options = registry.model_options(entry, mirroring=mirroring)
        assert registry.load_model("spheres", **options).recipe.mirror_axes == axes


def test_a_mask_folder_names_the_masks_this_run_did_not_write(tmp_path, monkeypatch, capsys):
    """Re-running into a mask folder with fewer --structures keeps the earlier masks (nothing of
    the user's is deleted) and names them: they are not this run's."""
    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    out = tmp_path / "masks"
    assert _rules(image, out, "External", "Bone") == 0
    assert "not written by this run" not in capsys.readouterr().out
    (out / "notes.txt").write_text("mine")
    command = ["segment", str(image), "--model", "ct_rules", "--structures", "External", "--out", str(out)]
    assert main([*command, "--overwrite"]) == 0
    [warning] = [line for line in capsys.readouterr().out.splitlines() if "not written by this run" in line]
    assert f"{out}: 1 mask file(s) there were not written by this run" in warning
    assert "Bone.nii.gz" in warning and "External" not in warning and "notes.txt" not in warning
    assert (out / "Bone.nii.gz").exists() and (out / "notes.txt").exists()
    # the input image, when in the folder, is not one of them
    sitk.WriteImage(volume.to_sitk(), str(out / "ct.nii.gz"))
    (out / "Bone.nii.gz").unlink()
    (out / "External.nii.gz").unlink()
    assert _rules(out / "ct.nii.gz", out, "External") == 0
    assert "not written by this run" not in capsys.readouterr().out


def test_a_structure_not_found_is_said_and_gets_no_mask_file(tmp_path, spheres_model, capsys):
    """An organ outside the field of view: named as not found, and no empty mask file (training
    would read one as "delineated, absent")."""
    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.with_array(volume.array.clip(max=400)).to_sitk(), str(image))  # no dense sphere
    assert main(["segment", str(image), "--model", "spheres", "--out", str(tmp_path / "masks")]) == 0
    assert "not found in this image: Dense (no mask file written for them)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["Spheres.nii.gz"]
    # an earlier run's mask of it (another image) does not stay as if it were this image's
    sitk.WriteImage(volume.to_sitk(), str(tmp_path / "full.nii.gz"))
    assert (
        main(
            ["segment", str(tmp_path / "full.nii.gz"), "--model", "spheres", "--out", str(tmp_path / "again")]
        )
        == 0
    )
    again = ["segment", str(image), "--model", "spheres", "--out", str(tmp_path / "again"), "--overwrite"]
    assert main(again) == 0
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["Spheres.nii.gz"]
    assert "an earlier mask of Dense, not found now, was removed" in capsys.readouterr().out


def test_files_already_there_are_not_replaced_without_overwrite(tmp_path, monkeypatch, capsys):
    """The user's own Lung_R.nii.gz beside the CT, or an RTSTRUCT of the same name: refused before
    the run (nothing loaded), kept byte for byte."""
    from segmentation import registry

    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    (tmp_path / "case").mkdir()
    (tmp_path / "case" / "Bone.nii.gz").write_bytes(b"the physician's own contour")
    (tmp_path / "plan.dcm").write_bytes(b"an earlier RTSTRUCT")
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: pytest.fail("ran before refusing"))
    assert _rules(image, tmp_path / "case", "External", "Bone") == 1
    assert f"Bone.nii.gz in {tmp_path / 'case'}: already there, not replaced (give --overwrite" in (
        capsys.readouterr().err
    )
    assert _rules(image, tmp_path / "plan.dcm", "External") == 1
    assert "plan.dcm: already there, not replaced" in capsys.readouterr().err
    assert (tmp_path / "case" / "Bone.nii.gz").read_bytes() == b"the physician's own contour"
    assert (tmp_path / "plan.dcm").read_bytes() == b"an earlier RTSTRUCT"


def test_an_rtstruct_holds_no_empty_roi_for_a_structure_not_found(tmp_path, spheres_model, capsys):
    """An empty "Dense" ROI would read in a planning system as delineated and absent."""
    volume, _ = phantom()
    write_ct_series(tmp_path / "ct", volume.array.clip(max=400), spacing_xyz=volume.grid.spacing_xyz)
    out = tmp_path / "spheres.dcm"
    assert main(["segment", str(tmp_path / "ct"), "--model", "spheres", "--out", str(out)]) == 0
    assert "not found in this image: Dense (no ROI written for them)" in capsys.readouterr().out
    assert read_rtstruct(out, load_volume(tmp_path / "ct")).names() == ["Spheres"]
    write_ct_series(tmp_path / "air", np.full_like(volume.array, -1000), spacing_xyz=volume.grid.spacing_xyz)
    air_out = tmp_path / "air.dcm"
    assert main(["segment", str(tmp_path / "air"), "--model", "spheres", "--out", str(air_out)]) == 1
    assert "not written: the model found none of its structures in this image" in capsys.readouterr().err
    assert not air_out.exists()


def test_an_output_drawn_only_when_named_is_left_out_unless_named(tmp_path, spheres_model, capsys):
    """A manifest output with "by_default": false (the head-and-neck model's PTVs, guessed from
    the image alone) is drawn only when --structures names it, and the run says so."""
    manifest_path = tmp_path / "models" / "spheres" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"][1]["by_default"] = False
    manifest_path.write_text(json.dumps(manifest))
    registry.clear_cache()
    volume, _ = phantom()
    image = tmp_path / "ct.nii.gz"
    sitk.WriteImage(volume.to_sitk(), str(image))
    assert main(["segment", str(image), "--model", "spheres", "--out", str(tmp_path / "masks")]) == 0
    assert "not drawn unless named with --structures: Dense" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["Spheres.nii.gz"]
    named = [
        "segment",
        str(image),
        "--model",
        "spheres",
        "--structures",
        "Dense",
        "--out",
        str(tmp_path / "d"),
    ]
    assert main(named) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["Dense.nii.gz"]
    capsys.readouterr()
    assert main(["models"]) == 0 and "Dense (only when named)" in capsys.readouterr().out
