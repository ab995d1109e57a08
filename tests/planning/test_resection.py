"""Virtual resection against analytic volumes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from planning.errors import GeometryError
from planning.geometry import Grid
from planning.margins import expand, sides_at_edges
from planning.resection import CutSheet, cut_inside, cut_with_sheet, resect_with_margin
from planning.structures import GenerationAlgorithm, Mask, Structure
from planning.surfaces.build import surfaces_from_label_map

GRID = Grid((100, 110, 110), (1.0, 1.0, 1.0), (-55.0, -55.0, -50.0))


def voxel_points() -> np.ndarray:
    z, y, x = np.indices(GRID.shape)
    return GRID.index_to_patient(np.stack([x, y, z], -1).reshape(-1, 3).astype(float)).reshape(*GRID.shape, 3)


POINTS = voxel_points()


def structure(name: str, inside: np.ndarray, color=(200, 120, 40)) -> Structure:
    return Structure(name, Mask.from_full(GRID, inside), color)


def box_below_plane_mm3(low, high, normal, d) -> float:
    """Exact volume of the box [low, high] ∩ {x : normal · x ≤ d} for a normal with positive
    components (inclusion–exclusion over the box corners)."""
    n = np.asarray(normal, float)
    size = np.asarray(high, float) - np.asarray(low, float)
    d = d - n @ np.asarray(low, float)
    total = 0.0
    for corner in itertools.product((0, 1), repeat=3):
        reach = d - n @ (np.array(corner) * size)
        total += (-1) ** sum(corner) * max(reach, 0.0) ** 3
    return total / (6 * np.prod(n))


def test_plane_resection_of_a_box_matches_the_analytic_remnant():
    low, high = np.array([-30.5, -20.5, -10.5]), np.array([29.5, 24.5, 19.5])  # voxel faces
    box = np.all((POINTS >= low) & (POINTS <= high), axis=-1)
    organ = structure("Box", box)
    normal = np.array([0.7, 0.5, 0.3])
    normal /= np.linalg.norm(normal)
    origin = np.array([3.3, -1.7, 2.1])
    result = cut_with_sheet(organ, CutSheet(tuple(origin), tuple(normal)))
    box_mm3 = np.prod(high - low)
    remnant_mm3 = box_below_plane_mm3(low, high, normal, normal @ origin)
    assert result.organ_cc == pytest.approx(box_mm3 / 1000)
    assert result.remnant_cc == pytest.approx(remnant_mm3 / 1000, rel=0.01)
    assert result.resected_cc == pytest.approx((box_mm3 - remnant_mm3) / 1000, rel=0.01)
    assert result.remnant_percent + result.resected_percent == pytest.approx(100)
    # the new structures: disjoint, together the organ, on the right sides of the plane
    resected, remnant = result.resected.mask.full(), result.remnant.mask.full()
    assert not np.any(resected & remnant) and np.array_equal(resected | remnant, box)
    assert np.all((POINTS[resected] - origin) @ normal > 0)
    assert result.remnant.algorithm == GenerationAlgorithm.SEMIAUTOMATIC
    assert result.remnant.name == "Box_remnant" and result.resected.name == "Box_resected"


def test_safety_margin_resection_of_a_sphere_in_a_sphere():
    centre = np.array([2.0, -3.0, 1.0])
    distance = np.linalg.norm(POINTS - centre, axis=-1)
    organ = structure("Liver", distance <= 45.0)
    tumour = structure("GTV", np.linalg.norm(POINTS - (centre + [6.0, 0, 0]), axis=-1) <= 12.0)
    result = resect_with_margin(organ, tumour, 10.0, [tumour])
    remnant_analytic = 4 / 3 * np.pi * (45.0**3 - 22.0**3) / 1000
    assert result.remnant_cc == pytest.approx(remnant_analytic, rel=0.02)
    assert result.resected_cc == pytest.approx(4 / 3 * np.pi * 22.0**3 / 1000, rel=0.03)
    assert result.reached == []  # the tumour itself is not reported


def test_a_safety_margin_past_the_end_of_the_images_is_named_in_the_result(caplog):
    organ = structure("Liver", np.linalg.norm(POINTS - [0.0, 0.0, 25.0], axis=-1) <= 22.0)  # to z 47
    top = structure("GTV", np.linalg.norm(POINTS - [0.0, 0.0, 40.0], axis=-1) <= 5.0)  # images end at z 49
    with caplog.at_level("WARNING"):
        result = resect_with_margin(organ, top, 10.0)
    assert result.warnings == [
        "the 10 mm safety margin around GTV runs past the edge of the images on the superior side and "
        "is cut there: what lies beyond the images is neither resected nor checked for structures reached"
    ]
    assert caplog.records == []  # said once, by whoever shows the result
    assert resect_with_margin(organ, top, 3.0).warnings == []


def test_an_organ_cut_off_by_the_images_is_said_for_every_kind_of_resection():
    """A liver whose top the scan cuts off: the percentages are of the imaged part, and the
    result says so, naming the side and which part reaches it (the images end at z 49)."""
    cut_off = structure("Liver", (np.abs(POINTS - [0.0, 0.0, 30.0]) <= 30.0).all(axis=-1))
    whole = structure("Liver", (np.abs(POINTS - [0.0, 0.0, 10.0]) <= 30.0).all(axis=-1))
    assert sides_at_edges(cut_off.mask) == ["superior"] and sides_at_edges(whole.mask) == []
    gtv = structure("GTV", np.linalg.norm(POINTS - [0.0, 0.0, 10.0], axis=-1) <= 8.0)
    ball = (np.linalg.norm(POINTS - [0.0, 0.0, 10.0], axis=-1) <= 15.0).astype(np.uint8)
    knife = surfaces_from_label_map(ball, GRID, {1: "Knife"})[1]
    remnant_reaches = (
        "Liver reaches the superior end of the images: its volumes and percentages are of the imaged "
        "part only (the resected part does not, the remnant reaches it)"
    )
    for result in (
        resect_with_margin(cut_off, gtv, 5.0),
        cut_inside(cut_off, knife),
        cut_with_sheet(cut_off, CutSheet((0.0, 0.0, 20.0), (0.0, 0.0, -1.0))),  # removes the bottom
        cut_with_sheet(cut_off, CutSheet((0.0, 0.0, 20.0), (0.0, 0.0, -1.0), [[0.0, 5.0, 15.0]])),
    ):
        assert result.edges == ["superior"] and result.warnings == [remnant_reaches]
    top = cut_with_sheet(cut_off, CutSheet((0.0, 0.0, 20.0), (0.0, 0.0, 1.0)))  # the part cut off
    assert top.warnings == [
        "Liver reaches the superior end of the images: its volumes and percentages are of the imaged "
        "part only (the resected part reaches it, the remnant does not)"
    ]
    side = cut_with_sheet(cut_off, CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))  # a left-right cut
    assert side.warnings[0].endswith("(both parts reach it)")
    for result in (
        resect_with_margin(whole, gtv, 5.0),
        cut_inside(whole, knife),
        cut_with_sheet(whole, CutSheet((0.0, 0.0, 20.0), (0.0, 0.0, 1.0))),
    ):
        assert result.edges == [] and result.warnings == []


def test_the_sides_of_the_images_an_organ_reaches_are_named_in_patient_terms():
    """Both ends and in-plane borders, on a feet-first grid (z index towards the feet) whose
    rows run anterior (y index towards anterior)."""
    grid = Grid((20, 30, 40), (1.0, 1.0, 2.0), direction=np.diag([1.0, -1.0, -1.0]))
    full = np.zeros(grid.shape, bool)
    full[:, 0:10, 35:40] = True  # every slice; first rows (posterior), last columns (left)
    organ = Structure("Liver", Mask.from_full(grid, full))
    assert sides_at_edges(organ.mask) == ["superior", "inferior", "posterior", "left"]
    result = cut_with_sheet(organ, CutSheet(tuple(grid.index_to_patient([37.0, 5.0, 10.0])), (0.0, 0.0, 1.0)))
    assert result.warnings == [
        "Liver reaches the superior and inferior ends and the posterior and left edges of the images: its "
        "volumes and percentages are of the imaged part only (the resected part reaches the superior end "
        "and the posterior and left edges, the remnant reaches the inferior end and the posterior and "
        "left edges)"
    ]


def test_resection_reports_the_structures_it_reaches():
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 40.0)
    vessel = structure(
        "Vein", (np.hypot(POINTS[..., 1], POINTS[..., 2]) <= 3.0) & (np.abs(POINTS[..., 0]) < 50)
    )
    duct = structure("Duct", np.linalg.norm(POINTS - [25.0, 0.0, 10.0], axis=-1) <= 4.0)
    far = structure("Kidney", np.linalg.norm(POINTS - [-30.0, 0.0, 20.0], axis=-1) <= 5.0)
    result = cut_with_sheet(organ, CutSheet((10.0, 0.0, 0.0), (1.0, 0.0, 0.0)), [organ, vessel, duct, far])
    reached = {r.name: r for r in result.reached}
    assert set(reached) == {"Vein", "Duct"}
    assert reached["Vein"].crossed and 0.2 < reached["Vein"].fraction < 0.5
    assert not reached["Duct"].crossed and reached["Duct"].fraction == 1.0
    assert "Vein: crossed" in result.summary()


def test_a_bent_sheet_moves_the_cut_through_its_control_point():
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 40.0)
    flat = cut_with_sheet(organ, CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    bent_sheet = CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), [[15.0, 0.0, 0.0]])
    assert bent_sheet.height([[15.0, 0.0, 0.0]])[0] == pytest.approx(0.0, abs=1e-6)
    assert bent_sheet.height([[14.0, 0.0, 0.0]])[0] < 0 < bent_sheet.height([[16.0, 0.0, 0.0]])[0]
    bent = cut_with_sheet(organ, bent_sheet)
    assert bent.resected_cc < flat.resected_cc
    assert bent.resected_cc + bent.remnant_cc == pytest.approx(organ.volume_cc)


def test_cut_inside_a_closed_surface():
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 40.0)
    ball = np.linalg.norm(POINTS - [30.0, 0.0, 0.0], axis=-1) <= 15.0
    surface = surfaces_from_label_map(ball.astype(np.uint8), GRID)[1]
    result = cut_inside(organ, surface)
    assert result.resected_cc == pytest.approx(np.count_nonzero(ball & organ.mask.full()) / 1000, rel=0.05)


def test_errors_name_the_structures():
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 20.0)
    far = structure("GTV", np.linalg.norm(POINTS - [45.0, 45.0, 0.0], axis=-1) <= 3.0)
    with pytest.raises(GeometryError, match="GTV"):
        resect_with_margin(organ, far, 5.0)
    with pytest.raises(GeometryError, match="Empty"):
        cut_with_sheet(Structure("Empty", Mask(GRID)), CutSheet((0, 0, 0), (1, 0, 0)))
    with pytest.raises(ValueError):
        CutSheet((0, 0, 0), (0, 0, 0))


def test_a_vessel_outside_the_organ_is_reached_by_the_safety_margin():
    """In a label map a vessel is never inside the organ: the margin outside it still counts."""
    organ = structure("Liver", (np.abs(POINTS) <= [30.0, 30.0, 30.0]).all(axis=-1))
    vessel_inside = (np.hypot(POINTS[..., 1], POINTS[..., 2]) <= 4.0) & (POINTS[..., 0] > 31.0)
    vessel = structure("Vein", vessel_inside & (POINTS[..., 0] < 50.0))
    tumour = structure("GTV", np.linalg.norm(POINTS - [22.0, 0.0, 0.0], axis=-1) <= 5.0)
    result = resect_with_margin(organ, tumour, 8.0, [organ, tumour, vessel])
    grown = expand(tumour.mask, 8.0).full()
    expected_cc = np.count_nonzero(grown & vessel.mask.full()) / 1000
    assert expected_cc > 0.1
    [reached] = result.reached
    assert reached.name == "Vein" and reached.crossed
    assert reached.resected_cc == pytest.approx(expected_cc)
    assert "Vein: crossed" in result.summary()
    assert resect_with_margin(organ, tumour, 2.0, [organ, tumour, vessel]).reached == []


def test_a_sheet_cut_reaches_a_vessel_in_a_groove_of_the_organ():
    groove = np.hypot(POINTS[..., 0], POINTS[..., 2]) <= 3.0
    organ = structure("Liver", (np.abs(POINTS) <= [30.0, 30.0, 30.0]).all(axis=-1) & ~groove)
    vessel = structure("Vein", groove & (np.abs(POINTS[..., 1]) < 45.0))
    far = structure("Duct", (np.linalg.norm(POINTS - [-20.0, 40.0, 0.0], axis=-1) <= 3.0))
    result = cut_with_sheet(organ, CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)), [vessel, far])
    assert [r.name for r in result.reached] == ["Vein"] and result.reached[0].crossed


def test_a_sheet_cut_reaches_what_a_label_map_cut_out_of_the_resected_part():
    """A label map cuts the tumour and the vessels out of the organ's label: a tumour wholly in
    the resected half, 15 mm from the cut, is removed whole; a vessel inside the organ that the
    cut crosses is crossed with its part on the resected side; one in the remnant is not
    reached."""
    ball = np.linalg.norm(POINTS, axis=-1) <= 40.0
    tumour = np.linalg.norm(POINTS - [25.0, 0.0, 0.0], axis=-1) <= 8.0
    vessel = (np.hypot(POINTS[..., 1] - 20.0, POINTS[..., 2]) <= 3.0) & (np.abs(POINTS[..., 0]) <= 20.0)
    kept = np.linalg.norm(POINTS - [-25.0, 0.0, 0.0], axis=-1) <= 6.0
    organ = structure("Liver", ball & ~tumour & ~vessel & ~kept)
    others = [structure("GTV", tumour), structure("Vein", vessel), structure("Duct", kept)]
    result = cut_with_sheet(organ, CutSheet((10.0, 0.0, 0.0), (1.0, 0.0, 0.0)), others)
    reached = {r.name: r for r in result.reached}
    assert set(reached) == {"GTV", "Vein"}
    assert not reached["GTV"].crossed and reached["GTV"].resected_cc == pytest.approx(tumour.sum() / 1000)
    right_of_cut = np.count_nonzero(vessel & (POINTS[..., 0] >= 10.0)) / 1000  # and the voxels cut
    assert reached["Vein"].crossed and reached["Vein"].resected_cc == pytest.approx(right_of_cut)
    assert "GTV: removed whole" in result.summary()


def test_a_cavity_the_end_of_the_images_closes_is_part_of_the_organ():
    """A tumour cut out of a liver that goes on past the top of the images (z 49) is inside
    the organ though its hole opens there."""
    liver = (np.abs(POINTS - [0.0, 0.0, 30.0]) <= 30.0).all(axis=-1)
    tumour = np.linalg.norm(POINTS[..., :2] - [20.0, 0.0], axis=-1) <= 6.0
    tumour &= POINTS[..., 2] >= 40.0
    organ = structure("Liver", liver & ~tumour)
    result = cut_with_sheet(organ, CutSheet((5.0, 0.0, 0.0), (1.0, 0.0, 0.0)), [structure("GTV", tumour)])
    [reached] = result.reached
    assert reached.name == "GTV" and not reached.crossed and reached.fraction == 1.0


def test_a_safety_margin_removes_what_the_tumour_encloses_whole():
    """A necrotic core labelled apart, inside the tumour and farther from it than the margin,
    goes with the tumour: removed whole, not crossed."""
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 40.0)
    distance = np.linalg.norm(POINTS - [10.0, 0.0, 0.0], axis=-1)
    tumour = structure("GTV", (distance > 8.0) & (distance <= 14.0))
    core = structure("Necrosis", distance <= 8.0)
    result = resect_with_margin(organ, tumour, 3.0, [organ, tumour, core])
    [reached] = result.reached
    assert reached.name == "Necrosis" and not reached.crossed and reached.fraction == 1.0


def test_a_sheet_cut_does_not_reach_what_it_meets_away_from_the_organ():
    """A plane through an L-shaped organ also crosses its notch: a structure lying there, 15 mm
    from the organ (the spine seen from the liver), is not cut by the surgeon."""
    box = (np.abs(POINTS) <= [30.0, 30.0, 30.0]).all(axis=-1)
    organ = structure("Liver", box & ~((POINTS[..., 1] > 0) & (POINTS[..., 2] > 0)))
    spine = structure("Spine", np.linalg.norm(POINTS - [0.0, 20.0, 20.0], axis=-1) <= 5.0)
    duct = structure("Duct", np.linalg.norm(POINTS - [0.0, 4.0, 4.0], axis=-1) <= 3.0)  # 1 mm from it
    result = cut_with_sheet(organ, CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)), [spine, duct])
    assert [r.name for r in result.reached] == ["Duct"] and result.reached[0].crossed


def test_reported_volumes_are_those_of_the_structures_created():
    grid = Grid((30, 60, 60), (1.0, 1.0, 3.0))
    full = np.zeros(grid.shape, bool)
    full[5:25, 10:50, 10:50] = True
    organ = Structure("Box", Mask.from_full(grid, full))
    for origin, normal in (((30.3, 0, 0), (1, 0, 0)), ((0, 0, 40.7), (0, 0, 1)), ((30, 30, 45), (1, 1, 1))):
        result = cut_with_sheet(organ, CutSheet(origin, normal))
        assert result.resected_cc == result.resected.mask.volume_cc
        assert result.remnant_cc == result.remnant.mask.volume_cc
        assert result.resected_cc + result.remnant_cc == pytest.approx(result.organ_cc)


def test_a_cut_that_misses_the_organ_is_an_error_naming_it():
    organ = structure("Liver", np.linalg.norm(POINTS, axis=-1) <= 20.0)
    with pytest.raises(GeometryError, match="no part of .Liver. lies on the resected side"):
        cut_with_sheet(organ, CutSheet((30.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    ball = (np.linalg.norm(POINTS - [40.0, 40.0, 0.0], axis=-1) <= 8.0).astype(np.uint8)
    knife = surfaces_from_label_map(ball, GRID, {1: "Knife"})[1]
    with pytest.raises(GeometryError, match="'Knife' holds no voxel of 'Liver'"):
        cut_inside(organ, knife)


def test_a_sheet_cannot_bend_through_two_points_one_above_the_other():
    with pytest.raises(ValueError, match="points 1 and 3 of the cut lie 0.0 mm apart"):
        CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), [[5.0, 0.0, 0.0], [0.0, 10.0, 0.0], [-5.0, 0.0, 0.0]])
    CutSheet((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), [[5.0, 0.0, 0.0], [-5.0, 2.0, 0.0]])  # 2 mm apart: fine


def test_a_structure_running_off_the_images_inside_the_resected_region_is_not_removed_whole():
    """A tumour in a liver that goes on past the top of the images (z 49), itself cut off by
    them: all of its imaged part is resected, but what lies past the images is not known."""
    liver = (np.abs(POINTS - [0.0, 0.0, 30.0]) <= 30.0).all(axis=-1)
    tumour = (np.linalg.norm(POINTS[..., :2] - [20.0, 0.0], axis=-1) <= 6.0) & (POINTS[..., 2] >= 40.0)
    duct = np.linalg.norm(POINTS - [20.0, 0.0, 20.0], axis=-1) <= 4.0  # whole, in the resected part
    organ = structure("Liver", liver & ~tumour & ~duct)
    others = [structure("GTV", tumour), structure("Duct", duct)]
    result = cut_with_sheet(organ, CutSheet((5.0, 0.0, 0.0), (1.0, 0.0, 0.0)), others)
    reached = {r.name: r for r in result.reached}
    assert reached["GTV"].edges == ("superior",) and not reached["GTV"].crossed
    assert reached["Duct"].edges == () and reached["Duct"].how == "removed whole"
    summary = result.summary()
    assert (
        "GTV: removed as far as imaged: it runs off the superior end of the images inside the resected region"
        in summary
    )
    assert "GTV: removed whole" not in summary

    vein = (np.hypot(POINTS[..., 0] - 5.0, POINTS[..., 1]) <= 3.0) & (POINTS[..., 2] >= 10.0)
    crossed = cut_with_sheet(
        structure("Liver", liver & ~vein),
        CutSheet((5.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
        [structure("Vein", vein)],
    )
    [item] = crossed.reached
    assert item.crossed and item.edges == ("superior",)
    assert item.how == "crossed; it runs off the superior end of the images inside the resected region"


def test_a_structure_running_off_the_images_next_to_the_resected_region_may_be_reached_past_them():
    """A liver cut off by the top of the images (z 49). A tumour at the top resected with a
    safety margin: a vein running off the top in the voxels next to the grown tumour, never in
    it in the images, may be reached past them; one 3 voxels from it, or one that stops short
    of the top, is not named. A plane cut: a vein in the voxels next to the cut there (beyond
    the organ), but not one that only touches the organ's resected part."""
    liver = (np.abs(POINTS - [0.0, 0.0, 30.0]) <= [20.0, 20.0, 30.0]).all(axis=-1)
    organ = structure("Liver", liver)
    up = POINTS[..., 2] >= 40.0

    def vein(name, x_mm, y_mm=0.0, top_mm=60.0):
        along = np.hypot(POINTS[..., 0] - x_mm, POINTS[..., 1] - y_mm) <= 2.0
        return structure(name, along & up & (POINTS[..., 2] <= top_mm))

    near, far, short = vein("IVC", 23.0), vein("Aorta", 26.0), vein("Short", 23.0, top_mm=40.0)
    gtv = structure("GTV", np.linalg.norm(POINTS - [11.0, 0.0, 49.0], axis=-1) <= 4.0)  # grown: x ≤ 20
    result = resect_with_margin(organ, gtv, 5.0, [near, far, short])
    assert result.reached == [] and result.beyond == {"IVC": ["superior"]}
    assert (
        "IVC (the superior end) touches the resected region where both run off the images: past the "
        "images, which show nothing, it may be reached too"
    ) in result.warnings
    assert resect_with_margin(organ, gtv, 5.0, [far, short]).beyond == {}
    # a groove x 13–20, y 12–20 along the liver; the cut at x 15 crosses it, the vein x 16–20 in it
    grooved = structure("Liver", liver & ~((np.abs(POINTS[..., 0] - 17.0) <= 4.0) & (POINTS[..., 1] >= 12.0)))
    beside_cut = vein("Vein", 18.0, 17.0)
    cut = cut_with_sheet(grooved, CutSheet((15.0, 0.0, 0.0), (1.0, 0.0, 0.0)), [near, beside_cut])
    assert cut.reached == [] and cut.beyond == {"Vein": ["superior"]}
