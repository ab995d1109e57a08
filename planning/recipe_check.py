"""Checked recipes of derived structures (`planning.derived`), as read from a session file or an
ROI description: `check_recipe` raises a `ValueError` saying in words what is wrong (an unknown
operation, a missing source, a margin that is not a number of mm ≥ 0) before anything evaluates,
describes or compares a recipe that would fail there. `cycles` finds the derived structures
whose recipes read each other in a cycle, none of which can be rebuilt before the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from planning.session_fields import entry, is_number, is_whole, shown

#: The margin names a recipe's "margins" object may hold (`planning.margins.Margins`).
_MARGIN_NAMES = ("right", "left", "anterior", "posterior", "superior", "inferior")
#: Operations reading one "source".
_ONE_SOURCE = ("expand", "shrink", "ring", "fill_holes", "remove_islands", "keep_largest")
#: Operations reading a list of "sources".
_MANY_SOURCES = ("union", "intersect", "xor")
OPERATIONS = (*_ONE_SOURCE, *_MANY_SOURCES, "subtract")


def check_recipe(recipe) -> None:
    """A ValueError naming the first fault of `recipe`, unless every operation in it is one
    `planning.derived.evaluate` can carry out with its operands, margins and numbers."""
    _check_operation(recipe, "the recipe")
    built_from = recipe.get("built_from", {})
    if not (isinstance(built_from, dict) and all(isinstance(v, str) for v in built_from.values())):
        raise ValueError(f"its record of the sources' versions is {shown(built_from)}, not texts by name")


def _check_operand(operand, where: str) -> None:
    if isinstance(operand, str):
        if not operand.strip():
            raise ValueError(f"{where} names no structure")
        return
    _check_operation(operand, where)


def _check_operation(recipe, where: str) -> None:
    if not isinstance(recipe, dict):
        raise ValueError(f"{where} is {shown(recipe)}, not a structure name or an operation")
    op = recipe.get("op")
    if op not in OPERATIONS:
        raise ValueError(f"{where} has the unknown operation {shown(op)} (known: {', '.join(OPERATIONS)})")
    where = f"{where} ({op})"
    if recipe.get("within") is not None:
        _check_operand(recipe["within"], f"{where}: its 'within'")
    if op in _ONE_SOURCE or (op == "subtract" and "sources" not in recipe):
        _check_operand(entry(recipe, "source", where), f"{where}: its source")
    if op in _MANY_SOURCES or (op == "subtract" and "sources" in recipe):
        _check_operands(entry(recipe, "sources", where), f"{where}: its sources")
    elif op == "subtract":
        _check_operands(entry(recipe, "minus", where), f"{where}: what it subtracts", empty=True)
    if op in ("expand", "shrink"):
        _check_margins(entry(recipe, "margins", where), where)
    elif op == "ring":
        inner, outer = (_number(entry(recipe, k, where), where, k) for k in ("inner_mm", "outer_mm"))
        if outer <= inner:
            raise ValueError(f"{where} has outer_mm {outer:g} ≤ inner_mm {inner:g}")
    elif op == "remove_islands":
        if _number(entry(recipe, "min_cc", where), where, "min_cc") < 0:
            raise ValueError(f"{where} has min_cc {recipe['min_cc']:g}, not ≥ 0")
    elif op == "keep_largest" and not (is_whole(recipe.get("count", 1)) and recipe.get("count", 1) >= 1):
        raise ValueError(f"{where} has count {shown(recipe['count'])}, not a whole number ≥ 1")
    elif op == "fill_holes" and not isinstance(recipe.get("per_slice", False), bool):
        raise ValueError(f"{where} has per_slice {shown(recipe['per_slice'])}, not true or false")


def _check_operands(operands, where: str, *, empty: bool = False) -> None:
    if not isinstance(operands, list) or not (operands or empty):
        raise ValueError(f"{where} are {shown(operands)}, not a list of structures")
    for operand in operands:
        _check_operand(operand, where)


def _number(value, where: str, what: str) -> float:
    if not is_number(value):
        raise ValueError(f"{where} has {what} {shown(value)}, not a finite number")
    return float(value)


def _check_margins(value, where: str) -> None:
    """Margins as `planning.margins.Margins.of` takes them: one number of mm, or an object of
    the six direction names."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_MARGIN_NAMES))
        if unknown:
            raise ValueError(
                f"{where} has margins for {', '.join(map(shown, unknown))}, no patient direction"
            )
        values = list(value.values())
    else:
        values = [value]
    if not all(is_number(v) and v >= 0 for v in values):
        raise ValueError(f"{where} has margins {shown(value)}, not finite numbers of mm ≥ 0")


def cycles(reads: Mapping[str, Iterable[str]]) -> list[tuple[list[str], list[str]]]:
    """The derived structures whose recipes read each other in a cycle. `reads` gives each derived
    structure, in the set's order, the names its recipe reads. For each group on cycles together:
    its members in that order, and the shortest cycle through the first, each built from the one
    before it: (["CTV", "PTV"], ["CTV", "PTV", "CTV"]) for a CTV and a PTV each grown from the
    other, (["PTV"], ["PTV", "PTV"]) for a recipe reading its own structure."""
    built_from = {name: _built_from(name, reads) for name in reads}
    groups, grouped = [], set()
    for name in reads:
        if name in grouped or name not in built_from[name]:
            continue
        members = [other for other in reads if other in built_from[name] and name in built_from[other]]
        grouped.update(members)
        groups.append((members, _shortest_cycle(name, members, reads)))
    return groups


def _built_from(name: str, reads: Mapping[str, Iterable[str]]) -> set[str]:
    """The structures `name` is built from, directly or through other derived structures."""
    found, pending = set(), list(reads[name])
    while pending:
        source = pending.pop()
        if source not in found:
            found.add(source)
            pending += reads.get(source, ())
    return found


def _shortest_cycle(first: str, members: list[str], reads: Mapping[str, Iterable[str]]) -> list[str]:
    """`first`, the members built from it one after another, and `first` again."""
    built_into = {name: [other for other in members if name in reads[other]] for name in members}
    previous: dict[str, str | None] = {first: None}
    frontier = [first]
    while frontier:
        following = []
        for name in frontier:
            for other in built_into[name]:
                if other == first:
                    path = [name]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [*reversed(path), first]
                if other not in previous:
                    previous[other] = name
                    following.append(other)
        frontier = following
    raise ValueError(f"{first} is on no cycle of {', '.join(members)}")
