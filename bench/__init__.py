"""Benchmarks: `make bench` (`python -m bench`) measures every figure and prints one table each.

One module per figure, each with `run(options: Options) -> Figure`; list it in FIGURES to have the
runner print it. Figures are measured, never asserted: tests check that they are sane, not fast.
"""

import os
from dataclasses import dataclass, field

from devtools.fake_aws import use_fake_aws

# The benchmarks talk only to local emulators.
use_fake_aws()

# What the template gives the GraphQL function, for the figures that run its handler (moto in process)
# or import it in a fresh interpreter (cold_start). Read once by pixel_core.config: set before it is
# imported, and only where unset (the test suite sets its own).
LAMBDA_ENVIRONMENT: dict[str, str] = {
    "STAGE": "prod",
    "TABLE_NAME": "pixel-gateway-bench",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-gateway-bench-EventsQueue",
    "CLEANUP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-gateway-bench-CleanupQueue",
    "TOKEN_KMS_KEY_ID": "alias/pixel-gateway-bench/access-tokens",
}
for _name, _value in LAMBDA_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

# Module names under bench/, in the order the runner prints them.
FIGURES: tuple[str, ...] = ("pipeline", "cost", "cold_start", "warm", "aws_requests", "reads")


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
