"""TG-263 standard structure names: the table in resources, and display defaults for a name."""

from __future__ import annotations

import hashlib
import json
from functools import cache

from planning.structures import RoiType
from resources import resource

_TARGET_PREFIXES = (("PTV", RoiType.PTV), ("CTV", RoiType.CTV), ("GTV", RoiType.GTV), ("ITV", RoiType.CTV))


@cache
def standard_structures() -> dict[str, dict]:
    """TG-263 name → {"type": RoiType, "color": (r, g, b)} from resources/structures/tg263.json."""
    table = json.loads(resource("structures", "tg263.json").read_text(encoding="utf-8"))
    return {
        entry["name"]: {"type": RoiType(entry["type"]), "color": tuple(entry["color"])}
        for entry in table["structures"]
    }


def style_for(name: str) -> tuple[tuple[int, int, int], RoiType]:
    """Usual colour and RT ROI interpreted type for a structure name.

    TG-263 names take the table's values; target names (PTV…, CTV…, GTV…) get their type;
    anything else is an ORGAN with a stable colour derived from the name.
    """
    standard = standard_structures()
    if name in standard:
        return standard[name]["color"], standard[name]["type"]
    upper = name.upper()
    for prefix, roi_type in _TARGET_PREFIXES:
        if upper.startswith(prefix):
            base = standard.get(prefix)
            return (base["color"] if base else (255, 0, 0)), roi_type
    if upper in ("BODY", "EXTERNAL", "SKIN", "OUTLINE"):
        return (0, 255, 0), RoiType.EXTERNAL
    digest = hashlib.sha256(name.encode()).digest()
    return (64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192), RoiType.ORGAN
