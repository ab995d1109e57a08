"""The rule-based contours as a model: name, structures, ``predict`` like a network model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from planning.errors import Cancelled
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet
from planning.tg263 import style_for
from planning.volume import Volume
from segmentation.engine.manifest import OutputSpec
from segmentation.engine.pipeline import RunInfo, check_modality, credit, finite_voxels, select_outputs


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
        hu, spacing = volume.array, volume.grid.spacing_zyx
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
            masks.update(lung_masks(hu, volume.grid, body, masks["Bone"]))
            done += 1
            _step(on_progress, stage, done, steps, cancel)
        result = StructureSet(volume.grid, volume.frame_of_reference_uid, label="Delineo rules")
        for output in self.outputs:
            if output.name in wanted:
                mask = Mask.from_full(volume.grid, masks[output.name])
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
    if cancel is not None and cancel.is_set() and done < total:
        raise Cancelled("rule-based contouring cancelled")
