"""Structure-set comparison report: pairing, CSV and HTML."""

import csv
import math

import numpy as np
import pytest

from planning.compare_report import _figures, compare_sets, match_names, render_html, summary, write_csv
from planning.geometry import Grid
from planning.structures import StructureSet

GRID = Grid((20, 40, 40), (1.0, 1.0, 2.0))


def label_set(shift: int, names: dict[int, str]) -> StructureSet:
    labels = np.zeros(GRID.shape, np.uint8)
    labels[5:15, 10:25, 10 + shift : 25 + shift] = 1
    labels[5:10, 28:35, 28:35] = 2
    if 3 in names:
        labels[16:18, 2:5, 2:5] = 3
    return StructureSet.from_label_map(GRID, labels, names)


def test_pairs_by_name_and_reports_unmatched():
    match = match_names(["Liver", "Spinal Cord", "GTV"], ["spinal_cord", "Liver", "Heart"])
    assert match.pairs == [("Liver", "Liver"), ("Spinal Cord", "spinal_cord")]
    assert match.only_reference == ["GTV"] and match.only_test == ["Heart"]
    assert match.same_names == []


def test_report_values_csv_and_html(tmp_path):
    reference = label_set(0, {1: "Liver", 2: "Kidney_L", 3: "GTV"})
    test = label_set(3, {1: "liver", 2: "Kidney_L"})
    result = compare_sets(reference, test, tolerance_mm=1.0, reference_label="expert", test_label="model")
    by_name = {a: m for a, _, m in result.rows}
    assert by_name["Kidney_L"].dice == 1.0 and by_name["Kidney_L"].hausdorff_mm == 0.0
    assert by_name["Liver"].dice == pytest.approx(2 * 12 / 30)
    assert by_name["Liver"].hausdorff_mm == pytest.approx(3.0)
    assert result.only_reference == ["GTV"]
    write_csv(result, tmp_path / "table.csv")
    rows = list(csv.DictReader(open(tmp_path / "table.csv", encoding="utf-8")))
    # the GTV the model missed has its row (it was left out of the CSV, and of the mean unsaid)
    assert [r["reference_structure"] for r in rows] == ["Liver", "Kidney_L", "GTV"]
    assert float(rows[0]["dice"]) == pytest.approx(0.8) and rows[0]["test_structure"] == "liver"
    assert rows[2]["dice"] == "" and rows[2]["note"] == "only in the reference: not compared"
    page = render_html(result)
    assert page.count("data:image/png;base64,") == 2
    assert "Only in reference: GTV" in page and "Liver ↔ liver" in page and "0.800" in page
    assert "mean Dice 0.900; only in the reference (not compared, not in the mean): GTV" in page


def test_empty_structure_shows_inf_not_nan(tmp_path):
    reference = label_set(0, {1: "Liver", 2: "Kidney_L"})
    test = label_set(0, {1: "Liver", 2: "Kidney_L"})
    test.set_mask("Kidney_L", type(test["Kidney_L"].mask)(GRID))
    result = compare_sets(reference, test)
    kidney = {a: m for a, _, m in result.rows}["Kidney_L"]
    assert math.isinf(kidney.hd95_mm) and kidney.dice == 0.0
    assert "nan" not in render_html(result).lower()
    # the distance plot says so; a bar of length 0 would read as perfect agreement
    overlap, distances = _figures(result)
    assert [t.get_text() for t in distances.axes[0].texts] == [" HD95 ∞: empty", " MSD ∞: empty"]
    assert len(overlap.axes[0].texts) == 0


def test_chosen_names_are_compared_and_unknown_ones_refused():
    from planning.errors import DelineoError

    reference = label_set(0, {1: "Liver", 2: "Kidney_L", 3: "GTV"})
    test = label_set(3, {1: "liver", 2: "Kidney_L"})
    assert [a for a, _, _ in compare_sets(reference, test, names=["LIVER"]).rows] == ["Liver"]
    with pytest.raises(DelineoError, match=r"no structure pair named 'GTV', 'Heart'; the pairs are Liver ↔"):
        compare_sets(reference, test, names=["Liver", "GTV", "Heart"])  # GTV is only in the reference


def test_sets_without_a_common_name_are_refused():
    """An empty report is never the answer: an empty test set, or names that never match."""
    from planning.errors import DelineoError

    reference = label_set(0, {1: "Liver", 2: "Kidney_L"})
    with pytest.raises(DelineoError, match=r"reference: Liver, Kidney_L; test: none \(empty\)"):
        compare_sets(reference, StructureSet(GRID))
    hint = r"nothing to compare \(structures named differently can be paired explicitly\)"
    with pytest.raises(DelineoError, match=hint + "; reference: Liver, Kidney_L; test: Heart"):
        compare_sets(reference, label_set(0, {1: "Heart"}))


def test_names_of_one_set_alike_but_for_punctuation_are_not_paired_by_guess(tmp_path):
    """PTV-1 and PTV_1 in one set: which the other set's ptv1 means is not guessed, and the
    summary, the CSV and the page say so, naming both."""
    match = match_names(["PTV-1", "PTV_1", "Liver"], ["ptv1", "liver"], test_label="model")
    assert match.pairs == [("Liver", "liver")]
    assert match.only_reference == ["PTV-1", "PTV_1"] and match.only_test == ["ptv1"]
    (same,) = match.same_names
    assert same.side == 0 and same.names == ("PTV-1", "PTV_1")
    assert "PTV-1 and PTV_1 are one name ignoring case and punctuation" in same.text
    assert "model's ptv1 could be any of them and was paired with none" in same.text
    # an exact name still pairs; the other of the two is said not compared
    exact = match_names(["PTV-1", "PTV_1"], ["PTV-1"]).same_names[0].text
    assert "PTV-1 was paired with test's PTV-1, PTV_1 was not compared" in exact

    reference = label_set(0, {1: "Liver", 2: "PTV-1", 3: "PTV_1"})
    test = label_set(0, {1: "liver", 2: "ptv1"})
    result = compare_sets(reference, test)
    assert [a for a, _, _ in result.rows] == ["Liver"]
    assert "warning: reference: PTV-1 and PTV_1 are one name" in summary(result)
    write_csv(result, tmp_path / "table.csv")
    notes = {
        r["reference_structure"] or r["test_structure"]: r["note"]
        for r in csv.DictReader(open(tmp_path / "table.csv", encoding="utf-8"))
    }
    assert notes["PTV-1"].startswith("only in the reference: not compared; reference: PTV-1 and PTV_1 are")
    assert "PTV_1" in notes["PTV_1"] and "could be any of them" in notes["ptv1"]
    assert notes["Liver"] == ""
    assert "<b>Names alike.</b> reference: PTV-1 and PTV_1" in render_html(result)


def test_explicit_pairs_come_first_and_are_checked():
    from planning.errors import DelineoError

    match = match_names(
        ["Lt Lung", "Liver", "A_Aorta"], ["liver", "Aorta", "Lung_L"], explicit=[("Lt Lung", "Lung_L")]
    )
    assert match.pairs == [("Lt Lung", "Lung_L"), ("Liver", "liver")]
    assert match.explicit == [("Lt Lung", "Lung_L")]
    assert match.only_reference == ["A_Aorta"] and match.only_test == ["Aorta"]
    # an explicit pair takes a name before its exact namesake can
    taken = match_names(["Liver"], ["Liver", "Liver_auto"], explicit=[("Liver", "Liver_auto")])
    assert taken.pairs == [("Liver", "Liver_auto")] and taken.only_test == ["Liver"]
    # it resolves names alike but for punctuation
    chosen = match_names(["PTV-1", "PTV_1"], ["ptv1"], explicit=[("PTV_1", "ptv1")])
    assert chosen.pairs == [("PTV_1", "ptv1")] and chosen.only_reference == ["PTV-1"]
    with pytest.raises(DelineoError, match="the test set has no structure 'Lung_R'"):
        match_names(["Lt Lung"], ["Lung_L"], explicit=[("Lt Lung", "Lung_R")])
    with pytest.raises(
        DelineoError, match="test's 'Lung_L' is in two explicit pairs: Lt Lung=Lung_L and Lung=Lung_L"
    ):
        match_names(["Lt Lung", "Lung"], ["Lung_L"], explicit=[("Lt Lung", "Lung_L"), ("Lung", "Lung_L")])
