"""TG-263 table, display defaults and the name check with suggestions."""

import itertools
import json

import pytest

from planning.structures import RoiType
from planning.tg263 import (
    MAX_LENGTH,
    MIN_DELTA_E,
    PALETTE,
    check_name,
    delta_e,
    distinct_color,
    lab,
    standard_structures,
    style_for,
    suggest,
)
from resources import resource


def test_table_holds_the_standard_names_with_types_and_colours():
    table = standard_structures()
    assert len(table) > 600
    for name, entry in table.items():
        assert 0 < len(name) <= MAX_LENGTH and " " not in name
        assert isinstance(entry["type"], RoiType)
        assert len(entry["color"]) == 3 and all(0 <= c <= 255 for c in entry["color"])
    for name in (
        "Parotid_L",
        "SpinalCord",
        "Brainstem",
        "Glnd_Submand_R",
        "VB_T12",
        "Rib06_L",
        "A_Aorta",
        "Body",
    ):
        assert name in table
    assert table["Body"]["type"] == RoiType.EXTERNAL and table["PTV"]["type"] == RoiType.PTV
    assert table["Parotid_L"]["color"] != table["Parotid_R"]["color"]


@pytest.mark.parametrize(
    "name, kind",
    [
        ("Parotid_L", "anatomy"),
        ("Lung_L~", "anatomy"),
        ("Brain^Boost", "anatomy"),
        ("SpinalCord_PRV05", "PRV"),
        ("Parotid_L_PRV03", "PRV"),
        ("PTV_7000", "target"),
        ("CTVn", "target"),
        ("GTVp1", "target"),
        ("PTV_High", "target"),
        ("Lungs-GTV", "anatomy"),
        ("Brainstem-PTV", "derived"),
        ("zPTV_opt", "helper"),
    ],
)
def test_standard_names_and_names_built_by_the_rules(name, kind):
    result = check_name(name)
    assert result.standard and result.kind == kind and result.message == ""


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Lt Parotid", "Parotid_L"),
        ("PAROTID_L", "Parotid_L"),
        ("spinal_cord", "SpinalCord"),
        ("cord", "SpinalCord"),
        ("vertebrae_T12", "VB_T12"),
        ("rib_left_6", "Rib06_L"),
        ("adrenal_gland_right", "Glnd_Adrenal_R"),
        ("inferior_vena_cava", "V_Venacava_I"),
        ("humerus_left", "Humerus_L"),
        ("BODY", "Body"),
        ("Right Kidney", "Kidney_R"),
        ("mandible", "Bone_Mandible"),
        ("ptv 70", "PTV_70"),
    ],
)
def test_non_standard_names_get_the_intended_standard_name_first(name, expected):
    result = check_name(name)
    assert not result.standard and result.suggestions[0] == expected
    assert name in result.message and expected in result.message


def test_problems_are_named():
    assert "longer than 16 characters" in check_name("Parotid_Left_Superficial_Lobe").message
    assert "contains spaces" in check_name("Lt Lung").message
    assert check_name("Xyzzy").suggestions == ()
    assert suggest("Liver") == ["Liver"]


def test_style_for_keeps_table_colours_and_guesses_the_rest():
    assert style_for("SpinalCord") == ((255, 255, 0), RoiType.ORGAN)
    assert style_for("SpinalCord_PRV05") == style_for("SpinalCord")
    assert style_for("PTVp_5400")[1] == RoiType.PTV and style_for("GTV-1")[1] == RoiType.GTV
    assert style_for("BODY")[1] == RoiType.EXTERNAL
    assert style_for("My structure") == style_for("My structure")  # stable


@pytest.mark.parametrize(
    "name, roi_type",
    [
        ("PTV_Ring", RoiType.CONTROL),  # was PTV: a planning system listed the ring as a target
        ("GTV-1_Ring", RoiType.CONTROL),
        ("Ring_PTV2", RoiType.CONTROL),
        ("zPTV_opt", RoiType.CONTROL),  # TG-263's non-dosimetric "z" structures
        ("_helper", RoiType.CONTROL),
        ("IGTV", RoiType.GTV),  # was ORGAN
        ("ICTV", RoiType.CTV),
        ("IPTV", RoiType.PTV),
        ("PTV_High", RoiType.PTV),
        ("Zygoma", RoiType.ORGAN),
        ("Ringer", RoiType.ORGAN),
    ],
)
def test_rings_and_helpers_are_control_structures_and_internal_targets_targets(name, roi_type):
    assert style_for(name)[1] == roi_type


def test_colours_too_close_to_one_in_the_case_are_replaced_by_a_distinct_palette_colour():
    # the walkthrough's pairs: a new PTV beside Lung_R, a rule-based External beside a file's GTV
    for new, existing in (((0, 128, 255), (66, 133, 244)), ((0, 255, 0), (0, 230, 0))):
        assert delta_e(new, existing) < MIN_DELTA_E
        chosen = distinct_color(new, [existing])
        assert chosen in PALETTE and delta_e(chosen, existing) >= 2 * MIN_DELTA_E  # clearly apart
        clear = [c for c in PALETTE if delta_e(c, existing) >= 2 * MIN_DELTA_E]
        assert chosen == min(clear, key=lambda c: delta_e(c, new))  # the nearest such one
    assert distinct_color((255, 255, 0), [(0, 128, 255)]) == (255, 255, 0)  # distinct: kept
    assert distinct_color((0, 128, 255), []) == (0, 128, 255)


def test_the_palette_colours_are_distinct_and_a_full_case_still_gets_one():
    assert all(delta_e(a, b) >= MIN_DELTA_E for a, b in itertools.combinations(PALETTE, 2))
    assert delta_e((0, 0, 0), (255, 255, 255)) == pytest.approx(100, abs=0.1)
    assert distinct_color((230, 20, 70), PALETTE) not in PALETTE  # none free: a colour not used yet


def test_a_hundred_new_structures_do_not_repeat_colours():
    """With the palette used up, the 20th to 130th new structures all came out crimson."""
    used = []
    for _ in range(130):
        used.append(distinct_color((220, 20, 60), used))
    assert len(set(used)) == 130


def test_the_head_and_neck_model_outputs_can_be_told_apart():
    manifest = json.loads(resource("models", "head_neck", "manifest.json").read_text(encoding="utf-8"))
    colours = {output["name"]: tuple(output["color"]) for output in manifest["outputs"]}
    for (first, a), (second, b) in itertools.combinations(colours.items(), 2):
        assert delta_e(a, b) >= MIN_DELTA_E, (first, second)
    # the PTVs are graded: lighter for the lower dose
    lightness = [lab(colours[name])[0] for name in ("PTV56", "PTV63", "PTV70")]
    assert lightness == sorted(lightness, reverse=True)
