"""Derived structures: a structure made from others by margins and Booleans, which remembers how.

A recipe is a JSON-able dict (an expression tree); an operand is a structure name or a nested
recipe:

    {"op": "expand", "source": "CTV", "margins": {"right": 5, ...} | 5, "within": "BODY"}
    {"op": "shrink", "source": "BODY", "margins": 5}
    {"op": "ring", "source": "PTV", "inner_mm": 2, "outer_mm": 20, "within": "BODY"}
    {"op": "union" | "intersect" | "xor", "sources": ["A", "B", ...]}
    {"op": "subtract", "source": "PTV", "minus": ["Rectum", ...]}   (or "sources": [first, *minus])
    {"op": "fill_holes", "source": "A", "per_slice": false}
    {"op": "remove_islands", "source": "A", "min_cc": 0.1}
    {"op": "keep_largest", "source": "A", "count": 1}

Any operation may have a "within": its result is kept inside that structure (the body).

The recipe is stored in `Structure.recipe` and summarised in `Structure.description`, followed
by the compact JSON, so the RTSTRUCT's ROI Description carries it and a structure read back is
derived again (`restore_recipes`). When a source changes, `stale` lists the derived structures
built from an older version of it and `rebuild` recomputes them and those built from them. A
derived structure edited by hand keeps no recipe (`edited_description`): it is the person's now.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping

from planning import booleans, margins
from planning.errors import DelineoError
from planning.recipe_check import check_recipe, cycles
from planning.structures import GenerationAlgorithm, Mask, RoiType, Structure, StructureSet

Progress = Callable[[str, float, float], None]

#: Marks the JSON recipe inside an ROI description.
RECIPE_TAG = "delineo-recipe:"
#: RT ROI Description is ST: at most 1024 characters.
_DESCRIPTION_LIMIT = 1024

_SYMBOLS = {"union": " ∪ ", "intersect": " ∩ ", "xor": " ⊕ "}


def evaluate(
    recipe: dict | str,
    structures: Mapping[str, Structure | Mask],
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Mask:
    """The mask a recipe (or a structure name) describes, from the named structures."""
    if isinstance(recipe, str):
        if recipe not in structures:
            raise KeyError(f"recipe source {recipe!r} is not among the structures ({', '.join(structures)})")
        found = structures[recipe]
        return found.mask if isinstance(found, Structure) else found
    op = recipe.get("op")

    def sub(operand):
        return evaluate(operand, structures, on_progress=on_progress, cancel=cancel)

    within = sub(recipe["within"]) if recipe.get("within") is not None else None
    if op == "expand":
        return margins.expand(
            sub(recipe["source"]), _margins(recipe), within=within, on_progress=on_progress, cancel=cancel
        )
    if op == "ring":
        return margins.ring(
            sub(recipe["source"]),
            float(recipe["inner_mm"]),
            float(recipe["outer_mm"]),
            within=within,
            on_progress=on_progress,
            cancel=cancel,
        )
    result = _combine(op, recipe, sub, on_progress, cancel)
    return result if within is None else booleans.intersect(result, within)


def _combine(op: str, recipe: dict, sub: Callable[[object], Mask], on_progress, cancel) -> Mask:
    """The mask of a recipe other than expand and ring, before its "within" limit."""
    if op == "shrink":
        return margins.shrink(sub(recipe["source"]), _margins(recipe), on_progress=on_progress, cancel=cancel)
    if op in ("union", "intersect", "xor"):
        masks = [sub(s) for s in recipe["sources"]]
        if op == "xor":
            result = masks[0]
            for other in masks[1:]:
                result = booleans.xor(result, other)
            return result
        return getattr(booleans, op)(*masks)
    if op == "subtract":
        if "sources" in recipe:  # the GUI's form: first minus the others
            first, *others = recipe["sources"]
            return booleans.subtract(sub(first), *[sub(s) for s in others])
        return booleans.subtract(sub(recipe["source"]), *[sub(s) for s in recipe["minus"]])
    if op == "fill_holes":
        return booleans.fill_holes(sub(recipe["source"]), per_slice=bool(recipe.get("per_slice", False)))
    if op == "remove_islands":
        return booleans.remove_islands(sub(recipe["source"]), float(recipe["min_cc"]))
    if op == "keep_largest":
        return booleans.keep_largest(sub(recipe["source"]), int(recipe.get("count", 1)))
    raise ValueError(f"unknown recipe operation {op!r} in {recipe}")


def sources(recipe: dict | str) -> set[str]:
    """Names of the structures a recipe reads."""
    if isinstance(recipe, str):
        return {recipe}
    names: set[str] = set()
    for key in ("source", "within"):
        if recipe.get(key) is not None:
            names |= sources(recipe[key])
    for key in ("sources", "minus"):
        for operand in recipe.get(key, []):
            names |= sources(operand)
    return names


def renamed(recipe: dict | str, old: str, new: str) -> dict | str:
    """`recipe` reading structure `new` wherever it read `old` (a source renamed), its
    fingerprints (``built_from``) kept under the new name."""
    return renamed_all(recipe, {old: new})


def renamed_all(recipe: dict | str, names: Mapping[str, str]) -> dict | str:
    """`recipe` reading each structure under its new name in `names` (old → new, all at once:
    {"A": "B", "B": "C"} swaps none into another), fingerprints kept under the new names."""
    if isinstance(recipe, str):
        return names.get(recipe, recipe)
    out = dict(recipe)
    for key in ("source", "within"):
        if out.get(key) is not None:
            out[key] = renamed_all(out[key], names)
    for key in ("sources", "minus"):
        if key in out:
            out[key] = [renamed_all(operand, names) for operand in out[key]]
    if "built_from" in out:
        out["built_from"] = {names.get(name, name): digest for name, digest in out["built_from"].items()}
    return out


def describe(recipe: dict | str) -> str:
    """A short human summary, e.g. "(CTV + 5 mm) ∩ BODY" or "PTV − Rectum"."""
    if isinstance(recipe, str):
        return recipe
    op = recipe["op"]
    if op in ("expand", "shrink"):
        sign = "+" if op == "expand" else "−"
        text = f"({describe(recipe['source'])} {sign} {margins.Margins.of(recipe['margins']).describe()})"
    elif op == "ring":
        text = f"ring({describe(recipe['source'])}, {recipe['inner_mm']:g}–{recipe['outer_mm']:g} mm)"
    elif op in _SYMBOLS:
        text = "(" + _SYMBOLS[op].join(describe(s) for s in recipe["sources"]) + ")"
    elif op == "subtract":
        operands = recipe["sources"] if "sources" in recipe else [recipe["source"], *recipe["minus"]]
        text = "(" + " − ".join(describe(s) for s in operands) + ")"
    elif op == "fill_holes":
        text = f"fill holes({describe(recipe['source'])})"
    elif op == "remove_islands":
        text = f"remove islands < {recipe['min_cc']:g} cc({describe(recipe['source'])})"
    elif op == "keep_largest":
        text = f"largest {recipe.get('count', 1)}({describe(recipe['source'])})"
    else:
        text = op
    if recipe.get("within") is not None:
        text = f"({text} ∩ {describe(recipe['within'])})"
    return text


def description_for(recipe: dict) -> str:
    """The ROI description of a derived structure: summary, then the recipe as compact JSON; the
    recipe alone when both do not fit the ROI Description (1024 characters); the summary alone,
    cut, when the recipe does not fit either (`recipe_from_description` then finds none)."""
    summary = f"Derived: {_strip(describe(recipe))}"
    tagged = f"{RECIPE_TAG}{json.dumps(recipe, separators=(',', ':'), ensure_ascii=False)}"
    for description in (f"{summary} {tagged}", tagged):
        if len(description) <= _DESCRIPTION_LIMIT:
            return description
    return summary[:_DESCRIPTION_LIMIT]


def edited_description(recipe: dict) -> str:
    """The ROI description of a derived structure a person then edited: how it was made, without
    the recipe (read back, it is not derived again: a rebuild would undo the edit)."""
    bare = {k: v for k, v in recipe.items() if k != "built_from"}
    return f"Derived: {_strip(describe(bare))}, then edited by hand"[:_DESCRIPTION_LIMIT]


def without_recipe(description: str) -> str:
    """`description` without the recipe `description_for` put in it (its summary kept)."""
    at = description.find(RECIPE_TAG)
    return description if at < 0 else description[:at].rstrip()


def recipe_from_description(description: str) -> dict | None:
    """The recipe embedded in an ROI description by `description_for`, or None."""
    at = description.find(RECIPE_TAG)
    if at < 0:
        return None
    try:
        recipe = json.loads(description[at + len(RECIPE_TAG) :])
    except json.JSONDecodeError:
        return None
    return recipe if isinstance(recipe, dict) else None


def recipe_in_description(description: str) -> dict | None:
    """The recipe embedded in an ROI description by `description_for`, checked
    (`planning.recipe_check`); None when it holds none.

    Raises:
        ValueError: the recipe is damaged (its JSON cut short, as by a system keeping 64 or 1024
            characters; an unknown operation, a margin that is not a number of mm ≥ 0…), in words.
    """
    at = description.find(RECIPE_TAG)
    if at < 0:
        return None
    text = description[at + len(RECIPE_TAG) :]
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as error:
        at = f"character {error.pos + 1} of {len(text)}" if error.pos < len(text) else f"its end, {len(text)}"
        raise ValueError(f"its JSON is cut short or damaged ({error.msg}: {at})") from None
    check_recipe(recipe)
    return recipe


def restore_recipes(structure_set: StructureSet, file_name: str) -> list[str]:
    """Give the structures whose ROI description holds a recipe (`description_for`) that recipe
    again, as built from their sources as they are now (a structure set read back from RTSTRUCT
    `file_name` is as it was exported). Returns warnings naming derived structures whose sources
    are not in the set (those cannot be rebuilt until they are), and those whose recipe is
    damaged (`recipe_in_description`), with the fault: that recipe is left out, with its copy in
    the description, and the structure kept as read, no longer rebuilt from its sources."""
    table = _table(structure_set)
    warnings = []
    for structure in structure_set:
        try:
            recipe = recipe_in_description(structure.description)
        except ValueError as error:
            structure.description = without_recipe(structure.description)
            warnings.append(
                f"{structure.name}: the recipe in its ROI Description in {file_name} is damaged ({error}); "
                f"the recipe was left out: {structure.name} keeps its contours but is no longer rebuilt "
                "from its sources"
            )
            continue
        if recipe is None:
            continue
        recipe = {k: v for k, v in recipe.items() if k != "built_from"}
        missing = sorted(n for n in sources(recipe) if n not in table)
        if missing:
            warnings.append(
                f"{structure.name}: derived from {', '.join(missing)}, which this structure set does "
                "not hold; it cannot be rebuilt until they are added"
            )
            structure.recipe = {**recipe, "built_from": {}}
        else:
            structure.recipe = {**recipe, "built_from": fingerprints(table, sources(recipe))}
    return warnings + drop_recipes_in_cycles(structure_set, file_name)


def drop_recipes_in_cycles(structure_set: StructureSet, file_name: str) -> list[str]:
    """Leave out the recipes, read from `file_name`, of derived structures that read each other
    in a cycle (a CTV grown from the PTV grown from it; a recipe reading its own structure): none
    can be rebuilt before the others. Each structure keeps its geometry, and its description the
    summary. Returns a warning for each cycle, naming it ("CTV → PTV → CTV")."""
    reads = {s.name: sources(s.recipe) for s in structure_set if s.recipe and "op" in s.recipe}
    warnings = []
    for members, cycle in cycles(reads):
        for name in members:
            structure = structure_set[name]
            structure.recipe = None
            structure.description = without_recipe(structure.description)
        warnings.append(_cycle_warning(members, cycle, file_name))
    return warnings


def _cycle_warning(members: list[str], cycle: list[str], file_name: str) -> str:
    path = " → ".join(cycle)
    if len(members) == 1:
        name = members[0]
        return (
            f"the recipe of {name} in {file_name} reads {name} itself ({path}); it was left out: {name} "
            "keeps its contours but is no longer rebuilt from its sources"
        )
    names = _and(members)
    some = "a cycle" if len(cycle) == len(members) + 1 else "cycles, one of them"
    return (
        f"the recipes of {names} in {file_name} read each other in {some} ({path}: each built from the "
        f"one before it); they were left out: {names} keep their contours but are no longer rebuilt "
        "from their sources"
    )


def _and(names: list[str]) -> str:
    """Names joined: "A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def derive(
    recipe: dict,
    structures: Mapping[str, Structure | Mask] | StructureSet,
    *,
    name: str,
    within: Mask | None = None,
    roi_type: RoiType | str | None = None,
    color: tuple[int, int, int] | None = None,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Structure:
    """A new Structure built from `recipe`; `within` (a Mask) further limits it without being
    part of the recipe (use a "within" key to record the limit). A result named after one of its
    own sources ("Bone" = Bone + 3 mm) is a one-off edit: it keeps no recipe, which a rebuild
    would apply again and again (3 mm more each time)."""
    from planning.tg263 import style_for

    table = _table(structures)
    mask = evaluate(recipe, table, on_progress=on_progress, cancel=cancel)
    if within is not None:
        mask = booleans.intersect(mask, within)
    style_color, style_type = style_for(name)
    if name in sources(recipe):
        stored, description = None, f"Edited: {_strip(describe(recipe))}"[:_DESCRIPTION_LIMIT]
    else:
        stored = {**recipe, "built_from": fingerprints(table, sources(recipe))}
        description = description_for(recipe)
    return Structure(
        name,
        mask,
        color or style_color,
        roi_type or style_type,
        GenerationAlgorithm.AUTOMATIC,
        description=description,
        recipe=stored,
    )


def fingerprints(structures: Mapping[str, Structure | Mask], names) -> dict[str, str]:
    """A short digest of each named structure's geometry (to tell when a source changed)."""
    out = {}
    for name in sorted(names):
        found = structures[name]
        mask = found.mask if isinstance(found, Structure) else found
        digest = hashlib.sha1(repr(mask.offset).encode() + repr(mask.array.shape).encode())
        digest.update(mask.array.tobytes())
        out[name] = digest.hexdigest()[:16]
    return out


def stale(structure_set: StructureSet) -> list[str]:
    """Derived structures out of date, in the set's order: those whose sources have changed (or
    vanished) since they were built, and those built from them (a PTV grown from a CTV whose GTV
    was edited)."""
    return list(why_stale(structure_set))


def why_stale(structure_set: StructureSet) -> dict[str, str]:
    """The derived structures out of date (`stale`), in the set's order, each with why in words:
    "derived from GTV-1, which changed since", "…, which is no longer in the set", or "derived
    from CTV, which is out of date itself" for one built from another stale structure."""
    table = _table(structure_set)
    changed: dict[str, list[str]] = {}
    gone: dict[str, list[str]] = {}
    for structure in structure_set:
        recipe = structure.recipe
        if not recipe or "op" not in recipe:
            continue
        names = sorted(sources(recipe))
        built = recipe.get("built_from", {})
        now = fingerprints(table, [n for n in names if n in table])
        changed[structure.name] = [n for n in now if now[n] != built.get(n)]
        gone[structure.name] = [n for n in names if n not in table]
    out_of_date = set(_with_dependents(structure_set, [n for n in changed if changed[n] or gone[n]]))
    reasons = {}
    for structure in structure_set:
        if structure.name not in out_of_date:
            continue
        name = structure.name
        behind = sorted((sources(structure.recipe) & out_of_date) - set(changed[name]))
        clauses = [
            f"{', '.join(names)}, which {one if len(names) == 1 else many}"
            for names, one, many in (
                (changed[name], "changed since", "changed since"),
                (gone[name], "is no longer in the set", "are no longer in the set"),
                (behind, "is out of date itself", "are out of date themselves"),
            )
            if names
        ]
        reasons[name] = "derived from " + "; from ".join(clauses)
    return reasons


def rebuild(
    structure_set: StructureSet,
    names: list[str] | None = None,
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Recompute derived structures (default: the stale ones) and every derived structure built
    from them (a PTV grown from a rebuilt CTV), sources before dependents; returns the names
    rebuilt. A structure whose sources are missing raises KeyError naming them."""
    names = stale(structure_set) if names is None else list(names)
    order = rebuild_order(structure_set, names)
    for name in order:
        structure = structure_set[name]
        recipe = {k: v for k, v in structure.recipe.items() if k != "built_from"}
        table = _table(structure_set)
        mask = evaluate(recipe, table, on_progress=on_progress, cancel=cancel)
        structure_set.set_mask(name, mask)
        structure.recipe = {**recipe, "built_from": fingerprints(_table(structure_set), sources(recipe))}
        structure.description = description_for(recipe)
    return order


def rebuild_order(structure_set: StructureSet, names: list[str]) -> list[str]:
    """What rebuilding `names` must recompute, in order: those derived structures and every
    derived structure built from them, each after its sources. Refuses a cycle."""
    return _dependency_order(structure_set, _with_dependents(structure_set, names))


def _with_dependents(structure_set: StructureSet, names: list[str]) -> list[str]:
    """`names` and the derived structures that read any of them, directly or through others."""
    chosen = set(names)
    derived = {s.name: sources(s.recipe) for s in structure_set if s.recipe and "op" in s.recipe}
    grew = True
    while grew:
        added = {name for name, read in derived.items() if name not in chosen and read & chosen}
        chosen |= added
        grew = bool(added)
    return sorted(chosen)


def _dependency_order(structure_set: StructureSet, names: list[str]) -> list[str]:
    pending, order = set(names), []
    while pending:
        ready = [
            n
            for n in sorted(pending)
            if not (sources({k: v for k, v in structure_set[n].recipe.items()}) & (pending - {n}))
        ]
        if not ready:
            raise DelineoError(
                f"derived structures depend on each other in a cycle: {', '.join(sorted(pending))}"
            )
        order += ready
        pending -= set(ready)
    return order


def _table(structures) -> dict[str, Structure | Mask]:
    if isinstance(structures, StructureSet):
        return {s.name: s for s in structures}
    return dict(structures)


def _margins(recipe: dict) -> margins.Margins:
    return margins.Margins.of(recipe["margins"])


def _strip(text: str) -> str:
    """Drop one pair of outer parentheses."""
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text
