"""Figure: cold start as the user feels it, against the floor no change to our code can go below.

The handler module (functions/graphql_api/app.py) is imported the way Lambda's runtime does it:
from a copy of the function's folder (/var/task) with a copy of the core layer (/opt/python) ahead
of the installed packages on sys.path, in the environment the template gives the function. The
copies are staged by devtools/lambda_build.py, which `sam build` runs: the project's modules carry
bytecode compiled ahead of time (unchecked-hash), and the layer a copy of botocore slimmed as the
build slims it (lambda_build.slim_botocore: the data of DynamoDB, SQS and KMS alone, no docs); the
other installed packages are imported where they are, with their pip-compiled caches. Each row is a
fresh interpreter, the rows alternating:

- (a) the handler as built: import and init (the schema, the app, Mangum); then, in the same
  process, (b) = (a) + the first request: the seed `pageview` (tests/support/documents.py, with
  its credentials inline) as an API Gateway event through `app.handler`, with AWS answered in
  memory at botocore's HTTP layer (bench/in_memory_aws.py): the clients are made, endpoints and
  credentials resolved, requests signed and answers parsed as in Lambda, only the network is not;
- the same as restored from a SnapStart snapshot: init, then the before-snapshot hooks the
  handler registers (graphql_api/warmup.py, through a stand-in for Lambda's snapshot_restore_py)
  untimed, as Lambda runs them when it publishes a version; then timed, the after-restore hooks
  and the first pageview: an estimate of a restored copy's first request (Lambda's own restore
  of the snapshot comes on top, and is not something this machine can measure);
- the same handler with no bytecode anywhere, project or dependencies: what SAM's python3.13
  build method shipped (it unpacks wheels without compiling, and Lambda's /var/task and /opt are
  read only, so each cold start compiled everything again);
- (c) the floor: the third-party modules the handler's own modules import (read from an
  -X importtime run of the handler: every module outside the project and the standard library
  whose importer is a project module), imported without any project code: first, timed apart, in
  each of the handler's interpreters (which then import the handler: it finds them loaded), and
  alone in interpreters of their own as a cross-check. The verdicts divide within one interpreter:
  on this shared machine a child's speed wanders by 10 % from one to the next, which ratios of
  separate children carry and those within one child cancel. They leave out one saving: imported
  alone, as in Lambda, the handler turns the collector off before the floor's imports too (app.py),
  which the cross-check, the handler alone against the floor alone, includes;
- `import boto3` alone, the baseline of the earlier figure.

Imports are timed inside the child, around the import statements; the whole process from outside.
(a) is the floor's imports and the handler's together.
"""

import json
import math
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

from bench import LAMBDA_ENVIRONMENT, Figure, Options, in_memory_aws
from devtools import lambda_build
from devtools.api_gateway import http_api_event
from devtools.fake_aws import FAKE_AWS_ENVIRONMENT
from tests.support.documents import SEED_PAGEVIEW

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = 16  # eight pairs of rounds, one in each order (`paired_ratio`)
TOP_MODULES = 10
# Targets (issue 16), on medians measured in the same run: init at most 10 % above the floor, init
# and the first request at most 35 % above it.
TARGET_INIT_RATIO = 1.10
TARGET_FIRST_REQUEST_RATIO = 1.35

HANDLER = "handler, as built"
HANDLER_WITHOUT_BYTECODE = "handler, no bytecode"
THIRD_PARTY = "third-party packages alone"
# The cross-check: the handler and the floor each alone, in interpreters of their own.
HANDLER_ALONE = "handler, as built, imported alone"
THIRD_PARTY_ALONE = "third-party packages, imported alone"
BOTO3 = "import boto3 alone"
RESTORED = "(b) restored: after-restore hooks + first pageview"
PROJECT_PACKAGES = frozenset({"app", "graphql_api", "pixel_core"})

# The request: the seed pageview, by an app whose pixel takes the page's domain.
APP_ID, APP_SECRET = "APP", "SECRET"  # SEED_PAGEVIEW's inline credentials
TENANT_ID, PIXEL_ID, DOMAIN = "IaoreXfj", 123, "example.com"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
# What answering it asks of AWS, in order: the app, the pixel, its tenant, then the event is queued.
FIRST_REQUEST_CALLS = ["DynamoDB_20120810.GetItem"] * 3 + ["AmazonSQS.SendMessage"]

# argv: the modules to import first, timed apart (comma-separated, "-" for none: the floor, in the
# handler's children), the modules to import (comma-separated), the mode, the request's spec file
# (or "-"), then the folders to put first on sys.path. Modes: "import"; "first-request" (then
# answers the spec's event); "restored" (a stand-in snapshot_restore_py records the hooks; the
# before-snapshot ones run after the import, then the after-restore ones and the request are timed).
# Prints the first imports' seconds, the imports' seconds, then the before-snapshot seconds
# (restored), then the request seconds.
_CHILD = """\
import sys, time
first = [] if sys.argv[1] == "-" else sys.argv[1].split(",")
modules, mode, spec_path = sys.argv[2].split(","), sys.argv[3], sys.argv[4]
sys.path[:0] = sys.argv[5:]
if mode == "restored":
    import types
    before, after = [], []
    hooks = types.ModuleType("snapshot_restore_py")
    hooks.register_before_snapshot = lambda f, *a, **k: before.append((f, a, k)) or f
    hooks.register_after_restore = lambda f, *a, **k: after.append((f, a, k)) or f
    sys.modules["snapshot_restore_py"] = hooks
started = time.perf_counter()
for name in first:
    __import__(name)
first_done = time.perf_counter()
for name in modules:
    __import__(name)
figures = [first_done - started, time.perf_counter() - first_done]
assert "app" not in sys.modules or callable(sys.modules["app"].handler)
if mode != "import":
    import json, types
    with open(spec_path) as file:
        spec = json.load(file)
    sys.path.append(spec["support"])
    import in_memory_aws
    aws = in_memory_aws.install(spec["items"])
    context = types.SimpleNamespace(**spec["context"])
    if mode == "restored":
        assert before and after, "the handler registered no SnapStart hook"
        started = time.perf_counter()
        for hook, args, kwargs in reversed(before):  # Lambda runs them in reverse order of registration
            hook(*args, **kwargs)
        figures.append(time.perf_counter() - started)
    started = time.perf_counter()
    for hook, args, kwargs in after if mode == "restored" else ():
        hook(*args, **kwargs)
    response = sys.modules["app"].handler(spec["event"], context)
    figures.append(time.perf_counter() - started)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 200 and answer["data"]["pageview"]["code"] == 200, response
    assert aws.calls == spec["calls"], aws.calls
print(" ".join(map(str, figures)))
"""
# Which top-level entries of the installed packages a child imported from.
_LIST_INSTALLED = """\
import sys, sysconfig
from pathlib import Path
sys.path[:0] = sys.argv[5:]
for name in sys.argv[2].split(","):
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
    import_seconds: float  # measured in the child, around the import statements (after the floor's)
    process_seconds: float  # measured from outside: interpreter start, import, exit
    request_seconds: float = 0.0  # the first pageview (with the after-restore hooks, restored)
    snapshot_seconds: float = 0.0  # the before-snapshot hooks (restored only)
    floor_seconds: float = 0.0  # the handler's children: the floor's imports, first and timed apart

    @property
    def init_seconds(self) -> float:
        """(a): the imports (the floor's, then the handler's) and init."""
        return self.floor_seconds + self.import_seconds

    @property
    def first_request_seconds(self) -> float:
        """(b): import and init, then the first request."""
        return self.init_seconds + self.request_seconds


@dataclass(frozen=True)
class ImportTime:
    module: str
    imported_by: str | None  # None: imported by the script itself
    self_us: int
    cumulative_us: int


@dataclass(frozen=True)
class ColdStartResult:
    runs: dict[str, list[Run]]  # by label, in the order they ran in each round
    handler_imports: list[ImportTime]  # one -X importtime run of the handler as built
    restored: list[Run]  # the handler as built, restored after its before-snapshot hooks ran
    floor_modules: tuple[str, ...]  # (c): what the handler's children import first

    @property
    def handler(self) -> list[Run]:
        return self.runs[HANDLER]

    @property
    def boto3(self) -> list[Run]:
        return self.runs[BOTO3]

    def ratio_of(self, label: str) -> float:
        return median_init(self.runs[label]) / median_init(self.boto3)

    @property
    def ratio(self) -> float:
        return self.ratio_of(HANDLER)

    @property
    def floor(self) -> float:
        """(c): the floor's imports as the handler's children timed them, before any project code."""
        return statistics.median(run.floor_seconds for run in self.handler)

    @property
    def init_ratio(self) -> float:
        """(a) / (c), each child's own."""
        return statistics.median(run.init_seconds / run.floor_seconds for run in self.handler)

    @property
    def first_request_ratio(self) -> float:
        """(b) / (c), each child's own."""
        return statistics.median(run.first_request_seconds / run.floor_seconds for run in self.handler)

    @property
    def restored_ratio(self) -> float:
        """(b) restored / (c): a restored copy's first request against the floor of a cold start."""
        return statistics.median(run.request_seconds / run.floor_seconds for run in self.restored)

    @property
    def apart_ratio(self) -> float:
        """(a) / (c) from the cross-check's separate interpreters, by `paired_ratio`."""
        return paired_ratio(
            [run.init_seconds for run in self.runs[HANDLER_ALONE]],
            [run.init_seconds for run in self.runs[THIRD_PARTY_ALONE]],
        )

    def top_modules(self, count: int = TOP_MODULES) -> list[ImportTime]:
        return sorted(self.handler_imports, key=lambda entry: entry.cumulative_us, reverse=True)[:count]

    def self_time_by_package(self) -> list[tuple[str, int]]:
        """Self time summed by top-level package, largest first: where the time goes, without overlap."""
        totals: Counter[str] = Counter()
        for entry in self.handler_imports:
            totals[entry.module.split(".")[0]] += entry.self_us
        return totals.most_common()


def third_party_imports(entries: list[ImportTime]) -> tuple[str, ...]:
    """The modules outside the project and the standard library that project modules import, in
    import order: importing them alone loads every third-party module the handler's import loads
    (those imported by other third-party modules come with them), and runs no project code."""
    return tuple(
        entry.module
        for entry in entries
        if entry.imported_by is not None
        and entry.imported_by.split(".")[0] in PROJECT_PACKAGES
        and entry.module.split(".")[0] not in PROJECT_PACKAGES | sys.stdlib_module_names
    )


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median, over pairs of rounds, of each pair's geometric mean ratio.

    For the cross-check, whose two sides are separate children: they run back to back, so a burst of
    load on this shared machine falls on both, where medians taken apart mix quiet rounds with busy
    ones. And they swap places every
    round (`measure`), since the first child of a round runs slower here (by 20-25 % in a run of
    12 rounds: the handler first gave a median 1.23x the floor, the floor first 0.97x): a pair of
    rounds, one in each order, cancels that. A lone last round counts as it is."""
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True)]
    pairs = [math.sqrt(ratios[index] * ratios[index + 1]) for index in range(0, len(ratios) - 1, 2)]
    return statistics.median(pairs + ratios[len(pairs) * 2 :])


def median_init(runs: list[Run]) -> float:
    return statistics.median(run.init_seconds for run in runs)


def median_process(runs: list[Run]) -> float:
    return statistics.median(run.process_seconds for run in runs)


def stage_function(root: Path, *, bytecode: bool = True) -> list[Path]:
    """The function and the core layer as `sam build` lays them out; returns the sys.path head.

    With bytecode, as built now: the schema's SDL parsed by the build, the layer's botocore slimmed
    as lambda_build does it (the other installed packages are imported from where they are
    installed). Without, as SAM's own build method shipped them: no bytecode and no slimming."""
    task, layer = root / "var/task", root / "opt/python"
    lambda_build.copy_function(REPO_ROOT / "functions/graphql_api", task)
    lambda_build.copy_layer_packages(REPO_ROOT / "layers/core", layer)
    if bytecode:
        installed = Path(sysconfig.get_paths()["purelib"]) / "botocore"
        shutil.copytree(installed, layer / "botocore", ignore=lambda_build.SKIPPED)
        lambda_build.slim_botocore(
            layer / "botocore", lambda_build.services_called(REPO_ROOT / "layers/core")
        )
        lambda_build.parse_graphql_schema(task)
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
    mode: str = "import",
    spec: Path | None = None,
    first: tuple[str, ...] = (),
) -> tuple[str, str]:
    """Runs `script` in a fresh interpreter; returns its stdout and stderr."""
    # -I: no PYTHONPATH (make exports one), no user site, no script folder on sys.path;
    # -B: nothing written, so every run sees the same caches (and the unbuilt copy stays unbuilt).
    flags = ["-I", "-B", *(["-X", "importtime"] if import_time else [])]
    arguments = [",".join(first) or "-", ",".join(modules), mode, str(spec or "-"), *map(str, path_head)]
    command = [sys.executable, *flags, "-c", script, *arguments]
    completed = subprocess.run(  # noqa: S603  # our own interpreter, our own code
        command, env=environment, cwd=path_head[0], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"importing {modules} failed in a fresh interpreter:\n{completed.stderr}")
    return completed.stdout, completed.stderr


def timed_import(
    modules: tuple[str, ...],
    path_head: list[Path],
    environment: dict[str, str],
    *,
    mode: str = "import",
    spec: Path | None = None,
    first: tuple[str, ...] = (),
) -> Run:
    """`modules` imported in a fresh interpreter, after `first` (timed apart: `Run.floor_seconds`)."""
    started = time.perf_counter()
    stdout, _stderr = _child(modules, path_head, environment, mode=mode, spec=spec, first=first)
    process_seconds = time.perf_counter() - started
    # The handler logs to stdout, as in Lambda; the figures are the last line.
    first_seconds, import_seconds, *after = (
        float(value) for value in stdout.strip().splitlines()[-1].split()
    )
    if mode == "restored":
        snapshot_seconds, request_seconds = after
        return Run(import_seconds, process_seconds, request_seconds, snapshot_seconds, first_seconds)
    return Run(import_seconds, process_seconds, after[0] if after else 0.0, floor_seconds=first_seconds)


def write_first_request(root: Path) -> Path:
    """The spec of the first request (event, AWS's answers, context) for the child, and the fake
    AWS module next to it; returns the spec's path."""
    from pixel_core.auth import secret_digest  # noqa: PLC0415  # after bench set the environment
    from pixel_core.clock import utc_now  # noqa: PLC0415
    from pixel_core.models import AppItem, PixelItem, TenantItem  # noqa: PLC0415

    support = root / "bench-support"
    support.mkdir()
    shutil.copy2(Path(in_memory_aws.__file__), support / "in_memory_aws.py")
    now = utc_now()
    items = [
        AppItem(
            *AppItem.key(APP_ID),
            app_id=APP_ID,
            secret_sha256=secret_digest(APP_SECRET),
            tenant_ids={TENANT_ID},
            created_at=now,
        ),
        PixelItem.new(PIXEL_ID, TENANT_ID, created_at=now, domains={DOMAIN}),
        TenantItem(*TenantItem.key(TENANT_ID), tenant_id=TENANT_ID, created_at=now),
    ]
    body = json.dumps(
        {"query": SEED_PAGEVIEW, "variables": {"event": {"pixelId": PIXEL_ID, "domain": DOMAIN}}}
    )
    headers = {"content-type": "application/json", "user-agent": BROWSER, "host": "api.example.com"}
    spec = {
        "support": str(support),
        "items": {in_memory_aws.item_key(item.pk, item.sk): item.serialize() for item in items},
        "event": http_api_event("POST", "/graphql", headers, body.encode(), "203.0.113.10", "POST /graphql"),
        "context": {
            "function_name": "pixel-gateway-bench-GraphQLFunction",
            "memory_limit_in_mb": "512",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:pixel-gateway-bench-GraphQLFunction",
            "aws_request_id": "bench-first-request",
        },
        "calls": FIRST_REQUEST_CALLS,
    }
    path = root / "first-request.json"
    path.write_text(json.dumps(spec))
    return path


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
        stage_installed_without_bytecode(installed_imported_by(("app",), unbuilt, environment), unbuilt[1])
        spec = write_first_request(root)
        _stdout, stderr = _child(("app",), built, environment, import_time=True)
        handler_imports = parse_import_times(stderr)
        floor_modules = third_party_imports(handler_imports)
        # label: (modules, sys.path head, child mode, imported first and timed apart); RESTORED is
        # kept apart from `runs`. The handler's children import the floor first, then the handler
        # (which finds those modules loaded), so that each measures (a), (b) and (c) under the same
        # load of this shared machine (`ColdStartResult`).
        children: dict[str, tuple[tuple[str, ...], list[Path], str, tuple[str, ...]]] = {
            # The cross-check's two sides, back to back (the loop below).
            HANDLER_ALONE: (("app",), built, "import", ()),
            THIRD_PARTY_ALONE: (floor_modules, built, "import", ()),
            HANDLER: (("app",), built, "first-request", floor_modules),
            HANDLER_WITHOUT_BYTECODE: (("app",), unbuilt, "import", ()),
            BOTO3: (("boto3",), built, "import", ()),
            RESTORED: (("app",), built, "restored", floor_modules),
        }
        # One untimed run of each first: the files read come from the page cache in every timed run.
        for modules, path_head, mode, first in children.values() if untimed_first else ():
            timed_import(modules, path_head, environment, mode=mode, spec=spec, first=first)
        timed: dict[str, list[Run]] = {label: [] for label in children}
        for round_number in range(runs):  # alternating, so the machine's load falls on all alike
            # The cross-check's handler and floor back to back, each first every other round
            # (`paired_ratio`).
            order = list(children)
            if round_number % 2:
                order[0], order[1] = order[1], order[0]
            for label in order:
                modules, path_head, mode, first = children[label]
                run = timed_import(modules, path_head, environment, mode=mode, spec=spec, first=first)
                timed[label].append(run)
    restored = timed.pop(RESTORED)
    return ColdStartResult(timed, handler_imports, restored, floor_modules)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def _verdict(ratio: float, target: float) -> str:
    return f"{'met' if ratio <= target else 'NOT met'} ({ratio:.2f}x, target at most {target:.2f}x)"


def figure(result: ColdStartResult) -> Figure:
    runs = len(result.handler)
    table = Figure(
        title="Cold start as the user feels it: init, then the first pageview, against the third-party floor "
        "(fresh interpreters)",
        columns=("", f"median of {runs}, ms", "fastest, ms", "whole process, ms", "vs (c)", "vs boto3 alone"),
    )
    floor, boto3 = result.floor, median_init(result.boto3)

    def row(label: str, seconds: list[float], process: list[Run] | None = None) -> None:
        median = statistics.median(seconds)
        table.add(
            label,
            _ms(median),
            _ms(min(seconds)),
            _ms(median_process(process)) if process else "",
            f"{median / floor:.2f}x",
            f"{median / boto3:.2f}x",
        )

    handler = result.handler
    row(f"(a) {HANDLER}: import and init", [run.init_seconds for run in handler])
    row(
        "(b) (a) + the first pageview, AWS in memory",
        [run.first_request_seconds for run in handler],
        handler,
    )
    row("  of which the first pageview", [run.request_seconds for run in handler])
    row(
        "(b) restored from a snapshot: after-restore hooks + first pageview",
        [run.request_seconds for run in result.restored],
    )
    row(
        "  before-snapshot hooks (once per published version)",
        [run.snapshot_seconds for run in result.restored],
    )
    row(f"(c) {THIRD_PARTY}, first in the handler's interpreters", [run.floor_seconds for run in handler])
    for label in (HANDLER_ALONE, THIRD_PARTY_ALONE, HANDLER_WITHOUT_BYTECODE, BOTO3):
        timed = result.runs[label]
        row(label, [run.init_seconds for run in timed], timed)
    table.add(
        f"top {TOP_MODULES} modules of the handler as built (-X importtime)", "cumulative", "self", "", "", ""
    )
    for entry in result.top_modules():
        table.add(
            f"  {entry.module} (imported by {entry.imported_by or '-'})",
            _ms(entry.cumulative_us / 1e6),
            _ms(entry.self_us / 1e6),
            "",
            "",
            "",
        )
    packages = result.self_time_by_package()
    total_self = sum(us for _package, us in packages) or 1
    table.notes += [
        f"target (a) / (c): {_verdict(result.init_ratio, TARGET_INIT_RATIO)}; "
        f"target (b) / (c): {_verdict(result.first_request_ratio, TARGET_FIRST_REQUEST_RATIO)}; "
        f"(b) restored / (c): {result.restored_ratio:.2f}x (no target: an estimate of a restored copy's "
        "first request, Lambda's restore of the snapshot itself not included). The ratios are each "
        "child's own, medians over the children: a child of the handler imports the floor first, timed "
        "apart, then the handler, which finds those modules loaded, so its (a), (b) and (c) share one "
        "interpreter and this shared machine's load of the moment (here, ratios of separate children "
        "swung by 0.15 between runs; these, by 0.01); the column vs (c) divides medians. The "
        "cross-check, the handler and the floor each imported alone in interpreters of their own, as "
        "Lambda imports the handler (so with the collector off for the floor's imports too, app.py, "
        "which the verdicts leave out); their ratio (median over pairs of rounds of their geometric "
        f"mean ratios, `paired_ratio`) {result.apart_ratio:.2f}x.",
        f"(a) {HANDLER}: `import app` of the function and the core layer staged by devtools/lambda_build.py "
        "(as `sam build` does: /var/task and /opt/python first on sys.path, our modules with bytecode "
        "compiled ahead of time, botocore slimmed as the build slims it), the other installed packages with "
        "their pip-compiled caches, in the template's "
        "environment (STAGE=prod, TABLE_NAME, EVENTS_QUEUE_URL, TOKEN_KMS_KEY_ID, Powertools) with fake "
        "credentials: it builds the executable schema, the app and Mangum, as Lambda's init phase does.",
        "(b): then, in the same interpreter, the seed pageview (credentials inline, a browser's user agent, "
        "a domain of the pixel) through app.handler, AWS answered by bench/in_memory_aws.py at botocore's "
        "HTTP layer: 3 GetItem (app, pixel, tenant) and 1 SendMessage, each serialised, signed and parsed; "
        "the botocore clients, their service models and endpoints are made by this request, as in Lambda. "
        "The browser and server-events handlers are not imported: a cold start loads them on their routes' "
        "first request (graphql_api/routes.py).",
        "(b) restored: init, then the before-snapshot hooks graphql_api/warmup.py registers (botocore's "
        "service models and endpoint data, the seed documents parsed and validated, the bot patterns "
        "compiled), then timed: the after-restore hooks (new random state; no client or credentials "
        "were made before the snapshot) and the same first pageview. The seed pageview's text differs "
        "from the primed one by its credentials, as a real site's does: its parse is not a cache hit.",
        f"{HANDLER_WITHOUT_BYTECODE}: the handler's import with every package it imports from the "
        "installed ones copied into the layer without caches: what SAM's python3.13 build method "
        "shipped, compiled again on every cold start in Lambda's read-only /var/task and /opt.",
        f"(c) {THIRD_PARTY}: {', '.join(result.floor_modules)}: every module outside the project and the "
        "standard library that a project module imports (from the -X importtime run below), imported "
        "in that order with no project code, first in each of the handler's interpreters.",
        f"{BOTO3}: `import boto3` in the same kind of fresh interpreter and environment.",
        "runs alternate, after one untimed run of each; `python -I -B`. Whole process = interpreter "
        "start-up + what is timed + exit, timed from outside (the handler's exit is the shorter: init's "
        "objects are frozen, app.py, so the interpreter's last collection skips them). The top modules "
        "come from one more run with "
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
