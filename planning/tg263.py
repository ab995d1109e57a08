"""TG-263 standard structure names: the table in resources, display defaults, and a name check.

AAPM Task Group 263 (Mayo et al. 2018) standardised structure names so that plans, scripts and
registries agree: ``Parotid_L`` rather than ``Lt Parotid``, ``SpinalCord`` rather than ``cord``,
at most 16 characters, laterality last. `check_name` says whether a name follows it and, if not,
which standard names were probably meant.

Besides the names in the table, TG-263 builds names by rules, which `check_name` accepts:
targets (``PTV``, ``CTVn``, ``GTVp1``, ``PTV_7000``, ``PTV_High``…), planning organ-at-risk
volumes (``SpinalCord_PRV05``, ``Parotid_L_PRV03``), partial and custom qualifiers (``Lung_L~``,
``Brain^Boost``), derived structures (``Lungs-GTV``) and non-dosimetric helpers starting with
``z`` or ``_``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache

from planning.structures import RoiType
from resources import resource

#: TG-263's limit: longer names are truncated by some planning systems.
MAX_LENGTH = 16

_TARGET_PREFIXES = (
    ("PTV", RoiType.PTV),
    ("CTV", RoiType.CTV),
    ("GTV", RoiType.GTV),
    ("ITV", RoiType.CTV),
    ("IGTV", RoiType.GTV),  # internal GTV (motion-encompassing)
    ("ICTV", RoiType.CTV),
    ("IPTV", RoiType.PTV),
)
#: Helper structures no planning system must take for a target or an organ: rings ("PTV_Ring",
#: "Ring_PTV2") and TG-263's non-dosimetric structures (a name starting with "z" or "_").
_HELPER = re.compile(r"(?-i:^[z_])|(^|[_\- ])ring($|[_\- \d])", re.IGNORECASE)
_TARGET = re.compile(r"^(PTV|CTV|GTV|ITV|IGTV|ICTV|IPTV)(p|n|sb|par|v|vas)?\d*(_[A-Za-z0-9.+-]+)*!?$")
_PRV = re.compile(r"^(?P<base>.+?)(?P<side1>_[LR])?_PRV\d{0,2}(?P<side2>_[LR])?$")
_QUALIFIED = re.compile(r"^(?P<base>[^~^]+)~?(\^[A-Za-z0-9_+-]+)?$")
_ORDINALS = {
    word: str(n)
    for n, word in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split(), start=1
    )
}
_SIDES = {"l": "L", "lt": "L", "left": "L", "r": "R", "rt": "R", "right": "R"}
#: Words clinicians and models use for what TG-263 describes otherwise.
_SYNONYMS = {
    "cord": "spinal cord",
    "ivc": "inferior vena cava",
    "svc": "superior vena cava",
    "chiasm": "optic chiasm",
    "mandible": "mandible bone",
    "vertebrae": "vertebra",
    "vertebral": "vertebra",
    "adrenal": "adrenal gland",
    "submandibular": "submandibular gland",
    "lacrimal": "lacrimal gland",
    "thyroid": "thyroid gland",
    "bowelbag": "bowel bag",
    "smallbowel": "small bowel",
    "largebowel": "large bowel",
    "femoral": "femur",
    "urinary": "",
    "and": "",
    "of": "",
    "the": "",
}


#: Label names (as TotalSegmentator and the nnU-Net datasets spell them) → TG-263.
_LABEL_ALIASES = {
    "urinary_bladder": "Bladder",
    "spinal_cord": "SpinalCord",
    "spinalcord": "SpinalCord",
    "brainstem": "Brainstem",
    "brain_stem": "Brainstem",
    "mandible": "Bone_Mandible",
    "lungs": "Lungs",
    "body": "External",
    "small_bowel": "Bowel",
}


def standard_name(label: str) -> str | None:
    """The TG-263 name a label map's or a model's label means, None when it means none:
    "kidney_left" → "Kidney_L", "liver" → "Liver", "urinary_bladder" → "Bladder"."""
    key = label.strip().lower().replace(" ", "_")
    if key in _LABEL_ALIASES:
        return _LABEL_ALIASES[key]
    key = re.sub(r"_left$", "_l", re.sub(r"_right$", "_r", key))
    return next((standard for standard in standard_structures() if standard.lower() == key), None)


@cache
def standard_structures() -> dict[str, dict]:
    """TG-263 name → {"type": RoiType, "color": (r, g, b), "description", "category", "region"}."""
    table = json.loads(resource("structures", "tg263.json").read_text(encoding="utf-8"))
    return {
        entry["name"]: {
            "type": RoiType(entry["type"]),
            "color": tuple(entry["color"]),
            "description": entry.get("description", ""),
            "category": entry.get("category", ""),
            "region": entry.get("region", ""),
        }
        for entry in table["structures"]
    }


def style_for(name: str) -> tuple[tuple[int, int, int], RoiType]:
    """Usual colour and RT ROI interpreted type for a structure name.

    TG-263 names take the table's values (also with TG-263 qualifiers: ``Lung_L~``,
    ``SpinalCord_PRV05``), as do labels that mean one (``liver``, ``kidney_left``:
    `standard_name`); helpers (rings, ``z…`` and ``_…`` names) are CONTROL; target names (PTV…,
    CTV…, GTV…, ITV, IGTV…) get their type; anything else is an ORGAN with a stable colour
    derived from the name.
    """
    return _implied_style(name) or (_hashed_color(name), RoiType.ORGAN)


def implied_type(name: str) -> RoiType | None:
    """The RT ROI interpreted type a name implies (`style_for`'s) when it implies one: a TG-263
    structure's, a target's, CONTROL for a ring or helper, EXTERNAL for a body outline; None for a
    name TG-263 does not know ("Tumor Bed": its type is the author's to say)."""
    style = _implied_style(name)
    return style[1] if style is not None else None


def _implied_style(name: str) -> tuple[tuple[int, int, int], RoiType] | None:
    """`style_for` of a name that says what it is; None for one that does not."""
    standard = standard_structures()
    base = _standard_base(name) or standard_name(name)
    if base is not None:
        return standard[base]["color"], standard[base]["type"]
    upper = name.upper()
    for prefix, roi_type in _TARGET_PREFIXES:
        if upper.startswith(prefix):
            entry = standard.get(prefix)
            color = entry["color"] if entry else (255, 0, 0)
            return color, RoiType.CONTROL if _HELPER.search(name) else roi_type
    if _HELPER.search(name):
        return _hashed_color(name), RoiType.CONTROL
    if upper in ("BODY", "EXTERNAL", "SKIN", "OUTLINE"):
        return (0, 255, 0), RoiType.EXTERNAL
    return None


def _hashed_color(name: str) -> tuple[int, int, int]:
    """A stable colour for a name the table does not know, bright enough on a grey image."""
    digest = hashlib.sha256(name.encode()).digest()
    return 64 + digest[0] % 192, 64 + digest[1] % 192, 64 + digest[2] % 192


# -- telling colours apart ---------------------------------------------------------------------

#: CIE76 ΔE under which two structure colours are hard to tell apart on a CT.
MIN_DELTA_E = 20.0
#: Colours to pick from when a new structure's usual colour is too close to one in the case:
#: bright enough on a grey image, each at least 20 ΔE from the others.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (100, 100, 255),
)


def lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour given as 0–255 integers."""
    return _lab(tuple(rgb))


@lru_cache(maxsize=65536)
def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """`lab`, remembered: choosing a colour distinct from 100+ others converts each of them for
    each of 234 candidates."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    r, g, b = (linear(c) for c in rgb)
    x = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047)
    y = f(0.2126 * r + 0.7152 * g + 0.0722 * b)
    z = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)
    return 116 * y - 16, 500 * (x - y), 200 * (y - z)


def delta_e(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
    """Perceptual distance of two colours (CIE76 ΔE: about 2 is just noticeable)."""
    return math.dist(lab(first), lab(second))


def distinct_color(color: tuple[int, int, int], used, min_delta: float = MIN_DELTA_E) -> tuple[int, int, int]:
    """`color` if it is at least `min_delta` from every colour in `used`, else the palette colour
    nearest to it that is twice that far from them (CIE76 underrates how alike blues look), or
    failing that once as far, or failing that (a hundred structures) the colour of the palette
    or of a 6 × 6 × 6 RGB cube farthest from them, so that colours do not repeat."""
    used = [lab(c) for c in used]

    def clearance(candidate) -> float:
        point = lab(candidate)
        return min((math.dist(point, other) for other in used), default=math.inf)

    if clearance(color) >= min_delta:
        return tuple(color)
    for needed in (2 * min_delta, min_delta):
        free = [c for c in PALETTE if clearance(c) >= needed]
        if free:
            return min(free, key=lambda c: delta_e(c, color))
    return max(PALETTE + _RGB_CUBE, key=clearance)


#: Colours beyond the palette, for sets with more structures than it can tell apart.
_RGB_CUBE = tuple((r, g, b) for r in range(0, 256, 51) for g in range(0, 256, 51) for b in range(0, 256, 51))


def _standard_base(name: str) -> str | None:
    """The table name `name` is built on (itself, or with ~ / ^ / _PRV qualifiers), or None."""
    standard = standard_structures()
    if name in standard:
        return name
    prv = _PRV.match(name)
    if prv:
        base = prv["base"] + (prv["side1"] or prv["side2"] or "")
        if base in standard:
            return base
    qualified = _QUALIFIED.match(name)
    if qualified and qualified["base"] in standard and qualified["base"] != name:
        return qualified["base"]
    return None


# -- the name check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NameCheck:
    """What TG-263 says about a structure name.

    Attributes:
        name: the name checked.
        standard: whether it follows TG-263.
        kind: "anatomy", "target", "PRV", "derived", "helper" or "non-standard".
        problems: what is wrong, in words (empty when standard).
        suggestions: standard names that were probably meant, best first.
    """

    name: str
    standard: bool
    kind: str
    problems: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line for a user: '' when the name is standard."""
        if self.standard:
            return ""
        text = f"{self.name!r} is not a TG-263 name: {'; '.join(self.problems)}"
        if self.suggestions:
            text += f"; did you mean {', '.join(self.suggestions)}?"
        return text


def check_name(name: str) -> NameCheck:
    """Whether `name` follows TG-263, and standard names it was probably meant to be."""
    problems = []
    if len(name) > MAX_LENGTH:
        problems.append(f"longer than {MAX_LENGTH} characters (some planning systems truncate it)")
    if any(c.isspace() for c in name):
        problems.append("contains spaces")
    kind = _kind(name)
    if kind != "non-standard" and not problems:
        return NameCheck(name, True, kind)
    if kind == "non-standard":
        problems.insert(0, "not in the TG-263 table and not built by its rules")
    return NameCheck(name, False, kind, tuple(problems), tuple(suggest(name)))


def _kind(name: str) -> str:
    if name.startswith(("z", "_")) and len(name) > 1:
        return "helper"
    if _TARGET.match(name):
        return "target"
    base = _standard_base(name)
    if base is not None:
        return "PRV" if "_PRV" in name else "anatomy"
    if "-" in name:
        first, _, second = name.partition("-")
        if _standard_base(first) is not None and (
            _TARGET.match(second) or _standard_base(second) is not None
        ):
            return "derived"
    return "non-standard"


def suggest(name: str, count: int = 3) -> list[str]:
    """Standard names closest to `name`, best first (by words, laterality and spelling)."""
    standard = standard_structures()
    by_upper = {n.upper(): n for n in standard}
    if name.upper() in by_upper:
        return [by_upper[name.upper()]]
    target = _target_suggestion(name)
    if target:
        return [target]
    words, side = _words(name)
    if not words:
        return []
    scored = []
    for entry, (entry_words, entry_side) in _index().items():
        if side != entry_side:
            continue
        shared = len(words & entry_words)
        if not shared:
            continue
        overlap = shared / len(words | entry_words)
        spelling = difflib.SequenceMatcher(
            None, " ".join(sorted(words)), " ".join(sorted(entry_words))
        ).ratio()
        scored.append((overlap + 0.25 * spelling + (0.5 if words <= entry_words else 0.0), entry))
    if not scored:
        close = difflib.get_close_matches(name, list(standard), n=count, cutoff=0.6)
        return close
    scored.sort(key=lambda item: (-item[0], len(item[1])))
    best = scored[0][0]
    return [entry for score, entry in scored[:count] if score >= 0.5 * best and score >= 0.35]


def _target_suggestion(name: str) -> str | None:
    """'ptv 70' → 'PTV_70', 'gtv-primary' → 'GTVp'."""
    match = re.match(r"^\s*(ptv|ctv|gtv|itv)[\s_-]*(.*)$", name, re.IGNORECASE)
    if not match:
        return None
    kind, rest = match[1].upper(), match[2]
    if rest.lower() in ("primary", "p"):
        return f"{kind}p"
    if rest.lower() in ("nodal", "node", "nodes", "n"):
        return f"{kind}n"
    rest = re.sub(r"[^A-Za-z0-9.+-]+", "_", rest).strip("_")
    candidate = f"{kind}_{rest}" if rest else kind
    return candidate if _TARGET.match(candidate) and len(candidate) <= MAX_LENGTH else None


@cache
def _index() -> dict[str, tuple[frozenset[str], str]]:
    """Each standard name's words (from the name and its description) and laterality."""
    index = {}
    for name, entry in standard_structures().items():
        words, side = _words(name)
        description_words, description_side = _words(entry["description"])
        index[name] = (frozenset(words | description_words), side or description_side)
    return index


def _words(text: str) -> tuple[set[str], str]:
    """Lower-case word stems of a name or description, and its side ("L", "R" or "")."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # SpinalCord → Spinal Cord
    text = re.sub(r"([A-Za-z]{2,})(\d)", r"\1 \2", text)  # Rib06 → Rib 06 (T12 stays)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", text.lower()) if t]
    side = ""
    words: set[str] = set()
    for token in tokens:
        if token in _SIDES:
            side = _SIDES[token]
            continue
        token = _ORDINALS.get(token, token)
        expanded = _SYNONYMS.get(token, token)
        for word in expanded.split():
            words.add(_stem(word))
    return words, side


def _stem(word: str) -> str:
    if word.isdigit():
        return str(int(word))
    for ending, replacement in (("ae", "a"), ("ies", "y"), ("es", "e"), ("s", "")):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            return word[: -len(ending)] + replacement
    return word
