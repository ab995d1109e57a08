"""Numbers outside their meaning are refused by the parser, naming the option; values the domain
refuses are one line, not a traceback."""

from __future__ import annotations

import pytest

from workstation.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "a", "b", "--out", "r.html", "--tolerance", "-2"], "--tolerance: must be > 0, got -2"),
        (["dvh", "d", "s", "--out", "d.csv", "--percents", "95", "150"], "--percents: must be from 0 to 100"),
        (["dvh", "d", "s", "--out", "d.csv", "--levels", "-5"], "--levels: must be ≥ 0, got -5"),
        (["dvh", "d", "s", "--out", "d.csv", "--cc", "0"], "--cc: must be > 0, got 0"),
        (["dvh", "d", "s", "--out", "d.csv", "--end-cap", "abc"], "--end-cap: expected a number, got 'abc'"),
        (["dvh", "d", "s", "--out", "d.csv", "--end-cap", "nan"], "--end-cap: must be > 0, got nan"),
        (["mesh", "m", "--out", "o", "--tolerance", "-1"], "--tolerance: must be ≥ 0, got -1"),
        (["mesh", "m", "--out", "o", "--smoothing", "2.5"], "--smoothing: expected an integer, got '2.5'"),
        (["rtstruct", "export", "l", "--series", "s", "--out", "x.dcm", "--simplify-mm", "-1"], "≥ 0"),
        (["train", "d", "--run", "r", "--iterations", "0"], "--iterations: must be an integer ≥ 1, got 0"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_numbers_out_of_range_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_a_value_the_domain_refuses_is_one_line(monkeypatch, capsys):
    import workstation.cli.info as info

    def refuse(args):
        raise ValueError("the margin must be a finite number of mm ≥ 0, got -3.0")

    monkeypatch.setattr(info, "run", refuse)
    assert main(["info", "."]) == 1
    err = capsys.readouterr().err
    assert err == "delineo: error: the margin must be a finite number of mm ≥ 0, got -3.0\n"
