"""What `sam build` runs for every function and the layer (template.yaml: `BuildMethod: makefile`,
devtools/sam_build/Makefile): the code as Lambda mounts it, with bytecode compiled ahead of time.

Why by hand: SAM's python3.13 build method unpacks wheels and copies sources without compiling
them, and /var/task and /opt are read-only in Lambda, so every cold start compiled graphql-core,
botocore, Ariadne, PynamoDB and our own modules from source again. The bytecode is
"unchecked-hash": Python uses it whatever the files' modification times, which the deployment zip
(two-second resolution) and Lambda's unpacking need not keep. It is compiled by the same Python minor
version as the runtime (3.13), as bytecode is only read by the version that wrote it.

The layer's botocore keeps the data of the services the functions call alone (`slim_botocore`):
its 400-odd services' models are 28 MB of the layer, and making the first client lists every one of
their folders and decodes the 1.2 MB endpoints.json; with the docs left out of the models too, the
first pageview's two clients read 40 KB instead of 1.4 MB (docs/operations.md, "Cold start").

The GraphQL function's schema is parsed here too (`parse_graphql_schema`): graphql-core's parser is
pure Python, and parsing the SDL was some 15 % of the function's own init.

Standard library only: `make` runs it with the project's .venv when there is one, else with a bare
python3.13.

    python devtools/lambda_build.py layer SOURCE_DIR ARTIFACTS_DIR
    python devtools/lambda_build.py function SOURCE_DIR ARTIFACTS_DIR
"""

import argparse
import ast
import compileall
import gzip
import importlib.util
import json
import py_compile
import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

RUNTIME_VERSION = (3, 13)
# Where Lambda mounts each kind of artifact; compiled into tracebacks instead of the build folder.
LAYER_MOUNT = "/opt/python"
FUNCTION_MOUNT = "/var/task"
# The template's functions and layer run on arm64 (Graviton).
PLATFORM = "manylinux2014_aarch64"
# Where the layer's source names the AWS services the functions call (pixel_core.aws.SERVICES).
SERVICES_MODULE = "pixel_core/aws.py"
# The GraphQL function's module that parses its schema's SDL for it (graphql_api/sdl.py).
SCHEMA_PARSER = "graphql_api/sdl.py"
DOCUMENTATION_KEYS = frozenset({"documentation", "documentationUrl"})
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "requirements.txt", "tests")


def compile_bytecode(root: Path, mount: str) -> None:
    """Writes an unchecked-hash .pyc beside every .py under root, as Lambda will see it at `mount`."""
    compiled = compileall.compile_dir(
        root,
        ddir=mount,
        quiet=1,
        workers=0,  # one per core
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not compiled:
        raise SystemExit(f"lambda_build: some module under {root} does not compile")


def build_layer(source: Path, artifacts: Path) -> None:
    """requirements.txt installed for arm64 plus the layer's packages, under python/ as Lambda wants."""
    python_dir = artifacts / "python"
    # --no-compile: pip's bytecode is checked against modification times, which do not survive.
    # --only-binary: the dependencies are pure Python wheels (requirements.txt), so no host compiler
    # can slip x86 code into an arm64 layer.
    subprocess.run(  # our own interpreter's pip, our own requirements file
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            f"--platform={PLATFORM}",
            "--implementation=cp",
            f"--python-version={RUNTIME_VERSION[0]}.{RUNTIME_VERSION[1]}",
            "--upgrade",
            "--target",
            str(python_dir),
            "--requirement",
            str(source / "requirements.txt"),
        ],
        check=True,
    )
    shutil.rmtree(python_dir / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    slim_botocore(python_dir / "botocore", services_called(source))
    copy_layer_packages(source, python_dir)
    compile_bytecode(python_dir, LAYER_MOUNT)


def services_called(layer_source: Path) -> tuple[str, ...]:
    """pixel_core.aws.SERVICES, read from its source: importing it would import botocore."""
    module = ast.parse((layer_source / SERVICES_MODULE).read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == ["SERVICES"]:
            services: tuple[str, ...] = ast.literal_eval(node.value)
            return services
    raise SystemExit(f"lambda_build: {SERVICES_MODULE} defines no SERVICES")


def slim_botocore(botocore_dir: Path, services: Collection[str]) -> None:
    """Drops botocore's data for every service but `services`, their examples, the documentation of
    their models and the other services' endpoints; botocore reads none of it to make and use a client
    (documentation only feeds docstrings and `help`)."""
    data = botocore_dir / "data"
    missing = sorted(set(services) - {path.name for path in data.iterdir()})
    if missing:
        raise SystemExit(f"lambda_build: botocore has no data for {missing}")
    for path in data.iterdir():
        if path.is_dir() and path.name not in services:
            shutil.rmtree(path)
    for path in data.glob("*/*/examples-1.json"):
        path.unlink()
    for path in data.glob("*/*/service-2.json*"):
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as file:
            model = json.load(file)
        with opener(path, "wt", encoding="utf-8") as file:
            json.dump(_without_documentation(model), file, separators=(",", ":"))
    endpoints_path = data / "endpoints.json"
    endpoints = json.loads(endpoints_path.read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: entry for name, entry in partition["services"].items() if name in services
        }
    endpoints_path.write_text(json.dumps(endpoints, separators=(",", ":")), encoding="utf-8")


def _without_documentation(node: Any) -> Any:
    # Only text is documentation: a structure may have a member named "documentation".
    if isinstance(node, dict):
        return {
            key: _without_documentation(value)
            for key, value in node.items()
            if not (key in DOCUMENTATION_KEYS and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_documentation(value) for value in node]
    return node


def copy_layer_packages(source: Path, python_dir: Path) -> None:
    """The layer's own packages (pixel_core), without caches."""
    for package in sorted(path for path in source.iterdir() if (path / "__init__.py").is_file()):
        shutil.copytree(package, python_dir / package.name, ignore=SKIPPED, dirs_exist_ok=True)


def copy_function(source: Path, artifacts: Path) -> None:
    """The function's folder as it is, links resolved (the schema is a link to the repository's)."""
    shutil.copytree(source, artifacts, ignore=SKIPPED, symlinks=False, dirs_exist_ok=True)


def parse_graphql_schema(artifacts: Path) -> None:
    """For a function with a GraphQL schema, its SDL parsed here once instead of at every cold start
    (graphql_api/sdl.py says how the function checks it is still the parse of its SDL). That takes
    graphql-core, which a bare python3.13 lacks: then the function parses it at run time, as it
    does from the sources."""
    if not (artifacts / SCHEMA_PARSER).is_file():
        return
    if importlib.util.find_spec("graphql") is None:
        print(f"lambda_build: no graphql-core for {sys.executable}; the schema is parsed at run time")
        return
    module = SCHEMA_PARSER.removesuffix(".py").replace("/", ".")
    subprocess.run([sys.executable, "-m", module], cwd=artifacts, check=True)  # our own module


def build_function(source: Path, artifacts: Path) -> None:
    copy_function(source, artifacts)
    parse_graphql_schema(artifacts)
    compile_bytecode(artifacts, FUNCTION_MOUNT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda_build", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("layer", "function"))
    parser.add_argument("source", type=Path)
    parser.add_argument("artifacts", type=Path)
    arguments = parser.parse_args(argv)
    if sys.version_info[:2] != RUNTIME_VERSION:
        found = ".".join(map(str, sys.version_info[:2]))
        parser.error(
            f"needs Python {RUNTIME_VERSION[0]}.{RUNTIME_VERSION[1]}, as the runtime; this is {found}"
        )
    build = build_layer if arguments.kind == "layer" else build_function
    build(arguments.source.resolve(), arguments.artifacts.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
