"""Figure: cold start of the GraphQL function against `import boto3` alone, each in a fresh interpreter.

The handler module (functions/graphql_api/app.py) is imported the way Lambda's runtime does it:
from a copy of the function's folder (/var/task) with a copy of the core layer (/opt/python) ahead
of the installed packages on sys.path, in the environment the template gives the function. The
copies are staged by devtools/lambda_build.py, which `sam build` runs: the project's modules carry
bytecode compiled ahead of time (unchecked-hash), the installed packages their pip-compiled caches,
as the built layer does. Three more imports are timed in the same run, alternating with it:

- the same handler with no bytecode anywhere, project or dependencies: what SAM's python3.13 build
  method shipped (it unpacks wheels without compiling, and Lambda's /var/task and /opt are read
  only, so each cold start compiled everything again);
- the third-party packages the handler needs, alone, without any project code: the floor that no
  change to our own code can go below;
- the baseline, `import boto3` alone.

Each is timed inside the child, around the imports alone, and from outside, for the whole process.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import LAMBDA_ENVIRONMENT, Figure, Options
from devtools import lambda_build
from devtools.fake_aws import FAKE_AWS_ENVIRONMENT

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TOP_MODULES = 10
TARGET_RATIO = 1.5

HANDLER = "handler, as built"
HANDLER_WITHOUT_BYTECODE = "handler, no bytecode"
THIRD_PARTY = "third-party packages alone"
BOTO3 = "import boto3 alone"
# What the handler's modules import from outside the project, at import time.
THIRD_PARTY_MODULES = (
    "pynamodb.models",
    "ariadne.asgi",
    "mangum",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "cachetools",
    "idna",
)

# argv: the modules to import, comma-separated, then the folders to put first on sys.path.
_CHILD = """\
import sys, time
sys.path[:0] = sys.argv[2:]
started = time.perf_counter()
for name in sys.argv[1].split(","):
    __import__(name)
elapsed = time.perf_counter() - started
assert "app" not in sys.modules or callable(sys.modules["app"].handler)
print(elapsed)
"""
# Which top-level entries of the installed packages a child imported from.
_LIST_INSTALLED = """\
import sys, sysconfig
from pathlib import Path
sys.path[:0] = sys.argv[2:]
for name in sys.argv[1].split(","):
    __import__(name)
site = Path(sysconfig.get_paths()["purelib"])
names = {
    Path(module.__file__).relative_to(site).parts[0]
    for module in list(sys.modules.values())
    if getattr(module, "__file__", None) and Path(module.__file__).is_relative_to(site)
}
print("\\n".join(sorted(names)))
"""
_IMPORT_TIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S.*)$")


@dataclass(frozen=True)
class Run:
    import_seconds: float  # measured in the child, around the import statements
    process_seconds: float  # measured from outside: interpreter start, import, exit


@dataclass(frozen=True)
class ImportTime:
    module: str
    imported_by: str | None  # None: imported by the script itself
    self_us: int
    cumulative_us: int


@dataclass(frozen=True)
class ColdStartResult:
    runs: dict[str, list[Run]]  # by label, in the order they are printed
    handler_imports: list[ImportTime]  # one -X importtime run of the handler as built

    @property
    def handler(self) -> list[Run]:
        return self.runs[HANDLER]

    @property
    def boto3(self) -> list[Run]:
        return self.runs[BOTO3]

    def ratio_of(self, label: str) -> float:
        return median_import(self.runs[label]) / median_import(self.boto3)

    @property
    def ratio(self) -> float:
        return self.ratio_of(HANDLER)

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


def stage_function(root: Path, *, bytecode: bool = True) -> list[Path]:
    """The function and the core layer as `sam build` lays them out; returns the sys.path head."""
    task, layer = root / "var/task", root / "opt/python"
    lambda_build.copy_function(REPO_ROOT / "functions/graphql_api", task)
    lambda_build.copy_layer_packages(REPO_ROOT / "layers/core", layer)
    if bytecode:
        lambda_build.compile_bytecode(task, lambda_build.FUNCTION_MOUNT)
        lambda_build.compile_bytecode(layer, lambda_build.LAYER_MOUNT)
    return [task, layer]


def stage_installed_without_bytecode(names: list[str], layer: Path) -> None:
    """Copies installed packages into the layer without their caches, as the old build shipped them."""
    site = Path(sysconfig.get_paths()["purelib"])
    for name in names:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, layer / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, layer / name)


def lambda_environment(root: Path, task: Path) -> dict[str, str]:
    """The function's environment in Lambda, fake credentials, and no AWS config files of this machine."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **FAKE_AWS_ENVIRONMENT,
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
    modules: tuple[str, ...],
    path_head: list[Path],
    environment: dict[str, str],
    *,
    import_time: bool = False,
    script: str = _CHILD,
) -> tuple[str, str]:
    """Runs `script` in a fresh interpreter; returns its stdout and stderr."""
    # -I: no PYTHONPATH (make exports one), no user site, no script folder on sys.path;
    # -B: nothing written, so every run sees the same caches (and the unbuilt copy stays unbuilt).
    flags = ["-I", "-B", *(["-X", "importtime"] if import_time else [])]
    command = [sys.executable, *flags, "-c", script, ",".join(modules), *map(str, path_head)]
    completed = subprocess.run(  # noqa: S603  # our own interpreter, our own code
        command, env=environment, cwd=path_head[0], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"importing {modules} failed in a fresh interpreter:\n{completed.stderr}")
    return completed.stdout, completed.stderr


def timed_import(modules: tuple[str, ...], path_head: list[Path], environment: dict[str, str]) -> Run:
    started = time.perf_counter()
    stdout, _stderr = _child(modules, path_head, environment)
    return Run(float(stdout.strip().splitlines()[-1]), time.perf_counter() - started)


def installed_imported_by(
    modules: tuple[str, ...], path_head: list[Path], environment: dict[str, str]
) -> list[str]:
    stdout, _stderr = _child(modules, path_head, environment, script=_LIST_INSTALLED)
    return stdout.split()


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
        built = stage_function(root / "built")
        environment = lambda_environment(root, built[0])
        unbuilt = stage_function(root / "unbuilt", bytecode=False)
        stage_installed_without_bytecode(installed_imported_by(("app",), built, environment), unbuilt[1])
        imports: dict[str, tuple[tuple[str, ...], list[Path]]] = {
            HANDLER: (("app",), built),
            HANDLER_WITHOUT_BYTECODE: (("app",), unbuilt),
            THIRD_PARTY: (THIRD_PARTY_MODULES, built),
            BOTO3: (("boto3",), built),
        }
        # One untimed run of each first: the files read come from the page cache in every timed run.
        for modules, path_head in imports.values() if untimed_first else ():
            timed_import(modules, path_head, environment)
        timed: dict[str, list[Run]] = {label: [] for label in imports}
        for _ in range(runs):  # alternating, so the machine's load falls on all alike
            for label, (modules, path_head) in imports.items():
                timed[label].append(timed_import(modules, path_head, environment))
        _stdout, stderr = _child(("app",), built, environment, import_time=True)
    return ColdStartResult(timed, parse_import_times(stderr))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def figure(result: ColdStartResult) -> Figure:
    runs = len(result.handler)
    table = Figure(
        title="Cold start: the GraphQL handler module vs import boto3 alone (fresh interpreters)",
        columns=("", f"median of {runs}, ms", "fastest, ms", "whole process, ms", "vs boto3 alone"),
    )
    for label, timed in result.runs.items():
        table.add(
            label,
            _ms(median_import(timed)),
            _ms(min(run.import_seconds for run in timed)),
            _ms(median_process(timed)),
            f"{result.ratio_of(label):.2f}x",
        )
    table.add(
        f"top {TOP_MODULES} modules of the handler as built (-X importtime)", "cumulative", "self", "", ""
    )
    for entry in result.top_modules():
        table.add(
            f"  {entry.module} (imported by {entry.imported_by or '-'})",
            _ms(entry.cumulative_us / 1e6),
            _ms(entry.self_us / 1e6),
            "",
            "",
        )
    packages = result.self_time_by_package()
    total_self = sum(us for _package, us in packages) or 1
    verdict = "met" if result.ratio <= TARGET_RATIO else "NOT met"
    floor = result.ratio_of(THIRD_PARTY)
    table.notes += [
        f"target: handler as built / boto3 at most {TARGET_RATIO}x on the median import time; "
        f"{verdict} ({result.ratio:.2f}x). The third-party packages alone take {floor:.2f}x"
        + (", above the target before any of our code runs." if floor > TARGET_RATIO else "."),
        f"{HANDLER}: `import app` of the function and the core layer staged by devtools/lambda_build.py "
        "(as `sam build` does: /var/task and /opt/python first on sys.path, our modules with bytecode "
        "compiled ahead of time), installed packages with their pip-compiled caches, in the template's "
        "environment (STAGE=prod, TABLE_NAME, EVENTS_QUEUE_URL, TOKEN_KMS_KEY_ID, Powertools) with fake "
        "credentials; it builds the executable schema and Mangum, as Lambda's init phase does. No AWS request.",
        f"{HANDLER_WITHOUT_BYTECODE}: the same, with every package the handler imports from the "
        "installed ones copied into the layer without caches: what SAM's python3.13 build method "
        "shipped, compiled again on every cold start in Lambda's read-only /var/task and /opt.",
        f"{THIRD_PARTY}: {', '.join(THIRD_PARTY_MODULES)}, and no project code.",
        f"{BOTO3}: `import boto3` in the same kind of fresh interpreter and environment.",
        "runs alternate, after one untimed run of each; `python -I -B`. Whole process = interpreter "
        "start-up + import + exit, timed from outside. The top modules come from one more run with "
        "-X importtime (which slows imports a little); a module's cumulative time includes everything "
        "it imported first, so nested entries overlap; self includes its module-level code.",
        "self time by top-level package (same run, no overlap): "
        + ", ".join(f"{package} {_ms(us / 1e6)} ms ({us / total_self:.0%})" for package, us in packages[:8])
        + f"; all others {_ms(sum(us for _package, us in packages[8:]) / 1e6)} ms.",
        "absolute times depend on the machine and its load (other test runs share it); the ratios are "
        "measured in the same run, on the same machine, and are what to compare.",
    ]
    return table


def run(options: Options) -> Figure:
    del options  # no workload: the same two imports every time
    return figure(measure())
