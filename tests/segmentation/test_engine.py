"""The inference engine with tiny known-answer models: geometry, outputs, progress, cancel,
memory errors, weights safety, the model cache."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from support.segmentation_models import dice, one_thread, phantom, write_model  # noqa: F401

from planning.errors import Cancelled, DelineoError
from planning.geometry import Grid
from planning.structures import GenerationAlgorithm, RoiType
from planning.volume import Volume
from segmentation.engine.back_to_grid import argmax_channels
from segmentation.engine.manifest import ManifestError, mirror_permutation, read_manifest
from segmentation.engine.model import WeightsError, from_manifest, read_state_dict
from segmentation.engine.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sigmoid_model(tmp_path):
    folder = write_model(tmp_path / "thresholds", [100.0, 500.0], names=["Spheres", "Dense"])
    return from_manifest(read_manifest(folder))


def test_sigmoid_model_draws_overlapping_structures_on_the_original_grid(sigmoid_model):
    volume, truth = phantom()
    result = sigmoid_model.predict(volume, device="cpu")
    assert result.grid is volume.grid
    assert result.names() == ["Spheres", "Dense"]
    spheres, dense = result["Spheres"], result["Dense"]
    assert spheres.algorithm == GenerationAlgorithm.AUTOMATIC
    assert spheres.description == dense.description == "Auto-contoured by thresholds 0.1"
    assert dice(spheres.mask.full(), truth["big"] | truth["small"]) > 0.9
    assert dice(dense.mask.full(), truth["small"]) > 0.85
    # Overlap is kept: every Dense voxel is also a Spheres voxel.
    assert np.count_nonzero(dense.mask.full() & ~spheres.mask.full()) == 0
    assert not spheres.mask.full()[~truth["body"]].any()


def test_keep_largest_drops_the_other_pieces_of_an_organ(tmp_path):
    folder = write_model(tmp_path / "m", [100.0], names=["Spheres"])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["outputs"][0]["keep_largest"] = True
    (folder / "manifest.json").write_text(json.dumps(manifest))
    volume, truth = phantom()
    volume.array[truth["small"]] = 40
    speck = np.zeros_like(truth["big"])
    speck[12:16, 50:54, 30:34] = True  # a 10 × 4 × 4 mm island in the body, far from "big"
    assert truth["body"][speck].all() and not (truth["big"] & speck).any()
    volume.array[speck] = 300
    model = from_manifest(read_manifest(folder))
    kept = model.predict(volume, device="cpu")["Spheres"].mask.full()
    assert dice(kept, truth["big"]) > 0.9 and not kept[speck].any()
    manifest["outputs"][0]["keep_largest"] = False
    (folder / "manifest.json").write_text(json.dumps(manifest))
    everything = from_manifest(read_manifest(folder)).predict(volume, device="cpu")["Spheres"].mask.full()
    assert everything[speck].any()


def _with_training_volumes(folder, ranges: list) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for output, span in zip(manifest["outputs"], ranges, strict=True):
        output["training_volume_cc"] = span
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_volumes_no_training_case_had_are_warned_about(tmp_path):
    folder = write_model(tmp_path / "m", [100.0, 500.0], names=["Spheres", "Dense"])
    volume, _ = phantom()

    def warnings(ranges, structures=None):
        _with_training_volumes(folder, ranges)
        model = from_manifest(read_manifest(folder))
        model.predict(volume, structures=structures, device="cpu")
        return model.last_run.warnings

    drawn = from_manifest(read_manifest(folder)).predict(volume, device="cpu")
    spheres, dense = drawn["Spheres"].volume_cc, drawn["Dense"].volume_cc  # about 15 and 2 cc
    assert 12 < spheres < 18 and 1 < dense < 3
    assert warnings([[5.0, 30.0], [1.0, 4.0]]) == []
    assert warnings([[5.0, 30.0], [0.1, 1.0]]) == [
        f"Dense: {dense:.1f} cc, larger than in any of m's training cases (0.1–1.0 cc); review it."
    ]
    assert warnings([[5.0, 30.0], [3.0, 9.0]]) == [
        f"Dense: {dense:.1f} cc, smaller than in any of m's training cases (3.0–9.0 cc); review it."
    ]
    # most organs far smaller than in any training case (or not found): another body site, or
    # only part of the region the model knows
    (found,) = warnings([[40.0, 90.0], [3.0, 9.0]])
    assert found.startswith(
        "Most organs m draws were not found or came out smaller than in any of its training cases "
        f"(their range in brackets): Spheres {spheres:.1f} cc (40.0–90.0 cc), "
        f"Dense {dense:.1f} cc (3.0–9.0 cc)."
    )
    assert "another body site, or only part of the region" in found
    # an organ not drawn at all is "not found" (outside the field of view), not a volume warning
    _with_training_volumes(folder, [[5.0, 30.0], [1.0, 4.0]])
    no_dense = volume.with_array(volume.array.clip(max=400))
    empty = from_manifest(read_manifest(folder))
    assert empty.predict(no_dense, device="cpu")["Dense"].mask.is_empty
    assert empty.last_run.warnings == []
    _with_training_volumes(folder, [[40.0, 90.0], [3.0, 9.0]])  # but it counts toward "most organs"
    model = from_manifest(read_manifest(folder))
    model.predict(no_dense, device="cpu")
    assert "Dense not found (3.0–9.0 cc)" in model.last_run.warnings[0]
    # an organ cut by the edge of the image: only part of it may be in view
    part = np.ascontiguousarray(volume.array[:, :, :22])  # the columns end through the big sphere
    cut = Volume(part, Grid(part.shape, volume.grid.spacing_xyz), "CT")
    _with_training_volumes(folder, [[20.0, 90.0], [0.0, 4.0]])  # Dense is cut away: no range
    model = from_manifest(read_manifest(folder))
    model.predict(cut, device="cpu")
    (found,) = model.last_run.warnings
    assert found.startswith("Spheres: ") and found.endswith(
        "(it reaches the edge of the image: only part of it may be in view)."
    )
    _with_training_volumes(folder, [[0.1, 0.5], [0.0, 4.0]])  # too large is not explained by the edge
    model = from_manifest(read_manifest(folder))
    model.predict(cut, device="cpu")
    assert model.last_run.warnings[0].endswith("; review it.")
    # only the structures asked for are judged
    (found,) = warnings([[40.0, 90.0], [3.0, 9.0]], structures=["Spheres"])
    assert found.startswith(f"Spheres: {spheres:.1f} cc, smaller than in any")


def test_volume_warnings_give_volumes_under_one_cc_to_two_significant_digits():
    # a few voxels of a fine CT are hundredths of a cc: "0.0 cc" would say nothing was drawn
    from planning.structures import Mask, Structure
    from segmentation.engine.manifest import OutputSpec
    from segmentation.engine.plausibility import volume_warnings

    grid = Grid((40, 40, 40), (0.5, 0.5, 1.0))
    array = np.zeros(grid.shape, bool)
    array[20, 20, 18:22] = True  # 4 voxels of 0.25 mm³: 0.001 cc
    drawn = [Structure("Esophagus", Mask.from_full(grid, array))]
    spec = OutputSpec(0, "Esophagus", RoiType.ORGAN, (255, 0, 0), training_volume_cc=(0.53, 40.87))
    assert volume_warnings(drawn, [spec], "m") == [
        "Esophagus: 0.001 cc, smaller than in any of m's training cases (0.53–40.9 cc); review it."
    ]


def test_softmax_model_gives_labels_and_types_from_names(tmp_path):
    folder = write_model(tmp_path / "labels", [100.0, 500.0], activation="softmax", names=["GTV", "Bones"])
    model = from_manifest(read_manifest(folder))
    volume, truth = phantom()
    result = model.predict(volume, device="cpu")
    assert result["GTV"].roi_type == RoiType.GTV
    gtv, bones = result["GTV"].mask.full(), result["Bones"].mask.full()
    assert not (gtv & bones).any()
    assert dice(bones, truth["small"]) > 0.85
    assert dice(gtv, truth["big"]) > 0.85


def test_structures_option_and_unknown_names(sigmoid_model):
    volume, _ = phantom()
    assert sigmoid_model.predict(volume, structures=["Dense"], device="cpu").names() == ["Dense"]
    with pytest.raises(DelineoError, match="no structure 'Liver'"):
        sigmoid_model.predict(volume, structures=["Liver"], device="cpu")


def test_crop_to_body_gives_the_same_answer_with_fewer_tiles(tmp_path):
    volume, truth = phantom(shape=(24, 160, 160))
    results = {}
    for crop in ("body", "none"):
        model = from_manifest(read_manifest(write_model(tmp_path / crop, [100.0], crop=crop)))
        results[crop] = model.predict(volume, device="cpu")["Region_0"].mask.full()
        results[crop + "_tiles"] = model.last_run.tiles
    assert results["body_tiles"] < results["none_tiles"]
    assert dice(results["body"], results["none"]) > 0.99


def test_body_box_keeps_slices_where_only_a_strip_of_the_patient_is_imaged():
    """OpenKBP-like: below the neck only a strip around the spine is imaged. The opening that
    drops thin devices cuts it off the neck, and it is too small a component to be kept; but its
    slices hold the spinal cord and the larynx."""
    from segmentation.rules.body import body_box

    hu = np.full((60, 64, 64), -1024, np.int16)
    hu[:30, 12:52, 12:52] = 40  # neck: 30 slices of 3 mm
    hu[30, 30:32, 30:32] = 300  # a thinner slice, which the opening removes: the strip is cut off
    hu[31:, 29:32, 29:32] = 300  # then a 3 × 3 pixel strip of bone (12 × 12 mm)
    hu[:, 4, 8:56] = 100  # a thin shell beside the patient: left out of the box in-plane
    box = body_box(hu, (3.0, 4.0, 4.0), margin_mm=0.0)
    assert box[0] == slice(0, 60)
    assert box[1] == slice(12, 52) and box[2] == slice(12, 52)


@pytest.mark.parametrize("direction", [np.diag([1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])])
def test_flipped_grids_come_back_where_they_belong(tmp_path, direction):
    model = from_manifest(read_manifest(write_model(tmp_path / "m", [500.0], orientation="LPI")))
    volume, truth = phantom(direction=direction)
    mask = model.predict(volume, device="cpu")["Region_0"].mask.full()
    assert dice(mask, truth["small"]) > 0.85


def test_mirror_swaps_laterality():
    names = ["Brainstem", "Parotid_L", "Parotid_R", "Lens_L", None]
    assert mirror_permutation(names) == [0, 2, 1, 3, 4]


@pytest.mark.parametrize(("orientation", "axis"), [("LPS", 2), ("RAI", 2), ("PLS", 1), ("PSL", 0)])
def test_the_left_right_axis_and_lateral_channels_come_from_the_manifest(tmp_path, orientation, axis):
    names = ["Parotid_R", "Brainstem", "Parotid_L"]
    folder = write_model(tmp_path / "m", [0.0, 100.0, 200.0], names=names, orientation=orientation)
    assert from_manifest(read_manifest(folder)).recipe.lateral_mirror == (axis, (2, 1, 0))


def test_argmax_over_channels_equals_torch_argmax_ties_included():
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 4, (7, 3, 5, 6), generator=generator).float()  # many ties
    logits[:, 0, 0, 0] = 2.0  # a voxel where every channel ties
    assert torch.equal(argmax_channels(logits).long(), logits.argmax(0))
    assert int(argmax_channels(logits)[0, 0, 0]) == 0


@pytest.mark.parametrize(
    "activation, activation_first, channels, stored, shortcut",
    [
        ("softmax", False, [0, 1, 2, 3], "logits", True),
        ("softmax", True, [0, 1, 2, 3], "logits", True),
        ("sigmoid", False, [2], "logits", True),
        ("sigmoid", True, [2], "logits", True),
        ("softmax", False, [0, 1, 2, 3], "features", True),
        ("sigmoid", False, [2], "features", True),
        ("softmax", False, [0, 1, 2, 3], "features", False),
        ("sigmoid", False, [2], "features", False),
        ("softmax", True, [0, 1, 2, 3], "logits", False),
        ("sigmoid", True, [2], "logits", False),
    ],
)
def test_points_settled_by_their_corners_get_the_interpolated_label(
    monkeypatch, activation, activation_first, channels, stored, shortcut
):
    """Going back to the original grid, points whose eight model-grid neighbours agree skip the
    interpolation: every label must equal interpolating every point, then deciding. "features":
    the blend holds 2 features and a pointwise head makes the 4 logits as they are read. Without
    the shortcut, every chunk of planes is interpolated whole."""
    from types import SimpleNamespace

    import torch

    from segmentation.engine import back_to_grid
    from segmentation.engine.head import BlendedHead
    from segmentation.engine.resample import zoom_map
    from segmentation.engine.tiling import Accumulated

    settled = []
    decide = back_to_grid._Corners.decide

    def recorded_decide(*args, **kwargs):
        settled.append(decide(*args, **kwargs) if shortcut else None)
        return settled[-1]

    monkeypatch.setattr(back_to_grid._Corners, "decide", recorded_decide)
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(4 if stored == "logits" else 2, 1, 2, 2, 2, generator=generator)
    values = 4 * torch.nn.functional.interpolate(coarse, size=(16, 20, 20), mode="trilinear")[:, 0]
    if stored == "logits":
        logits, accumulated = values, Accumulated(values, tiles=1)
    else:
        head = BlendedHead(torch.randn(4, 2, generator=generator), torch.randn(4, generator=generator))
        logits, accumulated = head(values), Accumulated(values, tiles=1, head=head)
    maps = [zoom_map(16, 37, 1), zoom_map(20, 47, 1), zoom_map(20, 29, 1)]
    recipe = SimpleNamespace(
        activation=activation, activation_first=activation_first, threshold=0.5, channels=4
    )

    decision, region = back_to_grid._model_decision(accumulated, channels, recipe)
    labels, start = back_to_grid._resample_region(accumulated, channels, region, decision, maps, recipe, None)

    values = logits[channels]
    if activation_first:
        values = torch.softmax(values, 0) if activation == "softmax" else torch.sigmoid(values)
    for dim, axis_map in enumerate(maps, start=1):
        values = axis_map.apply(values, dim)
    expected = (
        values.argmax(0) if activation == "softmax" else values[0] >= (0.5 if activation_first else 0.0)
    ).numpy()
    box = tuple(slice(a, a + n) for a, n in zip(start, labels.shape, strict=True))
    assert any(out is not None for out in settled) == shortcut  # the shortcut ran, or not
    np.testing.assert_array_equal(labels, expected[box])
    assert np.count_nonzero(labels) == np.count_nonzero(expected)  # nothing outside the box


def test_test_time_mirroring_keeps_left_structures_on_the_left():
    """A network that knows left from right (channel 0 the tile's left half, toward +x in LPS;
    channel 1 its right half): mirrored, its left channel marks the right half, so averaging the
    mirrored pass is only right when the _L/_R channels are swapped back."""
    import torch

    class Sided(torch.nn.Module):
        def forward(self, x):
            left = (torch.arange(x.shape[-1]) >= x.shape[-1] // 2).to(x.dtype).expand_as(x)
            return torch.cat([left, 1 - left, x], 1)

    tile = torch.rand((1, 1, 4, 6, 8))
    swapped = Predictor([Sided()], (2,), torch.device("cpu"), lateral_mirror=(2, (1, 0, 2)))(tile)
    assert torch.allclose(swapped, Sided()(tile))
    unswapped = Predictor([Sided()], (2,), torch.device("cpu"))(tile)
    assert torch.allclose(unswapped[:, :2], torch.full_like(unswapped[:, :2], 0.5))


def test_progress_reaches_every_stage_total(sigmoid_model):
    volume, _ = phantom()
    calls = []
    sigmoid_model.predict(volume, device="cpu", on_progress=lambda *a: calls.append(a))
    stages = {}
    for stage, done, total in calls:
        assert 0 <= done <= total
        stages[stage] = (done, total)
    assert set(stages) == {"Preparing image", "Segmenting", "Building structures"}
    assert all(done == total for done, total in stages.values())
    assert calls[-1][1] == calls[-1][2]


def test_cancel_stops_within_two_seconds_even_inside_a_slow_tile(tmp_path):
    # 8 layers × 0.5 s: one tile takes 4 s; cancel must not wait for it.
    folder = write_model(tmp_path / "slow", [100.0], params={"delay_s": 0.5, "layers": 8})
    model = from_manifest(read_manifest(folder))
    volume, _ = phantom()
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    started = time.perf_counter()
    timer.start()
    with pytest.raises(Cancelled):
        model.predict(volume, device="cpu", cancel=cancel)
    assert time.perf_counter() - started - 1.0 < 2.0


def test_out_of_memory_retries_with_smaller_tiles(tmp_path, caplog):
    folder = write_model(tmp_path / "oom", [100.0, 500.0], params={"fail_above": 16 * 16 * 16})
    model = from_manifest(read_manifest(folder))
    volume, truth = phantom()
    result = model.predict(volume, device="cpu")
    assert model.last_run.patch_zyx == (16, 16, 16)
    assert any("retrying with tiles" in w for w in model.last_run.warnings)
    assert dice(result["Region_1"].mask.full(), truth["small"]) > 0.85


def test_out_of_memory_with_the_smallest_tiles_is_a_clear_error(tmp_path):
    folder = write_model(tmp_path / "oom", [100.0], params={"fail_above": 8})
    model = from_manifest(read_manifest(folder))
    with pytest.raises(DelineoError, match="not enough memory"):
        model.predict(phantom()[0], device="cpu")


def test_networks_are_built_once_and_reused(sigmoid_model, monkeypatch):
    builds = []
    original = sigmoid_model._build_networks
    sigmoid_model._build_networks = lambda: builds.append(1) or original()
    volume, _ = phantom()
    sigmoid_model.predict(volume, device="cpu")
    sigmoid_model.predict(volume, device="cpu")
    assert len(builds) == 1


def test_altered_weights_are_refused(tmp_path):
    folder = write_model(tmp_path / "m", [100.0])
    data = bytearray((folder / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256") as error:
        from_manifest(read_manifest(folder)).predict(phantom()[0], device="cpu")
    assert str(folder / "weights.safetensors") in str(error.value)  # which model's weights


def test_an_architecture_its_weights_do_not_fit_is_refused_before_it_is_built(tmp_path):
    folder = write_model(tmp_path / "m", [100.0], params={"channels": 2**40})  # 4 TiB of parameters
    model = from_manifest(read_manifest(folder))
    shapes = r"head\.weight is \(1, 1, 1, 1, 1\) in the file, \(1099511627776, 1, 1, 1, 1\) in the network"
    with pytest.raises(WeightsError, match=shapes):
        model.networks_on("cpu")


def test_weights_holding_infinities_are_refused():
    import torch

    from segmentation.engine.model import load_into

    network = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    state = {k: v.clone() for k, v in network.state_dict().items()}
    state["1.running_var"][1] = float("inf")
    with pytest.raises(WeightsError, match=r"1\.running_var holds 1 non-finite value"):
        load_into(network, state, "weights.safetensors")


def test_state_dicts_load_without_unpickling_code(tmp_path):
    import torch

    torch.save({"head.weight": torch.ones(2, 1, 1, 1, 1)}, tmp_path / "ok.pt")
    assert read_state_dict(tmp_path / "ok.pt")["head.weight"].shape == (2, 1, 1, 1, 1)
    import argparse

    torch.save({"payload": argparse.Namespace(run="code")}, tmp_path / "code.pt")  # any object
    with pytest.raises(WeightsError, match="cannot be read as weights"):
        read_state_dict(tmp_path / "code.pt")


def _an_ensemble_member_with_other_channels(manifest: dict) -> None:
    manifest["architecture"]["params"]["out_channels"] = 1
    member = {"name": "test_pointwise", "params": {"channels": 2, "out_channels": 2}}
    manifest["ensemble"] = [
        {"architecture": member, "weights": {"file": "b.safetensors", "sha256": "0" * 64}}
    ]


def _fewer_network_channels_than_outputs(manifest: dict) -> None:
    manifest["outputs"].append({"name": "Second"})  # channel 1
    manifest["architecture"]["params"]["out_channels"] = 1


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m["inference"].update(activation="relu"), "inference.activation"),
        (lambda m: m["weights"].update(sha256="abc"), "weights.sha256"),
        (lambda m: m["preprocessing"].pop("spacing_xyz"), "preprocessing.spacing_xyz"),
        (lambda m: m["preprocessing"].update(orientation="LLS"), "preprocessing.orientation"),
        (lambda m: m["outputs"].append({"channel": 0, "name": "Again"}), "outputs[1]"),
        (lambda m: m["outputs"][0].update(color=[300, 0, 0]), "outputs[0].color"),
        (lambda m: m["outputs"][0].update(keep_largest="yes"), "outputs[0].keep_largest"),
        (lambda m: m["outputs"][0].update(by_default="no"), "outputs[0].by_default"),
        (lambda m: m["outputs"][0].update(training_volume_cc=[30, 20]), "outputs[0].training_volume_cc"),
        (lambda m: m["outputs"][0].update(training_volume_cc=12.0), "outputs[0].training_volume_cc"),
        (_fewer_network_channels_than_outputs, "architecture.params.out_channels"),
        (lambda m: m.update(ensemble=[{"weights": m["weights"]}]), "ensemble[0].weights.file"),
        (lambda m: m.update(ensemble=[{"weights": {"file": "b.safetensors"}}]), "ensemble[0].weights.sha256"),
        (_an_ensemble_member_with_other_channels, "ensemble[0].architecture.params.out_channels"),
    ],
)
def test_manifest_errors_name_the_file_and_field(tmp_path, change, field):
    folder = write_model(tmp_path / "m", [100.0])
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as error:
        read_manifest(folder)
    assert "manifest.json" in str(error.value) and repr(field) in str(error.value)


def _ensemble_of(folder, other) -> None:
    """Add `other`'s network (a model folder by `write_model`) to `folder`'s as an ensemble."""
    (folder / "other.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    sha = json.loads((other / "manifest.json").read_text())["weights"]["sha256"]
    manifest["ensemble"] = [{"weights": {"file": "other.safetensors", "sha256": sha}}]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_an_ensemble_averages_its_networks_logits(tmp_path):
    # Logits 40·(HU − 100)/1000 and 40·(HU − 500)/1000 average to 40·(HU − 300)/1000.
    ensemble = write_model(tmp_path / "ensemble", [100.0])
    _ensemble_of(ensemble, write_model(tmp_path / "upper", [500.0]))
    manifest = read_manifest(ensemble)
    assert [spec.weights_file for spec in manifest.networks] == ["weights.safetensors", "other.safetensors"]
    volume, _ = phantom()
    drawn = from_manifest(manifest).predict(volume, device="cpu")["Region_0"].mask.full()
    middle = read_manifest(write_model(tmp_path / "middle", [300.0]))
    expected = from_manifest(middle).predict(volume, device="cpu")["Region_0"].mask.full()
    alone = from_manifest(read_manifest(tmp_path / "upper")).predict(volume, device="cpu")
    assert np.array_equal(drawn, expected) and not np.array_equal(drawn, alone["Region_0"].mask.full())


def test_an_ensemble_member_s_altered_weights_are_refused(tmp_path):
    ensemble = write_model(tmp_path / "ensemble", [100.0])
    _ensemble_of(ensemble, write_model(tmp_path / "upper", [500.0]))
    data = bytearray((ensemble / "other.safetensors").read_bytes())
    data[-1] ^= 1
    (ensemble / "other.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256") as error:
        from_manifest(read_manifest(ensemble)).networks_on("cpu")
    assert str(ensemble / "other.safetensors") in str(error.value)


def test_toml_manifests_are_read_too(tmp_path):
    folder = write_model(tmp_path / "m", [100.0])
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").unlink()
    lines = [
        f'name = "{manifest["name"]}"',
        '[architecture]\nname = "test_pointwise"\nparams = { channels = 1 }',
        f'[weights]\nfile = "weights.safetensors"\nsha256 = "{manifest["weights"]["sha256"]}"',
        "[preprocessing]\nspacing_xyz = [2.0, 2.0, 3.0]",
        'normalization = { type = "ct", clip = [-1000, 1000], mean = 0.0, std = 1000.0 }',
        '[inference]\npatch_size_zyx = [16, 32, 32]\nactivation = "sigmoid"',
        '[[outputs]]\nname = "Region_0"',
    ]
    (folder / "manifest.toml").write_text("\n".join(lines))
    manifest = read_manifest(folder)
    assert manifest.patch_size_zyx == (16, 32, 32) and manifest.structure_names == ["Region_0"]


def test_importing_the_packages_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, segmentation, segmentation.registry, segmentation.engine.pipeline, segmentation.nnunet, "
        "segmentation.seeded, segmentation.rules, workstation.cli; "
        "from workstation.cli import build_parser; build_parser(); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_an_accelerator_out_of_memory_ends_on_the_cpu_with_a_message(tmp_path, caplog):
    """No GPU here: a stand-in device whose networks always run out of memory."""
    import torch

    from segmentation.engine.pipeline import RunInfo, run

    model = from_manifest(read_manifest(write_model(tmp_path / "m", [500.0])))
    accelerator = torch.device("meta")

    def networks_on(device):
        if device.type == "meta":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return model.networks_on(device)

    volume, truth = phantom()
    info = RunInfo()
    result = run(volume, model.recipe, networks_on, accelerator, info=info)
    assert info.device == "cpu"
    assert "continuing on the CPU" in info.warnings[-1] and "continuing on the CPU" in caplog.text
    assert any("retrying with tiles" in w for w in info.warnings[:-1])
    assert dice(result["Region_0"].mask.full(), truth["small"]) > 0.85


def test_voxels_that_are_not_numbers_do_not_blank_their_tiles(sigmoid_model):
    """NaN spreads through a network's receptive field: such voxels are segmented as the image's
    lowest value instead, with a warning."""
    volume, truth = phantom()
    floating = volume.with_array(volume.array.astype(np.float32))
    floating.array[:, :2, :2] = np.nan  # a column of the background
    floating.array[0, -1, -1] = np.inf
    result = sigmoid_model.predict(floating, device="cpu")
    [warning] = sigmoid_model.last_run.warnings
    assert warning.startswith(f"{2 * 2 * volume.shape[0] + 1:,} voxels that are not numbers")
    assert dice(result["Spheres"].mask.full(), truth["big"] | truth["small"]) > 0.9


#: What torch says when the CPU's allocator fails (Linux).
CPU_ALLOCATOR_ERROR = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 70368744177664 bytes. Error code 12 (Cannot allocate memory)"
)


def _cpu_memory_limited(model, largest_tile: int, error=lambda: RuntimeError(CPU_ALLOCATOR_ERROR)):
    """`networks_on` whose CPU networks fail as torch's CPU allocator does (or raise `error()`)
    on tiles of more than `largest_tile` voxels."""
    import torch

    networks_on = model.networks_on

    class Limited(torch.nn.Module):
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, x):
            if x[0, 0].numel() > largest_tile:
                raise error()
            return self.network(x)

    def limited(device):
        if device.type == "meta":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return [Limited(network) for network in networks_on(device)]

    return limited


def test_the_cpu_allocator_failing_is_out_of_memory():
    import torch

    from segmentation.engine.device import is_out_of_memory

    assert is_out_of_memory(RuntimeError(CPU_ALLOCATOR_ERROR))
    assert is_out_of_memory(
        RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 GB")
    )
    assert is_out_of_memory(MemoryError()) and is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [2, 1, 1, 1, 1], expected ..."))
    assert not is_out_of_memory(ValueError("can't allocate memory"))


def test_the_cpu_out_of_memory_retries_with_smaller_tiles(tmp_path):
    import torch

    from segmentation.engine.pipeline import RunInfo, run

    model = from_manifest(read_manifest(write_model(tmp_path / "m", [100.0, 500.0])))
    volume, truth = phantom()
    info = RunInfo()
    limited = _cpu_memory_limited(model, 16 * 16 * 16)
    result = run(volume, model.recipe, limited, torch.device("cpu"), info=info)
    assert info.patch_zyx == (16, 16, 16)
    assert any(w.startswith("cpu out of memory") and "retrying with tiles" in w for w in info.warnings)
    assert dice(result["Region_1"].mask.full(), truth["small"]) > 0.85


@pytest.mark.parametrize("start", ["cpu", "meta"])
def test_the_cpu_out_of_memory_with_the_smallest_tiles_is_a_clear_error(tmp_path, start):
    """On the CPU from the start, or after an accelerator ran out of memory ("meta" stands in
    for it here): the smallest tiles failing too ends in the engine's message."""
    import torch

    from segmentation.engine.pipeline import RunInfo, run

    model = from_manifest(read_manifest(write_model(tmp_path / "m", [100.0])))
    info = RunInfo()
    limited = _cpu_memory_limited(model, 8)
    with pytest.raises(DelineoError, match=r"not enough memory to segment an image of \(30, 64, 60\)"):
        run(phantom()[0], model.recipe, limited, torch.device(start), info=info)
    assert info.device == "cpu"
    assert ("continuing on the CPU" in " ".join(info.warnings)) == (start == "meta")


@pytest.mark.parametrize("error", [MemoryError, lambda: RuntimeError(CPU_ALLOCATOR_ERROR)])
def test_running_out_of_memory_on_the_cpu_is_an_error_naming_the_model_and_the_image(tmp_path, error):
    """What a GUI job shows: a DelineoError's message (not a traceback) says which model and
    which image did not fit."""
    model = from_manifest(read_manifest(write_model(tmp_path / "thresholds", [100.0])))
    model.networks_on = _cpu_memory_limited(model, 8, error)
    with pytest.raises(DelineoError) as raised:
        model.predict(phantom()[0], device="cpu")
    assert str(raised.value).startswith(
        "thresholds: not enough memory to segment an image of (30, 64, 60) voxels, even on the CPU"
    )


def test_structures_named_twice_are_drawn_once(sigmoid_model):
    volume, _ = phantom()
    result = sigmoid_model.predict(volume, structures=["Dense", "Spheres", "Dense"], device="cpu")
    assert result.names() == ["Dense", "Spheres"]
