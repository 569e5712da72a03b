"""Benchmarks: `make bench` (`python -m bench`) measures every figure and prints one table each.

One module per figure, each with `run(options: Options) -> Figure`; list it in FIGURES to have the
runner print it. Figures are measured, never asserted: tests check that they are sane, not fast.
"""

import os
from dataclasses import dataclass, field

# The benchmarks talk only to local emulators. Fake credentials, set before anything imports boto3,
# make sure no request could ever be signed for a real account.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)

# Module names under bench/, in the order the runner prints them.
FIGURES: tuple[str, ...] = ("pipeline",)


@dataclass(frozen=True)
class Options:
    events: int = 10_000
    seed: int = 1


@dataclass
class Figure:
    """A titled table; the first column is the row label, the others are right-aligned values."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns: {cells}")
        self.rows.append(cells)

    def render(self) -> str:
        table = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        lines = [self.title, "=" * len(self.title)]
        for number, row in enumerate(table):
            cells = [row[0].ljust(widths[0])] + [
                cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
            if number == 0:
                lines.append("  ".join("-" * width for width in widths))
        lines.extend(f"* {note}" for note in self.notes)
        return "\n".join(lines)
