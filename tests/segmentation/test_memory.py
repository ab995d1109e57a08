"""The host-memory check before a run: runs that fit pass, runs that cannot are refused before
anything is read or allocated, with a message naming the model, the estimate and what is free."""

from __future__ import annotations

import time

import numpy as np
import pytest
from support.nnunet_folder import write_nnunet_folder
from support.segmentation_models import one_thread, phantom, write_model  # noqa: F401

from planning.geometry import Grid
from segmentation import registry
from segmentation.engine import memory
from segmentation.engine.manifest import read_manifest
from segmentation.engine.model import from_manifest, read_state_dict
from segmentation.engine.pipeline import estimate_memory
from segmentation.nnunet import read_nnunet_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def available(tmp_path, monkeypatch):
    """Sets the memory the system reports as available, in bytes."""

    def set_available(size: int) -> None:
        meminfo = tmp_path / "meminfo"
        meminfo.write_text(f"MemTotal:       99999999 kB\nMemAvailable:   {size // 1024} kB\n")
        monkeypatch.setattr(memory, "MEMINFO", meminfo)

    return set_available


def _estimate(model, grid: Grid) -> memory.MemoryEstimate:
    networks, loaded = model.sizing()
    box = tuple(slice(0, n) for n in grid.shape)
    return estimate_memory(grid, box, model.recipe, networks, loaded, model.recipe.patch_zyx)


def test_the_built_in_models_on_a_large_ct_fit_in_the_memory_of_a_small_machine():
    """A 512 × 512 × 300 CT, uncropped: well under the 24 GB of the development machine (and an
    8 GiB laptop), weights counted as float32 from the network before any file is read."""
    grid = Grid((300, 512, 512), (0.98, 0.98, 2.5))
    builtin = [e for e in registry.list_models() if e.origin == "built-in" and e.kind == "delineo"]
    assert builtin
    for entry in builtin:
        manifest = read_manifest(entry.path)
        model = from_manifest(manifest)
        assert model.sizing()[1] is False  # not loaded: sized on the meta device
        estimate = _estimate(model, grid)
        values = sum(t.numel() for t in read_state_dict(manifest.weights_path).values())
        assert estimate.weights == 4 * values
        assert estimate.activations > 2**20 and estimate.total < 2 * 2**30
        memory.check_fits(estimate, model.name, available=8 * 2**30)


def test_a_run_that_cannot_fit_is_refused_quickly_before_its_weights_are_read(tmp_path, available):
    """Tiles of 2048³ voxels: hundreds of GB; refused in seconds, nothing loaded."""
    model = from_manifest(read_manifest(write_model(tmp_path / "huge", [100.0], patch_zyx=(2048,) * 3)))
    available(24 * 2**30)
    started = time.perf_counter()
    with pytest.raises(memory.NotEnoughMemory) as refused:
        model.predict(phantom()[0], device="cpu")
    assert time.perf_counter() - started < 10
    message = str(refused.value)
    assert message.startswith("huge needs about ") and "24.0 GiB is available: nothing was run" in message
    assert "use a GPU" in message
    assert float(message.split("needs about ")[1].split(" GiB")[0]) > 200
    assert model.sizing()[1] is False


def test_an_nnunet_run_counts_every_fold_and_is_refused_before_a_checkpoint_is_read(tmp_path, available):
    folder = write_nnunet_folder(tmp_path, ["liver", "spleen"], folds=(0, 1))
    model = read_nnunet_folder(folder)
    volume = phantom()[0]
    estimate = _estimate(model, volume.grid)
    loaded = model.networks_on("cpu")[0]  # its state dict repeats the encoder (decoder.encoder.*)
    one_fold = sum(t.numel() for t in (*loaded.parameters(), *loaded.buffers()))
    assert estimate.weights == 2 * 4 * one_fold
    assert _estimate(model, volume.grid).weights == 0  # loaded now: counted as in use
    model = read_nnunet_folder(folder)
    available(estimate.weights // 2)
    with pytest.raises(memory.NotEnoughMemory, match=r"^Dataset999_Test/3d_fullres needs about"):
        model.predict(volume, device="cpu")
    assert model.sizing()[1] is False


def test_a_run_that_fits_runs(tmp_path, available):
    model = from_manifest(read_manifest(write_model(tmp_path / "m", [100.0])))
    volume, truth = phantom()
    available(64 * 2**20)
    result = model.predict(volume, device="cpu")
    assert np.count_nonzero(result["Region_0"].mask.full()) > 0.9 * np.count_nonzero(truth["big"])


def test_where_the_memory_available_is_unknown_nothing_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "missing")
    assert memory.available_bytes() is None
    memory.check_fits(memory.MemoryEstimate(2**60, 0, 0, 0), "a model")
