"""nnU-Net v2 model folders through Delineo's engine, compared with nnunetv2's own predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.nnunet_folder import label_map, nnunet_predictor, write_nnunet_folder
from support.segmentation_models import one_thread  # noqa: F401  (fixture)

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.volume import Volume
from segmentation import registry
from segmentation.engine.model import WeightsError
from segmentation.nnunet import NnUNetError, read_nnunet_folder, structure_name

LABELS = ["liver", "kidney_left", "Spleen"]
SPACING_XYZ = (1.2, 1.1, 3.0)


def ct_volume(shape=(40, 70, 64)) -> Volume:
    """A body (ellipse) with smooth structure and noise, air around: no exact zeros."""
    rng = np.random.default_rng(1)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    body = ((y - shape[1] / 2) / (shape[1] * 0.42)) ** 2 + ((x - shape[2] / 2) / (shape[2] * 0.44)) ** 2 < 1
    hu = -1000 + 1040 * body + 300 * np.sin(z / 5.0) * np.cos(x / 7.0) + rng.normal(0, 20, shape)
    hu = np.where(hu == 0, 1, hu).astype(np.int16)
    return Volume(hu, Grid(shape, SPACING_XYZ), modality="CT")


def labels_of(structures, model) -> np.ndarray:
    return label_map(structures, model.outputs)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_nnunet_folder(tmp_path_factory.mktemp("nnunet"), LABELS, folds=(0, 1))


def nnunet_prediction(folder, volume: Volume, folds) -> np.ndarray:
    """nnunetv2's own prediction: the reference."""
    return nnunet_predictor(folder, folds).predict_single_npy_array(
        volume.array[None].astype(np.float32), {"spacing": list(volume.grid.spacing_zyx)}
    )


@pytest.fixture(scope="module")
def reference(folder):
    return nnunet_prediction(folder, ct_volume(), (0, 1))


def test_labels_equal_nnunet_predictor(folder, reference):
    model = read_nnunet_folder(folder, crop="none")
    volume = ct_volume()
    labels = labels_of(model.predict(volume, device="cpu"), model)
    agreement = float(np.mean(labels == reference))
    print(f"agreement with nnUNetPredictor: {agreement:.5f}")
    assert agreement >= 0.999
    assert len(np.unique(reference)) == 4  # every label occurs: the comparison is not trivial
    assert [o.name for o in model.outputs] == ["Liver", "Kidney_L", "Spleen"]


def test_more_classes_than_features_still_equal_nnunet_predictor(tmp_path):
    """Nine labels from two folds of 4 features each: the engine blends the features and applies
    the last layers once (engine/head.py); the labels are still nnU-Net's."""
    from segmentation.engine.predictor import Predictor

    labels = [f"organ_{k}" for k in range(1, 10)]
    folder = write_nnunet_folder(tmp_path, labels, folds=(0, 1), seed=5)
    model = read_nnunet_folder(folder, crop="none")
    cpu = torch.device("cpu")
    assert Predictor(model.networks_on(cpu), (), cpu).head is not None  # features are blended
    volume = ct_volume()
    ours = labels_of(model.predict(volume, device="cpu"), model)
    reference = nnunet_prediction(folder, volume, (0, 1))
    agreement = float(np.mean(ours == reference))
    print(f"agreement with nnUNetPredictor: {agreement:.5f}")
    assert len(np.unique(reference)) >= 5
    assert agreement >= 0.999


def test_an_mr_model_normalised_inside_its_non_zero_region_equals_nnunet_predictor(tmp_path):
    """nnU-Net MR models planned with `use_mask_for_norm` (an image cropped much by its non-zero
    region) take the z-score inside that region and leave the zeros around it at zero."""
    labels = ["brain", "lesion"]
    folder = write_nnunet_folder(
        tmp_path, labels, normalization="ZScoreNormalization", use_mask_for_norm=True, channel_name="T1"
    )
    ct = ct_volume()
    head = ct.array > -500  # the body of the phantom, with zeros (no signal) around it
    intensity = np.where(head, (ct.array + 1200).clip(1, None), 0).astype(np.int16)
    volume = Volume(intensity, ct.grid, modality="MR")
    model = read_nnunet_folder(folder)
    ours = labels_of(model.predict(volume, device="cpu"), model)
    reference = nnunet_prediction(folder, volume, (0,))
    agreement = float(np.mean(ours == reference))
    print(f"agreement with nnUNetPredictor: {agreement:.5f}")
    assert len(np.unique(reference)) == 3 and agreement >= 0.999


def test_body_crop_changes_nothing_inside_the_patient(folder, reference):
    model = read_nnunet_folder(folder)  # crop="body" by default for CT
    volume = ct_volume()
    labels = labels_of(model.predict(volume, device="cpu"), model)
    body = volume.array > -500
    assert float(np.mean(labels[body] == reference[body])) >= 0.995


def test_old_plans_format_builds_the_same_network(tmp_path, folder):
    old = write_nnunet_folder(tmp_path, LABELS, folds=(0,), old_plans_format=True)
    new_model = read_nnunet_folder(folder, folds=[0], crop="none")
    old_model = read_nnunet_folder(old, crop="none")
    volume = ct_volume((20, 48, 40))
    a = labels_of(new_model.predict(volume, device="cpu"), new_model)
    b = labels_of(old_model.predict(volume, device="cpu"), old_model)
    np.testing.assert_array_equal(a, b)


def _regions_as_labels(structures, shape) -> np.ndarray:
    """Region structures as nnU-Net writes them: label k + 1 for region k, later over earlier."""
    labels = np.zeros(shape, np.uint8)
    for value, structure in enumerate(structures, start=1):
        labels[structure.mask.full()] = value
    return labels


def test_region_models_give_overlapping_structures(tmp_path):
    folder = write_nnunet_folder(tmp_path, ["whole", "core"], regions=True, seed=3)
    model = read_nnunet_folder(folder, crop="none")
    assert model.recipe.activation == "sigmoid"
    volume = ct_volume((24, 64, 56))
    structures = model.predict(volume, device="cpu")
    assert structures.names() == ["whole", "core"]
    # nnU-Net writes regions in order, later ones over earlier ones: compare on that label map.
    labels = _regions_as_labels(structures, volume.shape)
    reference = nnunet_prediction(folder, volume, (0,))
    assert len(np.unique(reference)) > 1
    assert float(np.mean(labels == reference)) >= 0.999


def test_checkpoints_holding_code_are_refused(tmp_path):
    import argparse

    folder = write_nnunet_folder(tmp_path, LABELS)
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    state = torch.load(checkpoint, weights_only=False)
    state["init_args"]["trap"] = argparse.Namespace(run="code")
    torch.save(state, checkpoint)
    with pytest.raises(WeightsError, match="cannot be read safely"):
        read_nnunet_folder(folder).predict(ct_volume((20, 48, 40)), device="cpu")


def test_unknown_network_classes_are_refused(tmp_path):
    folder = write_nnunet_folder(tmp_path, LABELS)
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "os.system"
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(NnUNetError, match="not supported"):
        read_nnunet_folder(folder).predict(ct_volume((20, 48, 40)), device="cpu")


def test_label_names_become_tg263_names():
    assert structure_name("kidney_left") == "Kidney_L"
    assert structure_name("urinary_bladder") == "Bladder"
    assert structure_name("spinal_cord") == "SpinalCord"
    assert structure_name("adrenal_gland_left") == "adrenal_gland_left"


@pytest.mark.parametrize(
    ("channel", "normalization", "modality"),
    [
        ("T2", "ZScoreNormalization", "MR"),
        ("FLAIR", "ZScoreNormalization", "MR"),
        ("noNorm", "NoNormalization", ""),
        ("CT", "CTNormalization", "CT"),
        ("image", "CTNormalization", "CT"),
    ],
)
def test_a_listed_nnunet_model_names_the_modality_its_run_checks(tmp_path, channel, normalization, modality):
    # the auto-segmentation dialog refuses a model whose listed modality differs from the
    # image's: a T2 model listed as "T2" was refused on every MR, which its run accepts
    folder = write_nnunet_folder(tmp_path, LABELS, channel_name=channel, normalization=normalization)
    assert registry.describe_folder(folder).modality == modality
    assert read_nnunet_folder(folder).modality == modality


def test_registry_finds_nnunet_results_and_totalsegmentator(tmp_path, monkeypatch):
    write_nnunet_folder(tmp_path / "results", LABELS)
    home = tmp_path / "totalseg"
    total = write_nnunet_folder(home / "nnunet" / "results", ["spleen"])
    renamed = total.parent.parent / "Dataset291_TotalSegmentator_part1_organs_1559subj"
    total.parent.rename(renamed)
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    entries = {e.name: e for e in registry.list_models()}
    assert entries["Dataset999_Test/3d_fullres"].origin == "nnU-Net"
    assert entries["Dataset999_Test/3d_fullres"].modality == "CT"
    assert entries["Dataset999_Test/3d_fullres"].structures == ("Liver", "Kidney_L", "Spleen")
    name = "Dataset291_TotalSegmentator_part1_organs_1559subj/3d_fullres"
    assert entries[name].origin == "TotalSegmentator"
    registry.clear_cache()
    model = registry.load_model("Dataset291")
    assert model.recipe.orientation == "RAS"  # TotalSegmentator works on canonical RAS arrays
    assert registry.load_model("Dataset291") is model  # kept loaded
    assert registry.load_model("Dataset291", folds=[0]) is not model  # other options, other model

    # weights kept elsewhere, named as TotalSegmentator itself is told (TOTALSEG_WEIGHTS_PATH)
    elsewhere = tmp_path / "weights"
    elsewhere.mkdir()
    renamed.rename(elsewhere / renamed.name)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(elsewhere))
    assert {e.name: e for e in registry.list_models()}[name].origin == "TotalSegmentator"


def _only_root(monkeypatch, tmp_path, results=None, user=None):
    """Models found in `results` (as $nnUNet_results) and `user` ($DELINEO_MODELS) only."""
    for variable in ("DELINEO_MODELS", "nnUNet_results", "TOTALSEG_WEIGHTS_PATH"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "no_totalseg"))
    if results is not None:
        monkeypatch.setenv("nnUNet_results", str(results))
    if user is not None:
        monkeypatch.setenv("DELINEO_MODELS", str(user))
    registry.clear_cache()


@pytest.mark.parametrize(
    ("dataset", "what"),
    [
        ([1, 2], "not a JSON object (it holds a list)"),
        ({"labels": ["background", "liver"], "channel_names": {"0": "CT"}}, "'labels' must map"),
        ({"labels": {"background": 0, "liver": 1}, "channel_names": ["CT"]}, "'channel_names' must map"),
    ],
)
def test_a_malformed_dataset_json_leaves_its_folder_out_with_a_warning(
    tmp_path, monkeypatch, caplog, dataset, what
):
    """Valid JSON of the wrong shape: that folder is reported, every other model still lists."""
    write_nnunet_folder(tmp_path / "results", LABELS)
    training = write_nnunet_folder(tmp_path / "other", LABELS)
    broken = training.parent.rename(tmp_path / "results" / "Dataset998_Broken") / training.name
    (broken / "dataset.json").write_text(json.dumps(dataset))
    _only_root(monkeypatch, tmp_path, results=tmp_path / "results")
    names = [e.name for e in registry.list_models()]
    assert "Dataset999_Test/3d_fullres" in names and "ct_rules" in names
    assert not any(n.startswith("Dataset998") for n in names)
    assert f"skipping model folder {broken}" in caplog.text and what in caplog.text
    assert registry.find_model("ct_rules").kind == "rules"
    with pytest.raises(NnUNetError, match=what.replace("(", r"\(").replace(")", r"\)")):
        registry.find_model(str(broken))


def test_region_models_with_an_ignore_label_run(tmp_path):
    """nnU-Net leaves the ignore label out of the regions (its LabelManager): the network has
    one channel per region, none for it."""
    folder = write_nnunet_folder(tmp_path, ["whole", "core"], regions=True, seed=3)
    dataset = json.loads((folder / "dataset.json").read_text())
    dataset["labels"]["ignore"] = 3
    (folder / "dataset.json").write_text(json.dumps(dataset))
    model = read_nnunet_folder(folder, crop="none")
    assert [o.name for o in model.outputs] == ["whole", "core"] and model.recipe.channels == 2
    volume = ct_volume((24, 64, 56))
    structures = model.predict(volume, device="cpu")
    assert structures.names() == ["whole", "core"]
    labels = _regions_as_labels(structures, volume.shape)
    reference = nnunet_prediction(folder, volume, (0,))
    assert len(np.unique(reference)) > 1 and float(np.mean(labels == reference)) >= 0.999
    assert registry.describe_folder(folder).structures == ("whole", "core")


def test_folds_without_a_final_checkpoint_are_named_in_a_warning(tmp_path):
    """As nnU-Net's predictor, folds chosen automatically are those holding the checkpoint; a
    fold whose training did not finish is left out, and the run says so."""
    folder = write_nnunet_folder(tmp_path, LABELS, folds=(0, 1))
    (folder / "fold_1" / "checkpoint_final.pth").rename(folder / "fold_1" / "checkpoint_latest.pth")
    model = read_nnunet_folder(folder)
    assert model.version == "nnU-Net v2, 1 fold(s)"
    volume = ct_volume((20, 48, 40))
    model.predict(volume, device="cpu")
    [warning] = [w for w in model.last_run.warnings if "fold_1" in w]
    assert "no checkpoint_final.pth" in warning and "from fold_0 only" in warning
    model.predict(volume, device="cpu")
    assert len([w for w in model.last_run.warnings if "fold_1" in w]) == 1  # once a run
    chosen = read_nnunet_folder(folder, folds=[0])  # folds asked for: nothing left out
    chosen.predict(volume, device="cpu")
    assert not any("fold_1" in w for w in chosen.last_run.warnings)
    with pytest.raises(NnUNetError, match="missing checkpoint"):
        read_nnunet_folder(folder, folds=[0, 1])


def test_two_trainings_of_one_configuration_get_a_name_each(tmp_path, monkeypatch, caplog):
    """Another trainer or plans for the same dataset and configuration: nnU-Net's default
    training keeps "DatasetXXX/configuration", the other is named with its trainer and plans."""
    import shutil

    default = write_nnunet_folder(tmp_path / "results", LABELS)
    other = default.parent / "nnUNetTrainerNoMirroring__nnUNetResEncUNetMPlans__3d_fullres"
    shutil.copytree(default, other)
    _only_root(monkeypatch, tmp_path, results=tmp_path / "results")
    entries = {e.name: e for e in registry.list_models()}
    other_name = "Dataset999_Test/nnUNetTrainerNoMirroring__nnUNetResEncUNetMPlans__3d_fullres"
    assert entries["Dataset999_Test/3d_fullres"].path == default
    assert entries[other_name].path == other
    assert "two models are named 'Dataset999_Test/3d_fullres'" in caplog.text
    assert f"is listed as {other_name!r}" in caplog.text
    with pytest.raises(DelineoError, match=f"ambiguous: Dataset999_Test/3d_fullres, {other_name}$"):
        registry.find_model("Dataset999")
    assert registry.find_model(other_name).path == other
    # given by its folder, it keeps the name it is listed under (the name its contours credit)
    assert registry.find_model(str(other)).name == other_name
    assert registry.load_model(str(other), folds=[0]).name == other_name


def test_folds_chosen_automatically_leave_fold_all_out_as_nnunet_does(tmp_path):
    """nnU-Net's predictor ensembles the numbered folds and leaves fold_all out (a model trained
    on every case, distributed beside them); asked for, or alone, fold_all is used."""
    import shutil

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folder = write_nnunet_folder(tmp_path, LABELS, folds=(0, 1))
    shutil.copytree(folder / "fold_1", folder / "fold_all")
    (folder / "fold_old").mkdir()  # not a fold: nnU-Net would not read it either
    assert nnUNetPredictor.auto_detect_available_folds(str(folder), "checkpoint_final.pth") == [0, 1]
    model = read_nnunet_folder(folder)
    assert model.version == "nnU-Net v2, 2 fold(s)" and not model.notes
    assert read_nnunet_folder(folder, folds=["all"]).version == "nnU-Net v2, 1 fold(s)"
    shutil.rmtree(folder / "fold_0")
    shutil.rmtree(folder / "fold_1")
    alone = read_nnunet_folder(folder)  # nnU-Net would find no fold; its users pass -f all
    assert alone.version == "nnU-Net v2, 1 fold(s)" and not alone.notes
    assert labels_of(alone.predict(ct_volume((20, 48, 40)), device="cpu"), alone).any()


def test_a_label_given_as_a_one_value_list_is_that_label(tmp_path):
    """nnU-Net's LabelManager makes a model region-based only for a label of several values;
    "kidney_left": [2] is label 2 of a softmax model, as nnunetv2 predicts it."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    folder = write_nnunet_folder(tmp_path, LABELS, seed=2)
    dataset = json.loads((folder / "dataset.json").read_text())
    dataset["labels"]["kidney_left"] = [2]
    (folder / "dataset.json").write_text(json.dumps(dataset))
    assert not LabelManager(dataset["labels"], None).has_regions
    model = read_nnunet_folder(folder, crop="none")
    assert model.recipe.activation == "softmax"
    assert [(o.channel, o.name) for o in model.outputs] == [(1, "Liver"), (2, "Kidney_L"), (3, "Spleen")]
    assert registry.describe_folder(folder).structures == ("Liver", "Kidney_L", "Spleen")
    volume = ct_volume((20, 48, 40))
    ours = labels_of(model.predict(volume, device="cpu"), model)
    reference = nnunet_prediction(folder, volume, (0,))
    assert (reference == 2).any() and float(np.mean(ours == reference)) >= 0.999  # Kidney_L drawn


def test_plans_its_checkpoint_does_not_fit_are_refused_before_the_network_is_built(tmp_path):
    """A plans.json asking for 2^16…2^19 features per stage over a 4…32 checkpoint: built for
    real, its parameters would take terabytes; built on the meta device, it is a clear error
    naming the folder, the fold and the tensors."""
    folder = write_nnunet_folder(tmp_path, LABELS, folds=(0, 1))
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [
        2**16,
        2**17,
        2**18,
        2**19,
    ]
    (folder / "plans.json").write_text(json.dumps(plans))
    model = read_nnunet_folder(folder)
    with pytest.raises(WeightsError) as error:
        model.networks_on("cpu")
    message = str(error.value)
    assert message.startswith(f"{folder / 'fold_0' / 'checkpoint_final.pth'}: weights do not fit the network")
    assert "plans.json (3d_fullres)" in message
    first = "encoder.stages.0.0.convs.0.conv.weight is (4, 1, 3, 3, 3) in the file, (65536, 1, 3, 3, 3)"
    assert first in message
