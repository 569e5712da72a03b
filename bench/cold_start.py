"""Figure: cold start of the GraphQL function against `import boto3` alone, each in a fresh interpreter.

The handler module (functions/graphql_api/app.py) is imported the way Lambda's runtime does it:
from a copy of the function's folder (/var/task) with a copy of the core layer (/opt/python) ahead
of the installed packages on sys.path, in the environment the template gives the function. The
copies have no bytecode caches, as /var/task and the layer's own sources have none in Lambda (read
only, and `sam build` does not compile them): the project's modules are compiled on every cold
start, the installed packages' caches are used. The baseline is a fresh interpreter that imports
boto3 and nothing else. Both are timed inside the child, around the import alone, and from outside,
for the whole process; runs alternate, so the machine's load falls on both alike.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import LAMBDA_ENVIRONMENT, Figure, Options

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TOP_MODULES = 10
TARGET_RATIO = 1.5

# argv: what to import ("handler" or "boto3"), then the folders to put first on sys.path.
_CHILD = """\
import sys, time
started = time.perf_counter()
if sys.argv[1] == "handler":
    sys.path[:0] = sys.argv[2:]
    import app
    assert callable(app.handler)
else:
    import boto3
print(time.perf_counter() - started)
"""
_IMPORT_TIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S.*)$")


@dataclass(frozen=True)
class Run:
    import_seconds: float  # measured in the child, around the import statement
    process_seconds: float  # measured from outside: interpreter start, import, exit


@dataclass(frozen=True)
class ImportTime:
    module: str
    imported_by: str | None  # None: imported by the script itself
    self_us: int
    cumulative_us: int


@dataclass(frozen=True)
class ColdStartResult:
    handler: list[Run]
    boto3: list[Run]
    handler_imports: list[ImportTime]  # one -X importtime run of the handler

    @property
    def ratio(self) -> float:
        return median_import(self.handler) / median_import(self.boto3)

    def top_modules(self, count: int = TOP_MODULES) -> list[ImportTime]:
        return sorted(self.handler_imports, key=lambda entry: entry.cumulative_us, reverse=True)[:count]

    def self_time_by_package(self) -> list[tuple[str, int]]:
        """Self time summed by top-level package, largest first: where the time goes, without overlap."""
        totals: Counter[str] = Counter()
        for entry in self.handler_imports:
            totals[entry.module.split(".")[0]] += entry.self_us
        return totals.most_common()


def median_import(runs: list[Run]) -> float:
    return statistics.median(run.import_seconds for run in runs)


def median_process(runs: list[Run]) -> float:
    return statistics.median(run.process_seconds for run in runs)


def stage_function(root: Path) -> list[Path]:
    """Copies the function and the core layer as Lambda lays them out; returns the sys.path head."""
    task, layer = root / "var/task", root / "opt/python"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "functions/graphql_api", task, ignore=ignore)
    shutil.copytree(REPO_ROOT / "layers/core/pixel_core", layer / "pixel_core", ignore=ignore)
    return [task, layer]


def lambda_environment(root: Path, task: Path) -> dict[str, str]:
    """The function's environment in Lambda, fake credentials, and no AWS config files of this machine."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        # Importing makes no request; were one ever added, it would go to the discard port, not AWS.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "pixel-gateway-bench-GraphQLFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": "app.handler",
        "POWERTOOLS_SERVICE_NAME": "pixel-gateway",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **LAMBDA_ENVIRONMENT,
    }


def _child(
    what: str, path_head: list[Path], environment: dict[str, str], *, import_time: bool = False
) -> tuple[Run, str]:
    # -I: no PYTHONPATH (make exports one), no user site, no script folder on sys.path;
    # -B: nothing written, so every run sees the same caches.
    flags = ["-I", "-B", *(["-X", "importtime"] if import_time else [])]
    command = [sys.executable, *flags, "-c", _CHILD, what, *map(str, path_head)]
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603  # our own interpreter, our own code
        command, env=environment, cwd=path_head[0], capture_output=True, text=True, check=False
    )
    process_seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"importing {what} failed in a fresh interpreter:\n{completed.stderr}")
    return Run(float(completed.stdout.strip().splitlines()[-1]), process_seconds), completed.stderr


def parse_import_times(stderr: str) -> list[ImportTime]:
    """-X importtime's lines; a module is listed after what it imported, one level deeper."""
    parsed = []
    for line in stderr.splitlines():
        match = _IMPORT_TIME.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            parsed.append((module, (len(indent) - 1) // 2, int(self_us), int(cumulative_us)))
    entries = []
    for index, (module, depth, self_us, cumulative_us) in enumerate(parsed):
        parent = next((later[0] for later in parsed[index + 1 :] if later[1] < depth), None)
        entries.append(ImportTime(module, parent, self_us, cumulative_us))
    return entries


def measure(runs: int = RUNS, *, untimed_first: bool = True) -> ColdStartResult:
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as directory:
        root = Path(directory)
        path_head = stage_function(root)
        environment = lambda_environment(root, path_head[0])
        # One untimed run of each first: the files read come from the page cache in every timed run.
        for what in ("handler", "boto3") if untimed_first else ():
            _child(what, path_head, environment)
        handler: list[Run] = []
        boto3: list[Run] = []
        for _ in range(runs):
            handler.append(_child("handler", path_head, environment)[0])
            boto3.append(_child("boto3", path_head, environment)[0])
        _run, stderr = _child("handler", path_head, environment, import_time=True)
    return ColdStartResult(handler, boto3, parse_import_times(stderr))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def figure(result: ColdStartResult) -> Figure:
    runs = len(result.handler)
    table = Figure(
        title="Cold start: the GraphQL handler module vs import boto3 alone (fresh interpreters)",
        columns=("", "handler", "boto3 alone", "handler/boto3"),
    )
    table.add(
        f"import + init, ms (median of {runs})",
        _ms(median_import(result.handler)),
        _ms(median_import(result.boto3)),
        f"{result.ratio:.2f}x",
    )
    fastest = (
        min(run.import_seconds for run in result.handler),
        min(run.import_seconds for run in result.boto3),
    )
    table.add(f"  fastest of {runs}", _ms(fastest[0]), _ms(fastest[1]), f"{fastest[0] / fastest[1]:.2f}x")
    process = median_process(result.handler), median_process(result.boto3)
    table.add(
        f"whole process, ms (median of {runs})",
        _ms(process[0]),
        _ms(process[1]),
        f"{process[0] / process[1]:.2f}x",
    )
    table.add(
        f"top {TOP_MODULES} modules of the handler (-X importtime), ms", "cumulative", "self", "imported by"
    )
    for entry in result.top_modules():
        table.add(
            f"  {entry.module}",
            _ms(entry.cumulative_us / 1e6),
            _ms(entry.self_us / 1e6),
            entry.imported_by or "-",
        )
    packages = result.self_time_by_package()
    total_self = sum(us for _package, us in packages) or 1
    verdict = "met" if result.ratio <= TARGET_RATIO else "NOT met"
    table.notes += [
        f"target: handler/boto3 at most {TARGET_RATIO}x on the median import time; {verdict} ({result.ratio:.2f}x).",
        "handler: `import app` of a copy of functions/graphql_api (as /var/task) with a copy of "
        "layers/core (as /opt/python) first on sys.path, in the template's environment (STAGE=prod, "
        "TABLE_NAME, EVENTS_QUEUE_URL, TOKEN_KMS_KEY_ID, Powertools) with fake credentials; it builds the "
        "executable schema, Mangum and PynamoDB's connection, as Lambda's init phase does. No AWS request.",
        "boto3 alone: `import boto3` in the same kind of fresh interpreter and environment.",
        "the project's own modules are compiled from source in every handler run (no bytecode caches "
        "in /var/task or the layer's sources in Lambda); installed packages use their caches in both.",
        "runs alternate handler/boto3, after one untimed run of each; `python -I -B`. Whole process = "
        "interpreter start-up + import + exit, timed from outside. The top modules come from one more "
        "run with -X importtime (which slows imports a little); a module's cumulative time includes "
        "everything it imported first, so nested entries overlap; self includes its module-level code.",
        "self time by top-level package (same run, no overlap): "
        + ", ".join(f"{package} {_ms(us / 1e6)} ms ({us / total_self:.0%})" for package, us in packages[:8])
        + f"; all others {_ms(sum(us for _package, us in packages[8:]) / 1e6)} ms.",
        "absolute times depend on the machine and its load (other test runs share it); the ratio is "
        "measured in the same run, on the same machine, and is what to compare.",
    ]
    return table


def run(options: Options) -> Figure:
    del options  # no workload: the same two imports every time
    return figure(measure())
