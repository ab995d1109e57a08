"""TG-263 table, display defaults and the name check with suggestions."""

import pytest

from planning.structures import RoiType
from planning.tg263 import MAX_LENGTH, check_name, standard_structures, style_for, suggest


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
