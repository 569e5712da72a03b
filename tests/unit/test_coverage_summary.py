"""make test's coverage line: statements and branches apart, and the branch floor enforced."""

import json

from devtools.coverage_summary import BRANCH_FLOOR, main

TOTALS = {
    "percent_covered": 96.06,
    "percent_statements_covered": 97.27,
    "num_branches": 556,
    "covered_branches": 503,
}


def write(tmp_path, branches_percent):
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps({"totals": {**TOTALS, "percent_branches_covered": branches_percent}}))
    return str(path)


def test_the_summary_prints_statements_and_branches_and_passes_at_the_floor(tmp_path, capsys):
    assert main([write(tmp_path, BRANCH_FLOOR)]) == 0
    assert capsys.readouterr().out.strip() == (
        "coverage of layers/ and functions/: 96.1% in all, statements 97.3%, branches 90.0% (503 of 556)"
    )


def test_branch_coverage_below_the_floor_fails(tmp_path, capsys):
    assert main([write(tmp_path, BRANCH_FLOOR - 0.1)]) == 1
    assert "below 90%" in capsys.readouterr().err


def test_a_missing_argument_is_a_usage_error(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage:")
