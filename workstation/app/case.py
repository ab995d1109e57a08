"""The case being contoured: image, structures, their undo history and the image's origin (Qt-free).

All edits go through a `Case` so each one lands on the one undo stack: tools call `edit_region`,
`Stroke`, `add_structure`, `replace_mask`, `set_properties` or `remove_structure`. An edit of a
locked structure's geometry, name or type, or its deletion, raises `Locked` before anything
changes; its colour, visibility and review stay free, and it may be read (a margin's source).
"""

from __future__ import annotations

import itertools

import numpy as np

from planning.errors import GeometryError
from planning.session import FilledPlanes, ImageReference, Session
from planning.structures import Box, GenerationAlgorithm, Mask, Structure, StructureSet
from planning.tg263 import distinct_color, style_for
from planning.volume import Volume
from workstation.app.history import (
    LOCKED_PROPERTIES,
    AddStructure,
    ChangeProperties,
    Command,
    Locked,
    Macro,
    MaskEdit,
    RemoveStructure,
    ReplaceMask,
    UndoStack,
)


def contours_left_out(warnings: list[str]) -> bool:
    """Whether reading warnings say that contours off the loaded images were left out (the images
    are a part of the series the structures were drawn on)."""
    return any("contours were left out" in warning for warning in warnings)


class Case:
    """A loaded image with its structure set and edit history.

    Attributes:
        volume: the image.
        structures: its structures (events drive the views).
        reference: where the image came from (for sessions).
        history: the undo stack of every edit.
    """

    def __init__(self, volume: Volume, structures: StructureSet | None, reference: ImageReference):
        self.volume = volume
        if structures is None:
            structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
        self.structures = structures
        self.reference = reference
        self.history = UndoStack(structures)
        #: What slice interpolation last put in the slices it filled, per ROI number: those
        #: slices are not taken as drawn the next time (see `planning.interpolation.key_planes`).
        self.interpolated: dict[int, FilledPlanes] = {}
        #: The slice view ("axial", "coronal", "sagittal") each structure was last drawn in with a
        #: tool, per ROI number: interpolation fills between its slices in that view. Kept in sessions.
        self.drawn_in: dict[int, str] = {}

    @classmethod
    def with_structures(cls, volume: Volume, loaded: list[StructureSet], reference: ImageReference) -> Case:
        """A case of `volume` holding the structures of the sets read with it, whose reading
        warnings (contours left out beyond the loaded images...) stay in `structures.warnings`
        for the DVH panel and its CSV."""
        structures = StructureSet(volume.grid, volume.frame_of_reference_uid)
        for structure_set in loaded:
            for structure in structure_set:
                structures.add(structure)
            structures.label = structure_set.label or structures.label
            structures.warnings += structure_set.warnings
        return cls(volume, structures, reference)

    @property
    def grid(self):
        return self.volume.grid

    # -- edits ---------------------------------------------------------------------------------

    def edit_region(self, label: str, name: str, box: Box, values: np.ndarray) -> bool:
        """Set structure `name` to `values` inside `box` as one undo step; False if nothing changed."""
        self.check_unlocked([name])
        structure = self.structures[name]
        algorithm, contours = structure.algorithm, structure.contours
        before = structure.mask.region(box)
        if np.array_equal(before, values):
            return False
        self.structures.edit_mask(name, box, values)
        edit = MaskEdit(label, name, box, before, values, algorithm, contours)
        self._push_hand_edit(label, edit)
        return True

    def _push_hand_edit(self, label: str, edit: Command) -> None:
        """Push a person's edit of a structure (applied) as one undo step. A derived structure
        (a PTV grown from its CTV) edited by hand leaves its recipe in the same step: a rebuild
        would silently undo the edit."""
        structure = self.structures[edit.name]
        if not structure.recipe:
            self.history.push(edit)
            return
        from workstation.app import services

        before = {"name": structure.name, "recipe": structure.recipe, "description": structure.description}
        after = {**before, "recipe": None, "description": services.edited_description(structure.recipe)}
        unlinked = ChangeProperties(f"{structure.name} edited by hand", before, after)
        unlinked.redo(self.structures)
        self.history.push(Macro(label, [edit, unlinked]))

    def stroke(self, label: str, name: str) -> Stroke:
        """Start a multi-step edit (a brush drag) that becomes one undo step when finished."""
        return Stroke(self, label, name)

    def new_structure(
        self,
        name: str,
        *,
        label: str | None = None,
        mask: Mask | None = None,
        algorithm: GenerationAlgorithm = GenerationAlgorithm.MANUAL,
        **attributes,
    ) -> Structure:
        """Add a structure named `name` (made unique) with its TG-263 colour and type; a colour too
        close to one already in the case gives way to a distinct one (unless one is given)."""
        color, roi_type = style_for(name)
        attributes.setdefault("color", distinct_color(color, [s.color for s in self.structures]))
        attributes.setdefault("roi_type", roi_type)
        structure = Structure(
            self.structures.unique_name(name), mask or Mask(self.grid), algorithm=algorithm, **attributes
        )
        return self.add_structure(structure, label=label)

    def add_structure(self, structure: Structure, *, label: str | None = None) -> Structure:
        """Add a structure (its name made unique) as one undo step named `label`."""
        self.structures.add(structure)
        self.history.push(AddStructure(label or f"New structure {structure.name}", structure))
        return structure

    def add_structures(self, structures: list[Structure], label: str) -> None:
        """Add several structures as one undo step."""
        commands: list[Command] = []
        for structure in structures:
            self.structures.add(structure)
            commands.append(AddStructure(f"Add {structure.name}", structure))
        if commands:
            self.history.push(Macro(label, commands))

    def import_structures(self, loaded: StructureSet, label: str) -> None:
        """Add the structures of a set read onto these images as one undo step; its reading
        warnings join `structures.warnings`. One whose name is taken gets a suffix (GTV_2), and a
        derived structure among them reads its imported sources under their new names: not the
        open case's namesakes, which would make it out of date and be rebuilt from them."""
        from workstation.app import services

        taken, names = set(self.structures.names()), {}
        for structure in loaded:  # the names `StructureSet.add` gives them, one after another
            name = new = structure.name
            for n in itertools.count(2):
                if new not in taken:
                    break
                new = f"{name}_{n}"
            names[name] = new
            taken.add(new)
        renamed = {old: new for old, new in names.items() if old != new}
        for structure in loaded:
            structure.name = names[structure.name]
            if renamed and structure.recipe and "op" in structure.recipe:
                structure.recipe, structure.description = services.rename_recipe_sources(
                    structure.recipe, structure.description, renamed
                )
        self.add_structures(list(loaded), label)
        self.structures.warnings += loaded.warnings

    def remove_structure(self, name: str) -> None:
        self.check_unlocked([name], "delete")
        index = self.structures.names().index(name)
        structure = self.structures.remove(name)
        self.history.push(RemoveStructure(f"Delete {name}", structure, index))

    def remove_structures(self, names: list[str], label: str) -> None:
        """Delete several structures as one undo step (none if one is locked)."""
        self.check_unlocked(names, "delete")
        commands: list[Command] = []
        for name in names:
            index = self.structures.names().index(name)
            commands.append(RemoveStructure(f"Delete {name}", self.structures.remove(name), index))
        if commands:
            self.history.push(Macro(label, commands))

    def replace_mask(
        self, label: str, name: str, mask: Mask, algorithm: GenerationAlgorithm | None = None
    ) -> None:
        """Replace a structure's whole geometry as one undo step."""
        self.check_unlocked([name])
        structure = self.structures[name]
        before, contours, previous = structure.mask, structure.contours, structure.algorithm
        self.structures.set_mask(name, mask)
        if algorithm is not None and algorithm != previous:
            structure.algorithm = algorithm
            self.structures.notify(structure)
        self._push_hand_edit(label, ReplaceMask(label, name, before, mask, contours, previous, algorithm))

    def derive_into(self, name: str, derived: Structure, label: str) -> Structure:
        """Put a derived structure (margin, Boolean...: geometry, recipe, description) into
        structure `name`, new or existing; one undo step."""
        if name not in self.structures:
            derived.name = self.structures.unique_name(name)
            return self.add_structure(derived, label=label)
        self.check_unlocked([name])
        structure = self.structures[name]
        before, contours, previous = structure.mask, structure.contours, structure.algorithm
        self.structures.set_mask(name, derived.mask)
        properties = ChangeProperties(
            "recipe",
            {
                "name": name,
                "recipe": structure.recipe,
                "description": structure.description,
                "algorithm": previous,
            },
            {
                "name": name,
                "recipe": derived.recipe,
                "description": derived.description,
                "algorithm": derived.algorithm,
            },
        )
        properties.redo(self.structures)
        replace = ReplaceMask(label, name, before, derived.mask, contours, previous)
        self.history.push(Macro(label, [replace, properties]))
        return structure

    def set_properties(self, target: str, label: str | None = None, **changes) -> None:
        """Change name, color, roi_type, description, algorithm or recipe of structure `target`."""
        structure = self.structures[target]
        before = {key: getattr(structure, key) for key in changes}
        before["name"] = structure.name
        after = {**before, **changes}
        if after == before:
            return
        if any(after.get(key) != before.get(key) for key in LOCKED_PROPERTIES):
            self.check_unlocked([target], "rename" if after["name"] != target else "change its type")
        command = ChangeProperties(label or f"Edit {target}", before, after)
        command.redo(self.structures)
        renamed = self._rename_in_recipes(target, after["name"]) if after["name"] != target else []
        self.history.push(Macro(command.label, [command, *renamed]) if renamed else command)

    def _rename_in_recipes(self, old: str, new: str) -> list[Command]:
        """Make the derived structures read from `old` read from `new` (renamed), applied: a
        CTV grown from GTV-1 still rebuilds after GTV-1 is renamed GTVp."""
        from workstation.app import services

        commands: list[Command] = []
        for structure in self.structures:
            if not structure.recipe or "op" not in structure.recipe:
                continue
            if old not in services.recipe_sources(structure.recipe):
                continue
            recipe, description = services.rename_recipe_source(
                structure.recipe, structure.description, old, new
            )
            command = ChangeProperties(
                f"{structure.name} reads {new}",
                {"name": structure.name, "recipe": structure.recipe, "description": structure.description},
                {"name": structure.name, "recipe": recipe, "description": description},
            )
            command.redo(self.structures)
            commands.append(command)
        return commands

    def accept_auto_contours(self, names: list[str], label: str) -> None:
        """Mark auto-contours awaiting review as reviewed and kept, as one undo step."""
        commands: list[Command] = []
        for name in names:
            command = ChangeProperties(
                f"Accept {name}",
                {"name": name, "awaiting_review": True},
                {"name": name, "awaiting_review": False},
            )
            command.redo(self.structures)
            commands.append(command)
        if commands:
            self.history.push(commands[0] if len(commands) == 1 else Macro(label, commands))

    def set_visible(self, name: str, visible: bool) -> None:
        """Show or hide a structure (display state: not an undo step)."""
        structure = self.structures[name]
        if structure.visible != visible:
            structure.visible = visible
            self.structures.notify(structure)

    def set_locked(self, name: str, locked: bool) -> None:
        """Lock or unlock a structure. No undo step (undo never unlocks), but sessions keep it."""
        structure = self.structures[name]
        if structure.locked != locked:
            structure.locked = locked
            self.history.touch()
            self.structures.notify(structure)

    def check_unlocked(self, names, action: str = "edit") -> None:
        """Raise `Locked` for the first locked structure of `names` ("GTV is locked: unlock it
        to edit")."""
        for name in names:
            if name in self.structures and self.structures[name].locked:
                raise Locked(name, action)

    # -- sessions ------------------------------------------------------------------------------

    def to_session(self, view: dict) -> Session:
        return Session(
            self.reference,
            self.structures,
            [self.history.to_plain()],
            view,
            interpolated=dict(self.interpolated),
            drawn_in=dict(self.drawn_in),
        )

    @classmethod
    def from_session(cls, session: Session, volume: Volume) -> Case:
        """The case of a session; a history it cannot rebuild (damaged, or with steps of a newer
        Delineo) is left out, with a warning added to `session.warnings`."""
        case = cls(volume, session.structures, session.image)
        case.interpolated = dict(session.interpolated)
        case.drawn_in = dict(session.drawn_in)
        if session.history:
            try:
                case.history.restore(session.history[0])
            except (KeyError, ValueError, TypeError, AttributeError, GeometryError) as error:
                case.history.clear()
                session.warnings.append(f"the undo history could not be rebuilt and was left out ({error})")
        return case


class Stroke:
    """A brush drag: each dab is applied at once, the whole drag is one undo step on `finish`."""

    def __init__(self, case: Case, label: str, name: str):
        case.check_unlocked([name])
        self.case, self.label, self.name = case, label, name
        structure = case.structures[name]
        self._algorithm, self._contours = structure.algorithm, structure.contours
        self._dabs: list[tuple[Box, np.ndarray]] = []

    def apply(self, box: Box, values: np.ndarray) -> None:
        before = self.case.structures[self.name].mask.region(box)
        if np.array_equal(before, values):
            return
        self.case.structures.edit_mask(self.name, box, values)
        self._dabs.append((box, before))

    def finish(self) -> bool:
        """Push the stroke as one step; False when it changed nothing."""
        if not self._dabs:
            return False
        union = tuple(
            slice(min(b[a].start for b, _ in self._dabs), max(b[a].stop for b, _ in self._dabs))
            for a in range(3)
        )
        after = self.case.structures[self.name].mask.region(union)
        before = after.copy()
        for box, values in reversed(self._dabs):
            before[
                tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union, strict=True))
            ] = values
        self._dabs.clear()
        if np.array_equal(before, after):
            return False
        edit = MaskEdit(self.label, self.name, union, before, after, self._algorithm, self._contours)
        self.case._push_hand_edit(self.label, edit)
        return True
