"""The rule-based contours as a model: name, structures, ``predict`` like a network model.

The rules work on axial slices of an array whose axes run along the patient's: z toward the head,
rows toward the couch (posterior for a supine patient), columns toward the patient's left. Like
the network pipeline, ``predict`` brings the image to that orientation first (a permutation and
flips of the array's axes, no resampling; an oblique grid takes the nearest patient axes) and the
masks back to the image's own grid, voxel for voxel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from planning.errors import Cancelled
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet
from planning.tg263 import style_for
from planning.volume import Volume
from segmentation.engine.inputs import check_modality, finite_voxels, select_outputs
from segmentation.engine.manifest import OutputSpec
from segmentation.engine.orientation import Reorientation
from segmentation.engine.pipeline import RunInfo, credit


def _output(channel: int, name: str, roi_type: RoiType | None = None) -> OutputSpec:
    color, default_type = style_for(name)
    return OutputSpec(channel, name, roi_type or default_type, color)


class RuleModel:
    """External, Lung_L, Lung_R and Bone (TG-263: all bones) from thresholds and morphology (CT only)."""

    name = "ct_rules"
    version = "1.0"
    description = "Rule-based CT contours, no weights: External (couch left out, air filled), lungs, bones"
    modality = "CT"
    kind = "rules"
    source = None
    outputs = (
        _output(0, "External", RoiType.EXTERNAL),
        _output(1, "Lung_L"),
        _output(2, "Lung_R"),
        _output(3, "Bone"),
    )

    def __init__(self):
        self.last_run: RunInfo | None = None

    def predict(
        self,
        volume: Volume,
        *,
        structures: list[str] | None = None,
        device: str | None = None,
        on_progress: Callable[[str, float, float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> StructureSet:
        """Contours of `volume` (a CT in HU); `device` is ignored (these run on the CPU)."""
        from segmentation.rules.body import body_mask
        from segmentation.rules.bones import bone_mask
        from segmentation.rules.lungs import lung_masks

        wanted = [o.name for o in select_outputs(self.outputs, structures, self.name)]
        volume, warnings = finite_voxels(volume)
        warnings += check_modality(volume, self.modality, self.name)
        on_progress = on_progress or (lambda stage, done, total: None)
        info, started = RunInfo(device="cpu", warnings=warnings), time.perf_counter()
        orient = Reorientation.between(volume.grid.direction, working_orientation(volume))
        hu, grid = orient.forward_array(volume.array), orient.grid_of(volume.grid)
        spacing = grid.spacing_zyx
        steps = (
            1
            + any(s in wanted for s in ("Lung_L", "Lung_R", "Bone"))
            + any(s in wanted for s in ("Lung_L", "Lung_R"))
        )
        stage = "Rule-based contours"
        on_progress(stage, 0, steps)
        masks: dict[str, np.ndarray] = {}
        masks["External"] = body = body_mask(hu, spacing)
        done = 1
        _step(on_progress, stage, done, steps, cancel)
        if any(s in wanted for s in ("Lung_L", "Lung_R", "Bone")):
            masks["Bone"] = bone_mask(hu, spacing, body)
            done += 1
            _step(on_progress, stage, done, steps, cancel)
        if any(s in wanted for s in ("Lung_L", "Lung_R")):
            masks.update(lung_masks(hu, grid, body, masks["Bone"]))
            done += 1
            _step(on_progress, stage, done, steps, cancel)
        del hu
        result = StructureSet(volume.grid, volume.frame_of_reference_uid, label="Delineo rules")
        for output in self.outputs:
            if output.name in wanted:
                mask = Mask.from_full(volume.grid, orient.backward(masks[output.name]))
                result.add(
                    Structure(
                        output.name,
                        mask,
                        output.color,
                        output.roi_type,
                        GenerationAlgorithm.AUTOMATIC,
                        description=credit(self.name, self.version),
                    )
                )
        info.seconds["total"] = time.perf_counter() - started
        self.last_run = info
        return result


def _step(on_progress, stage, done, total, cancel) -> None:
    on_progress(stage, done, total)
    if cancel is not None and cancel.is_set():  # even after the last step: the user asked
        raise Cancelled("rule-based contouring cancelled")


def working_orientation(volume: Volume) -> str:
    """The orientation the rules work in, as letters for the array's x, y, z indices.

    "LPS" (rows toward posterior: a supine patient's couch at the high rows), except for an axial
    DICOM series, which keeps its rows and columns as stored: a scanner's axial images have the
    couch at the bottom (rows run toward it) whatever the patient position, prone included (its
    rows run toward anterior). Only its slice axis is turned toward superior."""
    direction = volume.grid.direction
    nearest = np.argmax(np.abs(direction), axis=0)  # the LPS axis each index axis (x, y, z) follows
    if not volume.slices or sorted(nearest.tolist()) != [0, 1, 2] or nearest[2] != 2:
        return "LPS"
    letters = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A"}
    x, y = (letters[int(nearest[k]), int(np.sign(direction[nearest[k], k]))] for k in (0, 1))
    return x + y + "S"
