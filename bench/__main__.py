"""`python -m bench [--events N] [--seed S] [--only FIGURE]`: measures and prints every figure."""

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence

from bench import FIGURES, Figure, Options


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--events", type=_positive, default=Options.events, help="events per run (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="workload seed (default %(default)s)")
    parser.add_argument("--only", choices=FIGURES, action="append", help="run only this figure (repeatable)")
    arguments = parser.parse_args(argv)
    options = Options(events=arguments.events, seed=arguments.seed)
    started = time.monotonic()
    for name in arguments.only or FIGURES:
        # Imported one at a time: a figure's imports (and their cost) stay out of the others.
        run: Callable[[Options], Figure] = importlib.import_module(f"bench.{name}").run
        print(run(options).render(), end="\n\n", flush=True)
    print(f"bench: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
