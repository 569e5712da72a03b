"""Prints what `make test` measured of layers/ and functions/: statements and branches apart.

`coverage report` gives one figure for both; the branch figure alone is held to its own floor.
Reads the JSON that `coverage json` writes. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BRANCH_FLOOR = 90.0  # percent of branches taken both ways; make test fails below it


def summary(totals: dict[str, float]) -> str:
    return (
        f"coverage of layers/ and functions/: {totals['percent_covered']:.1f}% in all, "
        f"statements {totals['percent_statements_covered']:.1f}%, "
        f"branches {totals['percent_branches_covered']:.1f}% "
        f"({totals['covered_branches']:.0f} of {totals['num_branches']:.0f})"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devtools.coverage_summary COVERAGE_JSON", file=sys.stderr)
        return 2
    totals = json.loads(Path(argv[0]).read_text())["totals"]
    print(summary(totals))
    if totals["percent_branches_covered"] < BRANCH_FLOOR:
        print(f"branch coverage is below {BRANCH_FLOOR:.0f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
