"""`delineo echo | send | find | retrieve` against a real PACS product, Orthanc (Debian's package)."""

import numpy as np
from support.orthanc import HUMAN_CT, HUMAN_STUDY

from planning.imageio import load_volume
from workstation.cli import main


def test_echo_send_find_and_retrieve(orthanc, orthanc_case, tmp_path, capsys):
    node = str(orthanc.node)
    assert main(["echo", node]) == 0
    assert capsys.readouterr().out.startswith(f"{node} answered in ")
    files = [str(orthanc_case[key]) for key in ("ct", "rtstruct", "accented")]
    assert main(["send", *files, "--to", node]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"sent 7 of 7 file(s) to {node}"

    assert main(["find", node, "--modality", "RTSTRUCT"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].split()[-1] == HUMAN_STUDY
    assert lines[2].split()[3:7] == ["Visible", "Human", "Male", "CT/RTSTRUCT"]

    assert main(["find", node, "--name", "øster, åse"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "searching patient name øster^åse* or ØSTER^ÅSE* or Øster^Åse* (typed 'øster, åse')"
    assert lines[3].split()[:4] == ["2020-11-12", "Øster,", "Åse", "OSTER-1"]
    assert lines[-1].startswith(f"1 study(ies) of 1 patient(s) on {node}")

    assert main(["find", node, "--series", HUMAN_STUDY]) == 0
    rows = sorted(line.split() for line in capsys.readouterr().out.splitlines()[2:])
    assert [(row[1], row[-2], row[-1]) for row in rows] == [
        ("CT", "4", HUMAN_CT),
        ("RTSTRUCT", "1", rows[1][-1]),
    ]

    for method in ([], ["--move", "--port", str(orthanc.move_port)]):
        out = tmp_path / ("move" if method else "get")
        assert (
            main(["retrieve", node, "--study", HUMAN_STUDY, "--series", HUMAN_CT, "--out", str(out), *method])
            == 0
        )
        assert f"retrieved 4 instance(s) from {node} into {out}" in capsys.readouterr().out
        np.testing.assert_array_equal(load_volume(out).array, orthanc_case["volume"].array)


def test_errors_name_the_problem(orthanc, tmp_path, capsys):
    node = str(orthanc.node)
    assert main(["find", node, "--name", "nobody here"]) == 1
    assert (
        f"no study on {node} matches name 'nobody^here* or NOBODY^HERE* or Nobody^Here*'"
        in capsys.readouterr().err
    )
    out = str(tmp_path / "x")
    assert main(["retrieve", node, "--study", "1.2.3.4", "--out", out]) == 1
    assert "has no study 1.2.3.4 (a search for it finds nothing)" in capsys.readouterr().err
