"""Training the project's own models: shared resampling, case readers, sampling, loss, metrics,
a few real iterations with checkpoint/resume and export, and the built-in head-and-neck model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.data import data_path

from planning.errors import DelineoError
from planning.geometry import Grid
from planning.imageio import load_volume, save_volume
from planning.volume import Volume
from segmentation.engine.model import sha256_of
from segmentation.networks import build_network
from segmentation.preprocessing import resample
from segmentation.training.case_folders import read_mask_folder
from segmentation.training.data import (
    Case,
    check_delineated,
    discover,
    leave_out_unusual_references,
    prepare,
    read_openkbp,
    to_lps,
)
from segmentation.training.evaluate import CaseResult, openkbp_volume, summary_table, unusual_references
from segmentation.training.metrics import dice, hd95
from segmentation.training.model_folders import export_model, fine_tuning_config
from segmentation.training.sampling import Augmentation, PatchSampler
from segmentation.training.trainer import (
    HEAD_NECK_STRUCTURES,
    TrainConfig,
    learning_rate,
    masked_loss,
    prepare_run,
)

# ---------------------------------------------------------------- resampling (shared with inference)


def _linear_field(shape, spacing):
    z, y, x = torch.meshgrid(
        *[torch.arange(n, dtype=torch.float64) * s for n, s in zip(shape, spacing, strict=True)],
        indexing="ij",
    )
    return 2.0 * z - 3.0 * y + 0.5 * x


def test_resample_trilinear_is_exact_on_a_linear_field_and_keeps_the_origin():
    source_spacing, target_spacing = (2.5, 3.9, 4.1), (3.0, 4.0, 2.0)
    image = _linear_field((20, 24, 22), source_spacing)
    result = resample(image, source_spacing, target_spacing)
    assert tuple(result.shape) == (round(20 * 2.5 / 3), round(24 * 3.9 / 4), round(22 * 4.1 / 2))
    expected = _linear_field(result.shape, target_spacing)
    # positions inside the source's extent (beyond it the edge value is repeated)
    inside = [
        int((n - 1) * a / b) + 1 for n, a, b in zip(image.shape, source_spacing, target_spacing, strict=True)
    ]
    error = (result - expected)[: inside[0], : inside[1], : inside[2]].abs().max()
    assert float(error) < 1e-9
    assert float(result[0, 0, 0]) == float(image[0, 0, 0])


def test_resample_nearest_keeps_labels_and_dtype_and_goes_back_exactly():
    labels = torch.zeros((10, 12, 14), dtype=torch.int16)
    labels[3:7, 4:9, 2:12] = 5
    up = resample(labels, (2.0, 2.0, 2.0), (1.0, 1.0, 1.0), "nearest")
    assert up.dtype == torch.int16 and set(up.unique().tolist()) == {0, 5}
    assert tuple(up.shape) == (20, 24, 28)
    back = resample(up, (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), "nearest", size_zyx=labels.shape)
    assert torch.equal(back, labels)


def test_resample_handles_channels_and_rejects_bad_input():
    stack = torch.rand(3, 8, 9, 10)
    result = resample(stack, (1, 1, 1), (2, 2, 2))
    assert tuple(result.shape) == (3, 4, 4, 5)
    assert torch.allclose(result[1], resample(stack[1], (1, 1, 1), (2, 2, 2)))
    with pytest.raises(ValueError, match="mode"):
        resample(stack, (1, 1, 1), (2, 2, 2), "cubic")
    with pytest.raises(ValueError, match="positive"):
        resample(stack, (1, 0, 1), (2, 2, 2))


# ---------------------------------------------------------------- readers


def test_to_lps_flips_and_permutes_index_axes():
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert np.array_equal(to_lps(array, np.diag([1.0, 1.0, -1.0])), array[::-1])
    assert np.array_equal(to_lps(array, np.diag([-1.0, 1.0, 1.0])), array[:, :, ::-1])
    sagittal = np.zeros((3, 3))
    sagittal[2, 0] = sagittal[1, 1] = sagittal[0, 2] = 1.0  # x index → superior, z index → left
    oriented = to_lps(array, sagittal)
    assert oriented.shape == (4, 3, 2)
    assert oriented[1, 2, 0] == array[0, 2, 1]


def test_openkbp_case_is_flipped_to_lps_with_tg263_laterality():
    folder = data_path("openkbp", "train")
    structures = list(HEAD_NECK_STRUCTURES)
    case = read_openkbp(folder, "pt_1", structures)
    with np.load(folder / "pt_1.npz") as raw:
        bits = raw["structures"]
    # OpenKBP bit 3 is LeftParotid; its z index 0 is the most superior slice
    assert np.array_equal(case.mask(structures.index("Parotid_L")), ((bits >> 3) & 1).astype(bool)[::-1])
    left = np.argwhere(case.mask(structures.index("Parotid_L")))[:, 2].mean()
    right = np.argwhere(case.mask(structures.index("Parotid_R")))[:, 2].mean()
    assert left > right  # x index grows toward the patient's left
    brainstem = np.argwhere(case.mask(structures.index("Brainstem")))[:, 0].mean()
    cord = np.argwhere(case.mask(structures.index("SpinalCord")))[:, 0].mean()
    assert brainstem > cord  # z index grows toward the head
    index = json.loads((folder / "index.json").read_text())["pt_1"]
    assert case.labelled[structures.index("Esophagus")] == ("Esophagus" in index)
    assert case.labelled[structures.index("PTV63")]  # a missing PTV is an answer: labelled empty


def _sphere(shape, centre, radius_vox):
    zz, yy, xx = np.indices(shape)
    return ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) <= radius_vox**2


def _write_case(folder, seed, with_right=True):
    """A synthetic CT (soft-tissue body, two bright 'organs') in the mask-folder layout."""
    rng = np.random.default_rng(seed)
    shape = (20, 32, 32)
    image = np.full(shape, -1000.0, np.float32)
    image[2:18, 4:28, 4:28] = 20 + rng.normal(0, 5, (16, 24, 24))
    left = _sphere(shape, (6, 16, 22), 3.5)
    right = _sphere(shape, (6, 16, 10), 3.5)
    image[left] = 300
    image[right] = 200
    grid = Grid(shape, (4.0, 4.0, 2.5), (0.0, 0.0, 0.0), np.diag([1.0, 1.0, -1.0]))
    folder.mkdir(parents=True)
    save_volume(Volume(image, grid, "CT"), folder / "image.nii.gz")
    save_volume(Volume(left.astype(np.uint8), grid), folder / "Parotid_L.nii.gz")
    if with_right:
        save_volume(Volume(right.astype(np.uint8), grid), folder / "Parotid_R.nii.gz")
    save_volume(Volume(left.astype(np.uint8), grid), folder / "Unrelated.nii.gz")
    return left, right


def test_mask_folder_case_reads_lps_image_and_marks_missing_structures_unlabelled(tmp_path):
    _write_case(tmp_path / "case1", seed=0, with_right=False)
    case = read_mask_folder(tmp_path / "case1", ["Parotid_L", "Parotid_R"])
    assert case.image_hu.dtype == np.int16 and case.spacing_zyx == (2.5, 4.0, 4.0)
    assert list(case.labelled) == [True, False]
    # the file's z index grows toward the feet: in the LPS case the organ at z 6 of 20 is at z 13
    assert np.argwhere(case.mask(0))[:, 0].mean() == pytest.approx(13.0)
    assert np.all(case.image_hu[case.mask(0)] == 300)  # the left organ, on the left
    assert [s[0] for s in discover(tmp_path)] == ["folder"]


def test_prepare_resamples_and_crops_to_the_patient():
    case = read_openkbp(data_path("openkbp", "train"), "pt_2", list(HEAD_NECK_STRUCTURES))
    prepared = prepare(case, (3.0, 5.0, 5.0))
    extent = np.asarray(prepared.image_hu.shape) * (3.0, 5.0, 5.0)
    assert np.all(extent <= np.asarray(case.image_hu.shape) * np.asarray(case.spacing_zyx) + 5)
    for k in range(len(HEAD_NECK_STRUCTURES)):
        volume_before = case.mask(k).sum() * np.prod(case.spacing_zyx)
        volume_after = prepared.mask(k).sum() * 75.0
        assert volume_after == pytest.approx(volume_before, rel=0.2, abs=500)
    cropped = prepare(case)  # kept on its own grid, only cropped
    assert cropped.spacing_zyx == case.spacing_zyx
    assert cropped.image_hu.size < case.image_hu.size
    assert np.array_equal(np.bincount(cropped.labels.ravel())[1:], np.bincount(case.labels.ravel())[1:])


def _rewrite_mask(path, transform):
    """Store the mask at `path` again, its array and grid changed by `transform`."""
    mask = load_volume(path)
    array, grid = transform(mask.array, mask.grid)
    save_volume(Volume(np.ascontiguousarray(array), grid), path)


def test_a_mask_stored_in_another_axis_order_or_direction_lands_on_the_image_s_voxels(tmp_path):
    """The same patient positions stored x-flipped (direction and origin to match) or with the x
    and y index axes swapped: the case's masks are those of the image's own storage."""
    structures = ["Parotid_L", "Parotid_R"]
    _write_case(tmp_path / "plain", seed=0)
    expected = read_mask_folder(tmp_path / "plain", structures)
    _write_case(tmp_path / "stored", seed=0)

    def flipped_x(array, grid):
        far_x = grid.index_to_patient(np.array([grid.shape[2] - 1, 0, 0]))
        direction = grid.direction @ np.diag([-1.0, 1.0, 1.0])
        return array[:, :, ::-1], Grid(grid.shape, grid.spacing_xyz, tuple(far_x), direction)

    def swapped_xy(array, grid):
        swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        spacing = (grid.spacing_xyz[1], grid.spacing_xyz[0], grid.spacing_xyz[2])
        return array.transpose(0, 2, 1), Grid(array.shape, spacing, grid.origin_xyz, grid.direction @ swap)

    _rewrite_mask(tmp_path / "stored" / "Parotid_L.nii.gz", flipped_x)
    _rewrite_mask(tmp_path / "stored" / "Parotid_R.nii.gz", swapped_xy)
    case = read_mask_folder(tmp_path / "stored", structures)
    assert np.array_equal(case.labels, expected.labels) and case.labelled.all()
    assert np.all(case.image_hu[case.mask(0)] == 300)  # the left organ, still on the left


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a, g: (a, Grid(g.shape, g.spacing_xyz, (50.0, 0.0, 0.0), g.direction)),
            "origin 50 mm away from the image's",
        ),
        # flipped without moving the origin: the same lattice, elsewhere
        (
            lambda a, g: (
                a[:, :, ::-1],
                Grid(g.shape, g.spacing_xyz, g.origin_xyz, g.direction @ np.diag([-1, 1, 1])),
            ),
            "its voxels 124 mm away from the image's",
        ),
        (lambda a, g: (a, Grid(g.shape, (4.0, 4.0, 3.0), g.origin_xyz, g.direction)), "voxel size 4×4×3 mm"),
        (lambda a, g: (a[1:], g.with_shape(a[1:].shape)), "32×32×19 voxels, the image 32×32×20"),
    ],
    ids=["moved", "flipped_in_place", "voxel_size", "shape"],
)
def test_a_mask_off_the_image_s_voxels_is_refused_naming_the_file_and_what_differs(tmp_path, change, message):
    _write_case(tmp_path / "case", seed=0)
    _rewrite_mask(tmp_path / "case" / "Parotid_R.nii.gz", change)
    with pytest.raises(DelineoError, match="Parotid_R.nii.gz: not on the voxels of image.nii.gz") as error:
        read_mask_folder(tmp_path / "case", ["Parotid_L", "Parotid_R"])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("Parotid_R.nrrd", np.nan, "voxels are not numbers"),  # ITK keeps an NRRD's NaN: was inside
        ("Parotid_R.nii.gz", np.nan, "voxels are not numbers"),  # ITK reads a NIfTI's as 0: was outside
        ("Parotid_R.nii.gz", 0.4, "not whole numbers"),  # a resampled edge: "non-zero" grew it
    ],
)
def test_a_damaged_or_soft_training_mask_is_refused_naming_the_file(tmp_path, name, damage, message):
    """A training reference read as "non-zero = inside" took NaN voxels in or out depending on
    the file's format, and counted a fractional (interpolated) edge as inside: the network would
    learn a reference nobody drew. Masks are read by the label-map rule."""
    _, right = _write_case(tmp_path / "case", seed=0, with_right=False)
    grid = Grid(right.shape, (4.0, 4.0, 2.5), (0.0, 0.0, 0.0), np.diag([1.0, 1.0, -1.0]))
    values = right.astype(np.float32)
    values[6, 16, 10] = damage
    save_volume(Volume(values, grid), tmp_path / "case" / name)
    with pytest.raises(DelineoError, match=f"{name}: .*{message}"):
        read_mask_folder(tmp_path / "case", ["Parotid_L", "Parotid_R"])


def test_mask_files_are_matched_to_structures_by_their_exact_names(tmp_path, caplog):
    structures = ["Parotid_L", "Parotid_R"]
    _write_case(tmp_path / "case", seed=0)
    with caplog.at_level("WARNING", logger="segmentation.training.data"):
        read_mask_folder(tmp_path / "case", structures)
    # a file named after no structure may be another image of the case: left out, said so
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "Unrelated.nii.gz" in caplog.text
    # one named like a structure but not exactly is refused naming both, not guessed
    path = tmp_path / "case" / "Parotid_R.nii.gz"
    for name in ("parotid_r", "Parotid R", "ParotidR"):
        path = path.rename(path.with_name(f"{name}.nii.gz"))
        with pytest.raises(DelineoError, match=f"{name}.nii.gz: named '{name}', not exactly .*'Parotid_R'"):
            read_mask_folder(tmp_path / "case", structures)
    # a case with none of the trained structures
    with pytest.raises(DelineoError, match=r"case: no mask of the trained structures \(Brainstem\)"):
        read_mask_folder(tmp_path / "case", ["Brainstem"])
    # names no file system takes, written by `delineo segment --out FOLDER`, are read back
    path.rename(path.with_name("Parotid_R_.nii.gz"))  # "Parotid_R~" (TG-263: partly delineated)
    case = read_mask_folder(tmp_path / "case", ["Parotid_L", "Parotid_R~"])
    assert case.labelled.tolist() == [True, True]


def test_a_structure_no_training_case_delineates_is_refused_before_the_run_starts(
    tmp_path, tiny_cases, caplog
):
    config = TrainConfig(**{**TINY, "structures": ["Parotid_L", "Brainstem", "Parotid_R"]})
    with pytest.raises(DelineoError, match="Brainstem: delineated in none of the 3 training cases"):
        prepare_run(config, tmp_path / "run", discover(tiny_cases), holdout_count=0)
    # nothing is left behind that a corrected command would have to resume with
    assert not (tmp_path / "run").exists()
    # fine-tuning a model on cases that delineate only some of its outputs is allowed, and said
    cases = [read_mask_folder(folder, config.structures) for _, folder, _ in discover(tiny_cases)]
    with caplog.at_level("WARNING", logger="segmentation.training.data"):
        check_delineated(cases, config.structures, fine_tuning=True)
    assert "Brainstem: delineated in none of the 3 training cases; fine-tuning leaves" in caplog.text
    # a held-out case whose masks are named in lower case: refused, not scored 0 at every evaluation
    for path in (tiny_cases / "case2").glob("Parotid_*"):
        path.rename(path.with_name(path.name.lower()))
    sources = discover(tiny_cases)
    with pytest.raises(DelineoError, match="parotid_l.nii.gz: named 'parotid_l'"):
        prepare_run(TrainConfig(**TINY), tmp_path / "run", sources, holdout_count=1)
    assert not (tmp_path / "run").exists()


def test_openkbp_cases_missing_an_organ_or_a_dose_level_still_train(tmp_path):
    """OpenKBP marks an organ a patient lacks unlabelled and a missing PTV labelled empty: a PTV
    no patient has is trained as 'never here'; an organ no patient has is refused."""
    rng = np.random.default_rng(0)
    for i in (1, 2):
        bits = np.zeros((20, 32, 32), np.uint16)
        bits[_sphere(bits.shape, (10, 16, 10), 3.5)] |= 1 << 2  # RightParotid
        bits[_sphere(bits.shape, (10, 16, 22), 3.5)] |= 1 << 3  # LeftParotid
        ct = np.where(bits > 0, 300, 20 + rng.normal(0, 5, bits.shape)).astype(np.int16)
        np.savez(tmp_path / f"pt_{i}.npz", ct_hu=ct, structures=bits, spacing_zyx=np.array([2.5, 4.0, 4.0]))
    structures = ["Parotid_L", "Parotid_R", "PTV70"]
    trainer = prepare_run(
        TrainConfig(**{**TINY, "structures": structures}), tmp_path / "run", discover(tmp_path), 0
    )
    assert [case.labelled.tolist() for case in trainer.sampler.cases] == [[True, True, True]] * 2
    with pytest.raises(DelineoError, match="Esophagus: delineated in none of the 2 training cases"):
        prepare_run(
            TrainConfig(**{**TINY, "structures": ["Esophagus", *structures]}),
            tmp_path / "r2",
            discover(tmp_path),
            0,
        )


# ---------------------------------------------------------------- sampling, loss, metrics


def test_patches_keep_image_and_labels_aligned_and_mirror_swaps_sides(tmp_path):
    left, right = _write_case(tmp_path / "c", seed=1)
    structures = ["Parotid_L", "Parotid_R"]
    case = prepare(read_mask_folder(tmp_path / "c", structures), (2.5, 4.0, 4.0))
    augmentation = Augmentation(rotation_deg=0, scale=(1, 1), mirror_probability=1.0, intensity_shift=0)
    augmentation.intensity_scale = (1.0, 1.0)
    augmentation.noise_std = 0.0
    sampler = PatchSampler([case], structures, (8, 16, 16), {"type": "none"}, 1.0, augmentation)
    image, target, labelled = sampler.batch(np.random.default_rng(3), 4)
    assert image.shape == (4, 1, 8, 16, 16) and target.shape == (4, 2, 8, 16, 16)
    assert labelled.all()
    # mirrored left-right with the _L/_R channels swapped: Parotid_L is still the organ toward
    # the patient's left (higher x), and it is now the mirror image of the right one (200 HU)
    inside_left, inside_right = target[:, 0] > 0.99, target[:, 1] > 0.99
    assert inside_left.any() and inside_right.any()
    assert torch.allclose(image[:, 0][inside_left], torch.tensor(200.0), atol=0.01)
    assert torch.allclose(image[:, 0][inside_right], torch.tensor(300.0), atol=0.01)
    for b in range(4):
        if inside_left[b].any() and inside_right[b].any():
            assert (
                torch.nonzero(inside_left[b])[:, 2].float().mean()
                > torch.nonzero(inside_right[b])[:, 2].float().mean()
            )


def test_patches_from_a_case_on_its_own_grid_come_at_the_model_spacing():
    # a case on a 1.5 × 2 × 2 mm grid sampled by a model working at 3 × 4 × 4 mm: one
    # interpolation from the case's own voxels, so a linear image stays exact and a sphere keeps
    # its volume
    shape = (24, 32, 32)
    k, j, i = np.indices(shape)
    image = (4 * k + 2 * j + i - 200).astype(np.int16)  # HU per mm: 8/3 along z, 1 along y, ½ along x
    sphere = (1.5 * (k - 12)) ** 2 + (2.0 * (j - 16)) ** 2 + (2.0 * (i - 16)) ** 2 <= 8.0**2
    case = Case("c", image, sphere.astype(np.uint16), np.array([True]), (1.5, 2.0, 2.0))
    augmentation = Augmentation(0, (1, 1), 0.0, (1, 1), 0.0, 0.0)
    sampler = PatchSampler(
        [case], ["GTV"], (32, 40, 40), {"type": "none"}, 1.0, augmentation, spacing_zyx=(3.0, 4.0, 4.0)
    )
    image, target, _ = sampler.batch(np.random.default_rng(0), 40)
    # each patch samples the sphere at another phase of the coarser grid: volumes scatter by a
    # few %, and average to the sphere's
    sphere_mm3 = sphere.sum() * 1.5 * 2.0 * 2.0
    volumes = target[:, 0].sum((1, 2, 3)).numpy() * 3.0 * 4.0 * 4.0
    assert volumes.mean() == pytest.approx(sphere_mm3, rel=0.02)
    assert np.all(np.abs(volumes / sphere_mm3 - 1) < 0.12)
    for b in range(3):
        inside = torch.nonzero(target[b, 0] > 0.999)
        z, y, x = inside.T
        patch = image[b, 0]
        assert torch.allclose(patch[z + 1, y, x] - patch[z, y, x], torch.tensor(8.0), atol=1e-3)
        assert torch.allclose(patch[z, y + 1, x] - patch[z, y, x], torch.tensor(4.0), atol=1e-3)
        assert torch.allclose(patch[z, y, x + 1] - patch[z, y, x], torch.tensor(2.0), atol=1e-3)


def test_cases_kept_on_the_device_give_the_same_patches_as_blocks_read_per_patch(tmp_path):
    # on a GPU the cases are copied to it once (resident); the patches must not change
    structures = ["Parotid_L", "Parotid_R"]
    _write_case(tmp_path / "c", seed=1, with_right=True)
    case = read_mask_folder(tmp_path / "c", structures)  # kept on its own grid
    batches = []
    for resident in (False, True):
        sampler = PatchSampler(
            [case],
            structures,
            (8, 16, 16),
            {"type": "none"},
            0.7,
            spacing_zyx=(3.0, 4.0, 4.0),
            resident=resident,
        )
        assert len(sampler.resident) == (1 if resident else 0)
        batches.append(sampler.batch(np.random.default_rng(5), 6))
    for per_patch, kept in zip(*batches, strict=True):
        assert torch.equal(per_patch, kept)
    assert batches[0][1].sum() > 0  # the patches hold some of both structures


def test_balanced_sampling_shows_rarely_delineated_structures_as_often_as_the_others(tmp_path):
    structures = ["Parotid_L", "Parotid_R"]
    cases = []
    for i in range(4):
        _write_case(tmp_path / f"c{i}", seed=i, with_right=(i == 0))  # Parotid_R in one case of four
        cases.append(prepare(read_mask_folder(tmp_path / f"c{i}", structures), (2.5, 4.0, 4.0)))
    sampler = PatchSampler(
        cases, structures, (8, 8, 8), {"type": "none"}, 1.0, Augmentation(mirror_probability=0)
    )

    def share_on_right(balanced: bool, weights=None) -> float:
        rng = np.random.default_rng(0)
        _, target, _ = sampler.batch(rng, 80, balanced, weights)
        return float((target[:, 1].sum((1, 2, 3)) > target[:, 0].sum((1, 2, 3))).float().mean())

    assert share_on_right(True) == pytest.approx(0.5, abs=0.15)
    assert share_on_right(False) == pytest.approx(0.125, abs=0.1)
    assert share_on_right(True, {1: 3.0}) == pytest.approx(0.75, abs=0.15)


def test_references_far_from_their_structure_s_median_volume_are_left_out_of_training():
    def case(name, cord_radius, larynx_radius):
        labels = _sphere((20, 20, 20), (10, 10, 10), cord_radius).astype(np.uint8)
        labels |= _sphere((20, 20, 20), (10, 10, 10), larynx_radius).astype(np.uint8) << 1
        return Case(name, np.zeros((20, 20, 20), np.int16), labels, np.array([True, True]), (2.0, 2.0, 2.0))

    cases = [case(f"c{i}", 4, 4) for i in range(4)] + [case("partial", 4, 1.5), case("huge", 9, 4)]
    left_out = leave_out_unusual_references(cases, ["SpinalCord", "Larynx"], ["Larynx"], factor=5.0)
    assert [(name, structure) for name, structure, _, _ in left_out] == [("partial", "Larynx")]
    assert cases[4].labelled.tolist() == [True, False]  # the loss and the patch centres skip it
    assert all(c.labelled.all() for c in cases[:4] + cases[5:])
    left_out = leave_out_unusual_references(cases, ["SpinalCord", "Larynx"], ["SpinalCord"], factor=5.0)
    assert [(name, structure) for name, structure, _, _ in left_out] == [("huge", "SpinalCord")]
    with pytest.raises(DelineoError, match="Larnyx not among the trained structures"):
        leave_out_unusual_references(cases, ["SpinalCord", "Larynx"], ["Larnyx"], factor=5.0)


def test_loss_ignores_unlabelled_structures():
    logits = torch.zeros((2, 3, 4, 8, 8), requires_grad=True)
    target = torch.zeros((2, 3, 4, 8, 8))
    target[:, :, 1:3, 2:6, 2:6] = 1
    labelled = torch.tensor([[True, False, True], [True, False, False]])
    masked_loss(logits, target, labelled).backward()
    assert logits.grad[:, 1].abs().max() == 0
    assert logits.grad[1, 2].abs().max() == 0
    assert logits.grad[0, 2].abs().max() > 0 and logits.grad[:, 0].abs().max() > 0


def test_positive_weight_pulls_harder_on_a_structure_voxels():
    target = torch.zeros((1, 2, 4, 8, 8))
    target[:, :, 2, 4, 4] = 1
    labelled = torch.ones((1, 2), dtype=torch.bool)
    gradients = []
    for pos_weight in (None, torch.tensor([1.0, 5.0])):
        logits = torch.full((1, 2, 4, 8, 8), -4.0, requires_grad=True)
        masked_loss(logits, target, labelled, pos_weight).backward()
        gradients.append(logits.grad[0, :, 2, 4, 4])
    assert torch.isclose(gradients[1][0], gradients[0][0])
    assert gradients[1][1] < 2 * gradients[0][1] < 0


def test_exported_organs_keep_their_largest_piece_only_when_they_are_one_piece():
    """keep_largest kept one lung of "Lungs", one kidney of "Kidneys", one rib of "Ribs"."""
    several = [
        "Lungs",
        "Kidneys",
        "Parotids",
        "Ribs",
        "Teeth",
        "Bowel_Small",
        "BrachialPlex_L",
        "LN_Neck_II_L",
    ]
    several += ["Brachial_Plex_L", "Lungs-GTV", "Eyes", "Femurs", "VBs", "Bone"]
    one = ["Lung_L", "Kidney_R", "Heart", "Liver", "Bladder", "Rib01_L", "Femur_Head_L"]
    outputs = TrainConfig(structures=HEAD_NECK_STRUCTURES + several + one).outputs()
    keep = {o["name"]: o["keep_largest"] for o in outputs}
    assert all(o["type"] == "ORGAN" for o in outputs if o["name"] in several + one)
    assert [name for name in several if keep[name]] == []
    assert all(keep[name] for name in one)
    # the head-and-neck organs stay one piece each; targets may be several (nodes)
    assert [keep[name] for name in HEAD_NECK_STRUCTURES] == [True] * 7 + [False] * 3


def test_learning_rate_warms_up_decays_and_restarts_in_a_later_phase():
    config = TrainConfig(learning_rate=1e-3, warmup=10, iterations=100)
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 50) < learning_rate(config, 20) < 1e-3
    restarted = TrainConfig(
        learning_rate=1e-3, warmup=10, iterations=150, phases=[{"from": 100, "learning_rate": 5e-4}]
    )
    # the first decay is unchanged and ends at the restart
    assert all(learning_rate(restarted, i) == learning_rate(config, i) for i in range(100))
    assert learning_rate(restarted, 99) < 3e-5
    assert learning_rate(restarted, 100) == pytest.approx(5e-4)
    assert learning_rate(restarted, 149) < 3e-5


def test_dice_and_hd95_on_shifted_spheres():
    shape = (40, 40, 40)
    a = _sphere(shape, (20, 20, 20), 8)
    b = _sphere(shape, (20, 20, 23), 8)
    assert dice(a, a) == 1.0 and dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert 0.6 < dice(a, b) < 0.85
    # shifting by 3 voxels of 2 mm along x: most surface points move ~6 mm or less
    distance = hd95(a, b, (1.0, 1.0, 2.0))
    assert 3.0 < distance <= 6.0
    assert hd95(a, a, (1.0, 1.0, 1.0)) == 0.0
    assert hd95(a, np.zeros_like(a), (1.0, 1.0, 1.0)) == float("inf")


def test_a_reference_far_from_its_structure_s_usual_volume_is_reported_not_dropped():
    results = [
        CaseResult(f"pt_{i}", 1.0, dice={"SpinalCord": 0.8}, reference_cc={"SpinalCord": cc})
        for i, cc in enumerate([20.0, 25.0, 30.0, 24.0])
    ]
    results.append(CaseResult("pt_9", 1.0, dice={"SpinalCord": 0.05}, reference_cc={"SpinalCord": 480.0}))
    assert unusual_references(results, ["SpinalCord"]) == [("pt_9", "SpinalCord", 480.0, 25.0)]
    assert unusual_references(results, ["PTV70"]) == []
    table = summary_table(results, ["SpinalCord"], ["SpinalCord"])
    assert "Mean Dice over the 1 organs at risk: 0.650" in table  # every reference counts
    assert "pt_9 SpinalCord: 480.0 cc (median 25.0 cc)" in table
    assert "without the unusual references: 0.800" in table
    assert unusual_references(results[:4], ["SpinalCord"]) == []


def test_evaluation_scores_the_patients_it_is_given_in_their_order(tmp_path):
    """`evaluate(..., patients=)` scores a training run's held-out patients (model selection)."""
    from support.segmentation_models import write_model

    from segmentation.training.evaluate import evaluate

    model = write_model(tmp_path / "bone", [300.0], names=["Bone_Mandible"])
    results = evaluate(model, data_path("openkbp", "validation"), patients=["pt_202", "pt_201"])
    assert [r.name for r in results] == ["pt_202", "pt_201"]
    assert all(0.0 < r.dice["Bone_Mandible"] < 1.0 for r in results)  # bone, mandible among it


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hd95_is_deepmind_surface_distance_s_and_delineo_compare_s():
    """The model card's HD95 was computed between face-neighbour surface voxel centres: up to
    3.1 mm from `delineo compare`'s on OpenKBP organs. It is now the same definition."""
    surface_distance = pytest.importorskip("surface_distance")
    shape = (30, 40, 40)
    a = _sphere(shape, (15, 20, 20), 9)
    b = _sphere(shape, (16, 18, 22), 7)
    spacing = (2.5, 4.0, 4.0)
    theirs = surface_distance.compute_robust_hausdorff(
        surface_distance.compute_surface_distances(a, b, spacing), 95
    )
    assert hd95(a, b, spacing) == pytest.approx(theirs, abs=1e-6)


# ---------------------------------------------------------------- training, resume, export


TINY = {
    "structures": ["Parotid_L", "Parotid_R"],
    "channels": [4, 8, 16],
    "strides_zyx": [[1, 2, 2], [2, 2, 2]],
    "patch_zyx": [8, 16, 16],
    "inference_patch_zyx": [16, 32, 32],
    "batch_size": 2,
    "iterations": 4,
    "threads": 1,
    "checkpoint_every": 2,
    "evaluate_every": 2,
    "deep_supervision": 1,
}


@pytest.fixture
def tiny_cases(tmp_path):
    for i in range(3):
        _write_case(tmp_path / "cases" / f"case{i}", seed=i)
    return tmp_path / "cases"


def test_training_resumes_exactly_and_exports_a_loadable_model(tmp_path, tiny_cases):
    sources = discover(tiny_cases)
    straight = prepare_run(TrainConfig(**TINY), tmp_path / "straight", sources, holdout_count=1)
    straight.run()
    assert straight.iteration == 4
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in log if "holdout_dice" in e] == [2, 4]

    interrupted = prepare_run(TrainConfig(**{**TINY, "iterations": 2}), tmp_path / "resumed", sources, 1)
    interrupted.run()
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    config["iterations"] = 4
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(config))
    resumed = prepare_run(TrainConfig(), tmp_path / "resumed", sources, 1)
    assert resumed.iteration == 2
    resumed.run()
    for name, value in straight.net.state_dict().items():
        assert torch.allclose(value, resumed.net.state_dict()[name], atol=1e-6), name

    manifest_path = export_model(tmp_path / "straight", tmp_path / "model", "tiny", "0.1", "test model")
    manifest = json.loads(manifest_path.read_text())
    weights = tmp_path / "model" / manifest["weights"]["file"]
    assert manifest["weights"]["sha256"] == sha256_of(weights)
    # permissions as for any new file (the umask), as the manifest beside it: a model folder on a
    # shared disk is readable by its other users (safetensors alone writes owner-only files)
    assert weights.stat().st_mode & 0o777 == manifest_path.stat().st_mode & 0o777
    assert [o["name"] for o in manifest["outputs"]] == ["Parotid_L", "Parotid_R"]
    assert [o["type"] for o in manifest["outputs"]] == ["ORGAN", "ORGAN"]
    # the run records each organ's smallest and largest training (not held-out) contour; two
    # cases are too few for the manifest's volume range (see the next test)
    trained = json.loads((tmp_path / "straight" / "split.json").read_text())["training"]
    recorded = json.loads((tmp_path / "straight" / "training_volumes.json").read_text())
    for output in manifest["outputs"]:
        volumes = []
        for case in trained:
            mask = load_volume(tiny_cases / case / f"{output['name']}.nii.gz")
            volumes.append(np.count_nonzero(mask.array) * mask.grid.voxel_volume_cc)
        record = recorded[output["name"]]
        extent = [record["smallest_cc"], record["largest_cc"]]
        assert extent == pytest.approx([min(volumes), max(volumes)], abs=0.006)
        assert record["cases"] == 2 and "training_volume_cc" not in output
    assert manifest["inference"]["mirror_axes_zyx"] == [2]  # trained with left–right mirroring
    # the manifest's card exists: what the run recorded, to be completed by hand
    card = (tmp_path / "model" / manifest["card"]).read_text(encoding="utf-8")
    assert "Research use only" in card and "- Cases: 2 for training, 1 held out" in card
    assert "## Held-out Dice (the weights kept: iteration" in card and "| Parotid_L | " in card
    (tmp_path / "model" / "MODEL_CARD.md").write_text("written by hand")
    export_model(tmp_path / "straight", tmp_path / "model", "tiny", "0.2", "test model")
    assert (tmp_path / "model" / "MODEL_CARD.md").read_text() == "written by hand"
    net = _load(manifest, weights)
    x = torch.zeros((1, 1, 11, 21, 30))
    assert net(x).shape == (1, 2, 11, 21, 30)

    # through the model registry and the engine, on a case's own grid
    from segmentation.registry import load_model

    volume = load_volume(tiny_cases / "case0" / "image.nii.gz")
    structures = load_model(str(tmp_path / "model")).predict(volume, device="cpu")
    assert structures.names() == ["Parotid_L", "Parotid_R"]
    assert all(s.mask.grid.shape == volume.grid.shape for s in structures)

    # model selection scores exactly what the exported model draws through the engine
    from safetensors.torch import load_file

    straight.net.load_state_dict(load_file(str(tmp_path / "straight" / "best.safetensors")))
    scores = straight.evaluate()
    held_out = straight.holdout[0]
    drawn = load_model(str(tmp_path / "model")).predict(held_out.volume(), device="cpu")
    for k, name in enumerate(TINY["structures"]):
        reference = held_out.mask(k)
        assert scores[name] == pytest.approx(dice(drawn[name].mask.full(), reference))


def test_a_run_records_the_references_it_left_out(tmp_path, tiny_cases):
    partial = load_volume(tiny_cases / "case1" / "Parotid_L.nii.gz")
    partial.array[:] = 0
    partial.array[6, 16, 22] = 1  # one voxel of a 'parotid'
    save_volume(partial, tiny_cases / "case1" / "Parotid_L.nii.gz")
    config = TrainConfig(**{**TINY, "unusual_reference_factor": 5.0})
    trainer = prepare_run(config, tmp_path / "run", discover(tiny_cases), holdout_count=0)
    recorded = json.loads((tmp_path / "run" / "left_out_references.json").read_text())
    assert [(r["case"], r["structure"]) for r in recorded] == [("case1", "Parotid_L")]
    assert [case.labelled.tolist() for case in trainer.sampler.cases] == [
        [True, True],
        [False, True],
        [True, True],
    ]


def test_training_can_start_from_a_model_folder(tmp_path, tiny_cases):
    """Fine-tuning: a run with init_from starts from that model's weights (sha256 checked), and
    a model of another network is refused naming the file."""
    from planning.errors import DelineoError

    sources = discover(tiny_cases)
    first = prepare_run(TrainConfig(**TINY), tmp_path / "first", sources, holdout_count=1)
    first.run()
    export_model(tmp_path / "first", tmp_path / "model", "tiny", "0.1", "test model")
    config = TrainConfig(**{**TINY, "init_from": str(tmp_path / "model"), "seed": 7})
    tuned = prepare_run(config, tmp_path / "tuned", sources, holdout_count=1)
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "model" / "weights.safetensors"))
    for name, value in tuned.net.state_dict().items():
        assert torch.equal(value, exported[name]), name
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from"] == str(
        tmp_path / "model"
    )

    wider = TrainConfig(**{**TINY, "channels": [8, 16, 32], "init_from": str(tmp_path / "model")})
    with pytest.raises(DelineoError, match="weights do not fit the network"):
        prepare_run(wider, tmp_path / "wider", sources, holdout_count=1)


def _load(manifest: dict, weights) -> torch.nn.Module:
    from safetensors.torch import load_file

    net = build_network(manifest["architecture"]["name"], manifest["architecture"]["params"])
    net.load_state_dict(load_file(str(weights)), strict=True)
    return net.eval()


def test_delineo_train_command_trains_and_exports(tmp_path, tiny_cases, capsys):
    from workstation.cli import main

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "iterations": 2, "evaluate_every": 100}))
    arguments = ["train", str(tiny_cases), "--run", str(tmp_path / "run"), "--config", str(config)]
    arguments += ["--holdout", "1", "--export", str(tmp_path / "model"), "--name", "tiny_cli"]
    arguments += ["--omit", "Parotid_R", "--half-weights", "--device", "cpu"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "training on cpu" in out and "trained 2 iterations" in out
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0] == {"iteration": 0, "device": "cpu"}
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["name"] == "tiny_cli" and manifest["preprocessing"]["spacing_xyz"] == [4.0, 4.0, 2.5]
    assert [o["name"] for o in manifest["outputs"]] == ["Parotid_L"]  # omitted: trained, not offered
    assert json.loads((tmp_path / "run" / "split.json").read_text())["holdout"] != []

    # float16 weights: half the file, the same contours as the float32 export
    from safetensors.torch import load_file

    from segmentation.registry import load_model

    full = export_model(tmp_path / "run", tmp_path / "full", "tiny_full", "1", "", ("Parotid_R",)).parent
    half = tmp_path / "model"
    assert {t.dtype for t in load_file(str(half / "weights.safetensors")).values()} >= {torch.float16}
    assert (half / "weights.safetensors").stat().st_size < 0.6 * (full / "weights.safetensors").stat().st_size
    volume = load_volume(tiny_cases / "case0" / "image.nii.gz")
    drawn = [
        load_model(str(folder)).predict(volume, device="cpu")["Parotid_L"].mask.full()
        for folder in (half, full)
    ]
    assert (drawn[0] == drawn[1]).mean() >= 0.999

    # batch-norm variances beyond float16's range stay float32 (a float16 cast made them inf)
    from safetensors.torch import save_file

    state = load_file(str(tmp_path / "run" / "best.safetensors"))
    variance = next(k for k in state if k.endswith("running_var"))
    state[variance] = torch.full_like(state[variance], 1e6)
    save_file(state, str(tmp_path / "run" / "best.safetensors"))
    wide = export_model(tmp_path / "run", tmp_path / "wide", "tiny_wide", "1", "", half=True).parent
    stored = load_file(str(wide / "weights.safetensors"))
    assert stored[variance].dtype == torch.float32 and bool((stored[variance] == 1e6).all())
    assert stored[next(k for k in state if k.endswith("weight"))].dtype == torch.float16
    assert load_model(str(wide)).predict(volume, device="cpu")["Parotid_L"] is not None

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"no_such_setting": 1}))
    assert main(["train", str(tiny_cases), "--run", str(tmp_path / "other"), "--config", str(bad)]) == 1
    capsys.readouterr()
    if not torch.cuda.is_available():  # a GPU asked for and missing is named before any case is read
        assert main(["train", str(tiny_cases), "--run", str(tmp_path / "gpu"), "--device", "cuda"]) == 1
        assert "no CUDA GPU" in capsys.readouterr().err
        assert not (tmp_path / "gpu").exists()

    # a resumed run keeps its settings: other ones are refused by name, not ignored; so are other
    # held-out cases; --threads may change
    resumed = ["train", str(tiny_cases), "--run", str(tmp_path / "run"), "--config", str(config)]
    assert main([*resumed, "--holdout", "1", "--iterations", "3"]) == 1
    assert "resumes with the settings it was started with: iterations 2 (asked: 3)" in capsys.readouterr().err
    assert main([*resumed, "--holdout", "2"]) == 1
    assert "other held-out cases" in capsys.readouterr().err
    assert main([*resumed, "--holdout", "1", "--threads", "2"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 2

    # fine-tuning the exported (float32) model: the run records where it started
    tuned = ["train", str(tiny_cases), "--run", str(tmp_path / "tuned"), "--config", str(config)]
    assert main([*tuned, "--holdout", "1", "--init", str(full)]) == 0
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init_from"] == str(full.resolve())


def test_fine_tuning_takes_the_model_s_network_and_refuses_another(tmp_path, tiny_cases, capsys):
    """`--init MODEL` with no settings trains the model's own network (the default settings
    describe another, smaller one, which failed after every case had been read); settings that
    contradict the model are refused by name before any case is read."""
    from pathlib import Path

    from workstation.cli import main

    builtin = Path(__file__).resolve().parents[2] / "resources" / "models" / "head_neck"
    run = tmp_path / "tuned"
    arguments = ["train", str(tiny_cases), "--run", str(run), "--init", str(builtin), "--holdout", "0"]
    assert main([*arguments, "--iterations", "1", "--threads", "1"]) == 0
    config = json.loads((run / "config.json").read_text())
    manifest = json.loads((builtin / "manifest.json").read_text())
    assert config["channels"] == manifest["architecture"]["params"]["channels"]
    assert config["structures"] == [o["name"] for o in manifest["outputs"]]
    assert config["spacing_zyx"] == manifest["preprocessing"]["spacing_xyz"][::-1]
    capsys.readouterr()

    tiny = tmp_path / "tiny.json"
    tiny.write_text(json.dumps({k: v for k, v in TINY.items() if k != "structures"}))
    other = ["train", str(tiny_cases), "--run", str(tmp_path / "other"), "--init", str(builtin)]
    assert main([*other, "--config", str(tiny)]) == 1
    assert "its network has other channels, strides_zyx, deep_supervision" in capsys.readouterr().err
    assert main([*other, "--structures", "Parotid_L", "Parotid_R"]) == 1
    error = capsys.readouterr().err
    assert "the structures must be the model's channels in order: Brainstem, SpinalCord" in error
    assert not (tmp_path / "other").exists()


def test_damaged_settings_and_checkpoints_are_named(tmp_path, tiny_cases, capsys):
    """A damaged config.json or checkpoint ended in a JSON or torch traceback naming no file."""
    from workstation.cli import main

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "iterations": 2}))
    run = tmp_path / "run"
    command = ["train", str(tiny_cases), "--run", str(run), "--holdout", "1"]
    assert main([*command, "--config", str(config)]) == 0
    capsys.readouterr()
    (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:1000])
    assert main(command) == 1
    assert f"{run / 'checkpoint.pt'}: cannot be read, damaged" in capsys.readouterr().err
    (run / "config.json").write_text('{"structures": ["Parotid_L"')
    assert main(command) == 1
    assert f"{run / 'config.json'}: cannot be read as JSON settings" in capsys.readouterr().err
    config.write_text("[1, 2]")
    assert main(["train", str(tiny_cases), "--run", str(tmp_path / "new"), "--config", str(config)]) == 1
    assert f"{config}: holds a JSON list, not an object of settings" in capsys.readouterr().err


def test_an_ensemble_is_not_fine_tuned_as_one_network(tmp_path):
    """Fine-tuning trains one network; an ensemble's other networks would be left out silently."""
    import shutil

    builtin = Path(__file__).resolve().parents[2] / "resources" / "models" / "head_neck"
    folder = tmp_path / "ensemble"
    shutil.copytree(builtin, folder)
    shutil.copy(folder / "weights.safetensors", folder / "second.safetensors")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["ensemble"] = [{"weights": {**manifest["weights"], "file": "second.safetensors"}}]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DelineoError, match="an ensemble of 2 networks; fine-tune one of them"):
        fine_tuning_config({}, folder)


# ---------------------------------------------------------------- the built-in head-and-neck model


@pytest.mark.slow
def test_builtin_head_neck_model_segments_a_validation_patient():
    """One OpenKBP validation patient (never trained on): every organ the model offers is drawn
    in the right place. The thresholds guard against regressions of this model (validation mean
    Dice 0.709 over its seven organs, MODEL_CARD.md); they are not the project's accuracy target."""
    from segmentation.registry import find_model, load_model

    entry = find_model("head_neck_openkbp")
    organs = ["Brainstem", "SpinalCord", "Parotid_L", "Parotid_R", "Esophagus", "Larynx", "Bone_Mandible"]
    assert entry.origin == "built-in" and list(entry.structures) == organs + ["PTV56", "PTV63", "PTV70"]
    volume, reference = openkbp_volume(data_path("openkbp", "validation") / "pt_201.npz")
    structures = load_model("head_neck_openkbp").predict(volume, device="cpu")
    scores = {s.name: dice(s.mask.full(), reference[s.name]) for s in structures if s.name in reference}
    assert all(organ in scores for organ in organs)
    # every organ within the volumes of the model's training contours: no warning
    assert load_model("head_neck_openkbp").last_run.warnings == []
    assert np.mean([scores[o] for o in organs]) >= 0.70, scores
    assert min(scores[o] for o in organs) >= 0.5, scores
    # laterality on the patient's own grid: x index grows toward the patient's left
    left = np.argwhere(structures["Parotid_L"].mask.full())[:, 2].mean()
    right = np.argwhere(structures["Parotid_R"].mask.full())[:, 2].mean()
    assert left > right


def test_manifest_volume_ranges_need_enough_cases_or_the_fine_tuned_model_s(tmp_path):
    """A range from a handful of cases would flag many new patients: an organ needs 20 training
    contours for one, or the range of the model it fine-tunes, which is joined with its own."""
    from support.segmentation_models import write_model

    from segmentation.training.model_folders import _training_volumes

    run = tmp_path / "run"
    run.mkdir()
    (run / "training_volumes.json").write_text(
        json.dumps(
            {
                "Parotid_L": {"cases": 25, "smallest_cc": 10.0, "largest_cc": 40.0},
                "Parotid_R": {"cases": 3, "smallest_cc": 20.0, "largest_cc": 90.0},
                "Larynx": {"cases": 3, "smallest_cc": 15.0, "largest_cc": 30.0},
            }
        )
    )
    assert _training_volumes(run, None) == {"Parotid_L": {"smallest_cc": 10.0, "largest_cc": 40.0}}
    base = write_model(tmp_path / "base", [100.0, 200.0], names=["Parotid_R", "Brainstem"])
    manifest = json.loads((base / "manifest.json").read_text())
    manifest["outputs"][0]["training_volume_cc"] = [5.0, 80.0]
    manifest["outputs"][1]["training_volume_cc"] = [6.0, 45.0]
    (base / "manifest.json").write_text(json.dumps(manifest))
    assert _training_volumes(run, str(base)) == {
        "Parotid_L": {"smallest_cc": 10.0, "largest_cc": 40.0},
        "Parotid_R": {"smallest_cc": 5.0, "largest_cc": 90.0},  # joined
        "Brainstem": {"smallest_cc": 6.0, "largest_cc": 45.0},  # the base model's
    }


def test_the_built_in_model_s_training_configs_are_valid_training_settings():
    # the model card's commands pass these files to `delineo train --config`: a misspelt field
    # would only fail when somebody runs them, possibly hours into a GPU booking
    folder = Path(__file__).resolve().parents[2] / "resources" / "models" / "head_neck"
    configs = sorted(folder.glob("*.json"))
    configs = [path for path in configs if path.name != "manifest.json"]
    assert len(configs) >= 7
    for path in configs:
        config = TrainConfig.from_json(path)
        assert set(config.selection_structures) <= set(config.structures), path.name
