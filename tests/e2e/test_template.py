"""The deployable artifacts: template.yaml and samconfig.toml lint clean, `sam build` packages what
Lambda needs, and the BUILT function with the BUILT layer answers a HeroPixel request.

SAM CLI runs from its own virtualenv (.venv-sam) with fake credentials and telemetry off; nothing
here talks to AWS. `sam build` runs once per session into a temporary directory (the repository's
.aws-sam is left alone) and needs PyPI for the layer's requirements.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_aws import FAKE_AWS_ENVIRONMENT
from pixel_core import aws

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = REPO_ROOT / ".venv-sam" / "bin" / "python"
CFN_LINT = REPO_ROOT / ".venv" / "bin" / "cfn-lint"
APP_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
TEMPLATE = REPO_ROOT / "template.yaml"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
LIST_DOMAINS_EVENT = REPO_ROOT / "events" / "graphql_list_domains.json"

FUNCTION_ID = "GraphQLFunction"
LAYER_ID = "CoreLayer"
SMOKE_TABLE_NAME = "pixel-gateway-e2e"

# Only what SAM CLI and the tools need: a fake account, no profile, no telemetry.
TOOL_ENV = {**FAKE_AWS_ENVIRONMENT, "SAM_CLI_TELEMETRY": "0"}


def tool_env(**extra: str) -> dict[str, str]:
    # conftest's use_fake_aws() has already dropped this machine's AWS profile and endpoints.
    return {**os.environ, **TOOL_ENV, **extra}


@dataclass(frozen=True)
class Run:
    args: Sequence[str]
    returncode: int
    output: str
    seconds: float

    def explain(self) -> str:
        return f"$ {' '.join(self.args)}\n(exit {self.returncode} after {self.seconds:.1f}s)\n{self.output}"


def run(args: Sequence[str | Path], *, timeout: float, env: Mapping[str, str] | None = None) -> Run:
    command = [str(arg) for arg in args]
    started = time.monotonic()
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=dict(env) if env is not None else tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(command, completed.returncode, completed.stdout + completed.stderr, time.monotonic() - started)


# ---------------------------------------------------------------------------------------------------
# Template and samconfig
# ---------------------------------------------------------------------------------------------------


@pytest.mark.sam
def test_sam_validate_with_lint_accepts_the_template() -> None:
    # Given the repository's template.yaml
    # When SAM CLI validates it and runs cfn-lint on the transformed template
    result = run([SAM, "validate", "--lint", "--template-file", TEMPLATE], timeout=120)

    # Then it is accepted
    assert result.returncode == 0, result.explain()
    assert "is a valid SAM Template" in result.output, result.explain()


def test_cfn_lint_reports_nothing_for_the_template() -> None:
    # Given the repository's template.yaml
    # When cfn-lint (the dev virtualenv's pinned version) checks it
    result = run([CFN_LINT, TEMPLATE], timeout=120)

    # Then there is no error, warning or informational finding
    assert result.returncode == 0, result.explain()
    assert result.output.strip() == "", result.explain()


@pytest.mark.sam
def test_sam_validate_with_the_prod_config_env_reads_samconfig_and_lints() -> None:
    # Given samconfig.toml, whose [prod.validate.parameters] turns linting on
    # When `sam validate` runs with --config-env prod and no --lint flag
    result = run([SAM, "validate", "--config-env", "prod", "--template-file", TEMPLATE], timeout=120)

    # Then the file is accepted and the lint run (not the basic validation) is what passed
    assert result.returncode == 0, result.explain()
    assert "is a valid SAM Template" in result.output, result.explain()
    assert "basic SAM Validation" not in result.output, result.explain()


# Run with .venv-sam's interpreter: prints, per samconfig section, the keys that SAM CLI's command
# does not have or whose value its option type rejects. Sections map to the modules of the commands.
_SAMCONFIG_CHECK = r"""
import importlib, json, sys, tomllib
import click

COMMANDS = {
    "build": "samcli.commands.build.command",
    "validate": "samcli.commands.validate.validate",
    "deploy": "samcli.commands.deploy.command",
    "local_start_api": "samcli.commands.local.start_api.cli",
    "sync": "samcli.commands.sync.command",
}
commands = {name: importlib.import_module(module).cli for name, module in COMMANDS.items()}
options = {name: {p.name: p for p in cmd.params if p.name} for name, cmd in commands.items()}
with open(sys.argv[1], "rb") as stream:
    config = tomllib.load(stream)
problems = []
for env, sections in config.items():
    if not isinstance(sections, dict):
        continue
    for section, body in sections.items():
        for key, value in body.get("parameters", {}).items():
            owners = [section] if section != "global" else list(commands)
            if section != "global" and section not in commands:
                problems.append(f"{env}.{section}: command not checked by this test")
                continue
            matching = [owner for owner in owners if key in options[owner]]
            if not matching:
                problems.append(f"{env}.{section}.parameters.{key}: no such option")
                continue
            for owner in matching:
                param = options[owner][key]
                if param.multiple and not isinstance(value, list):
                    value = [value]  # what SAM CLI's handle_parse_options does
                try:
                    param.type_cast_value(click.Context(commands[owner]), value)
                except click.BadParameter as error:
                    problems.append(f"{env}.{section}.parameters.{key}={value!r}: {error}")
print(json.dumps(problems))
"""


@pytest.mark.sam
def test_every_samconfig_key_is_an_option_of_its_sam_cli_command_with_a_valid_value() -> None:
    # Given samconfig.toml and the installed SAM CLI's click commands
    # When every [env.command.parameters] key is looked up among that command's options
    result = run([SAM_PYTHON, "-c", _SAMCONFIG_CHECK, SAMCONFIG], timeout=120)

    # Then each key exists (SAM CLI silently ignores misspelt ones) and its value converts
    assert result.returncode == 0, result.explain()
    assert json.loads(result.output.strip().splitlines()[-1]) == [], result.explain()


def test_samconfig_environments_deploy_their_own_stack_with_their_own_stage() -> None:
    # Given samconfig.toml and the template's Stage parameter
    with SAMCONFIG.open("rb") as stream:
        config = tomllib.load(stream)
    allowed_stages = template_allowed_stages()

    # When the deploy settings of both environments are read (environments do not inherit)
    settings = {
        env: {**config[env]["global"]["parameters"], **config[env]["deploy"]["parameters"]}
        for env in ("default", "prod")
    }

    # Then each deploys a distinct stack, with a Stage the template allows, and the same safety nets
    assert config["version"] == 0.1
    assert settings["default"]["stack_name"] == "pixel-gateway"
    assert settings["prod"]["stack_name"] == "pixel-gateway-prod"
    assert settings["default"]["parameter_overrides"] == "Stage=dev"
    assert settings["prod"]["parameter_overrides"] == "Stage=prod"
    for env, values in settings.items():
        stage = values["parameter_overrides"].removeprefix("Stage=")
        assert stage in allowed_stages, f"{env}: Stage={stage} is not in {allowed_stages}"
        assert values["capabilities"] == "CAPABILITY_IAM", env
        assert values["confirm_changeset"] is True, env
        assert values["resolve_s3"] is True, env


def template_allowed_stages() -> list[str]:
    from devtools.template import load_template

    allowed: list[str] = load_template()["Parameters"]["Stage"]["AllowedValues"]
    return allowed


# ---------------------------------------------------------------------------------------------------
# sam build
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    directory: Path
    run: Run
    repo_sam_dir_unchanged: bool

    @property
    def function_dir(self) -> Path:
        return self.directory / FUNCTION_ID

    @property
    def layer_python_dir(self) -> Path:
        return self.directory / LAYER_ID / "python"


def repo_sam_dir_state() -> list[tuple[str, int]]:
    """What the repository's .aws-sam holds (path, mtime_ns): empty when it does not exist."""
    sam_dir = REPO_ROOT / ".aws-sam"
    if not sam_dir.exists():
        return []
    return sorted((str(p.relative_to(sam_dir)), p.stat().st_mtime_ns) for p in [sam_dir, *sam_dir.rglob("*")])


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """`sam build` once per session, into a temporary build directory.

    --no-cached overrides samconfig's `cached = true`: a cached build always writes its dependency
    folders to ./.aws-sam/deps (not under --cache-dir) and prunes the ones its own cache does not
    list, which would throw away a developer's cached dependencies.
    """
    root = tmp_path_factory.mktemp("sam")
    build_dir = root / "build"
    repo_sam_dir_before = repo_sam_dir_state()
    result = run(
        [
            SAM,
            "build",
            "--template-file",
            TEMPLATE,
            "--build-dir",
            build_dir,
            "--cache-dir",
            root / "cache",
            "--no-cached",
        ],
        timeout=240,
    )
    assert result.returncode == 0, result.explain()
    return Build(build_dir, result, repo_sam_dir_unchanged=repo_sam_dir_state() == repo_sam_dir_before)


@pytest.mark.sam
def test_sam_build_succeeds_into_its_own_directory_without_touching_the_repository_aws_sam_folder(
    sam_build: Build,
) -> None:
    # Given the session's `sam build` (samconfig: cached, parallel)
    # When its output and built template are inspected
    built_template = (sam_build.directory / "template.yaml").read_text(encoding="utf-8")

    # Then the build reports success, the code locations are the build's own folders
    assert "Build Succeeded" in sam_build.run.output, sam_build.run.explain()
    assert f"CodeUri: {FUNCTION_ID}" in built_template
    assert f"ContentUri: {LAYER_ID}" in built_template
    # And the repository's own .aws-sam was neither created nor changed
    assert sam_build.repo_sam_dir_unchanged, sam_build.run.explain()


@pytest.mark.sam
def test_built_function_contains_the_handler_the_schema_files_and_the_snippet_with_the_links_resolved(
    sam_build: Build,
) -> None:
    # Given the built function folder and the repository's schema folder
    schema_dir = sam_build.function_dir / "graphql_api" / "schema"
    source_schemas = sorted(path.name for path in (REPO_ROOT / "schema").glob("*.graphql"))

    # When the build output is inspected
    built_schemas = sorted(path.name for path in schema_dir.glob("*.graphql"))

    # Then app.py is there and every .graphql file is a real file with the source's content
    assert (sam_build.function_dir / "app.py").is_file()
    assert (sam_build.function_dir / "graphql_api" / "server.py").is_file()
    assert not schema_dir.is_symlink(), "the schema folder must be copied, not linked"
    assert source_schemas, "the repository has no schema/*.graphql files"
    assert built_schemas == source_schemas
    for name in built_schemas:
        built = schema_dir / name
        assert built.is_file(), name
        assert not built.is_symlink(), name
        assert built.read_bytes() == (REPO_ROOT / "schema" / name).read_bytes(), name
    # And so is the browser snippet the function serves (a link to web/px.js)
    snippet = sam_build.function_dir / "graphql_api" / "px.js"
    assert snippet.is_file()
    assert not snippet.is_symlink()
    assert snippet.read_bytes() == (REPO_ROOT / "web" / "px.js").read_bytes()


@pytest.mark.sam
def test_built_layer_contains_pixel_core_and_the_installed_runtime_dependencies(sam_build: Build) -> None:
    # Given the built layer's python/ folder (what Lambda mounts at /opt/python)
    python_dir = sam_build.layer_python_dir
    source_modules = sorted(p.name for p in (REPO_ROOT / "layers/core/pixel_core").glob("*.py"))

    # When the packages are looked up in it
    built_modules = sorted(p.name for p in (python_dir / "pixel_core").glob("*.py"))
    installed = {
        package: (python_dir / package / "__init__.py").is_file()
        for package in ("ariadne", "pynamodb", "mangum", "aws_lambda_powertools", "idna", "graphql")
    }

    # Then pixel_core is complete and each dependency is installed as a package
    assert built_modules == source_modules
    assert installed == dict.fromkeys(installed, True)
    # And botocore carries the data of the services the functions call alone (lambda_build.slim_botocore)
    botocore_data = python_dir / "botocore" / "data"
    assert sorted(path.name for path in botocore_data.iterdir() if path.is_dir()) == sorted(aws.SERVICES)


@pytest.mark.sam
def test_built_layer_is_pure_python_so_the_arm64_layer_imports_on_any_host(sam_build: Build) -> None:
    # Given the built layer (built for arm64)
    # When it is searched for compiled extension modules
    compiled = sorted(
        str(path.relative_to(sam_build.layer_python_dir))
        for pattern in ("*.so", "*.pyd")
        for path in sam_build.layer_python_dir.rglob(pattern)
    )

    # Then there are none (requirements.txt promises pure Python dependencies)
    assert compiled == []


# Imports the built function from copies whose sources are all newer than their bytecode, as after a
# zip round trip, and prints -v's "code object from" lines: each names the .pyc it read or the .py
# it had to compile.
_IMPORT_VERBOSE = "import sys; sys.path[:0] = sys.argv[1:]; import app"


def unchecked_hash_bytecode(source: Path) -> bool:
    """True when source has a .pyc for this interpreter that Python uses without looking at the source."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    flags = int.from_bytes(cached.read_bytes()[4:8], "little") if cached.is_file() else None
    return flags == 0b01  # PEP 552: hash-based (bit 0), do not check the source (bit 1 clear)


@pytest.mark.sam
def test_built_function_and_layer_carry_unchecked_hash_bytecode_for_every_module(sam_build: Build) -> None:
    # Given the built function and layer (Lambda mounts them read-only: nothing is compiled there)
    # When every Python source in them is checked for its compiled bytecode
    without = {
        str(source.relative_to(sam_build.directory))
        for root in (sam_build.function_dir, sam_build.layer_python_dir)
        for source in root.rglob("*.py")
        if not unchecked_hash_bytecode(source)
    }
    packages = {
        source.relative_to(sam_build.layer_python_dir).parts[0]
        for source in sam_build.layer_python_dir.rglob("*.py")
    }

    # Then each has bytecode Python uses whatever the files' times, our modules and dependencies alike
    assert without == set()
    assert {"pixel_core", "graphql", "ariadne", "botocore", "pynamodb", "aws_lambda_powertools"} <= packages


@pytest.mark.sam
def test_built_function_imports_from_its_bytecode_without_compiling_anything(
    sam_build: Build, tmp_path: Path
) -> None:
    # Given copies of the built function and layer whose sources are all newer than their bytecode
    task, layer = tmp_path / "task", tmp_path / "layer"
    shutil.copytree(sam_build.function_dir, task)
    shutil.copytree(sam_build.layer_python_dir, layer)
    later = time.time() + 3600
    for source in [*task.rglob("*.py"), *layer.rglob("*.py")]:
        os.utime(source, (later, later))
    env = tool_env(TABLE_NAME=SMOKE_TABLE_NAME, STAGE="prod", POWERTOOLS_SERVICE_NAME="pixel-gateway")

    # When the handler module is imported from them in a fresh interpreter that writes nothing
    result = run([APP_PYTHON, "-I", "-B", "-v", "-c", _IMPORT_VERBOSE, task, layer], timeout=120, env=env)
    loaded = [
        line.split("code object from ", 1)[1].strip("'")
        for line in result.output.splitlines()
        if "code object from " in line
    ]
    built = [path for path in loaded if Path(path).is_relative_to(tmp_path)]

    # Then every module of the function and the layer came from its .pyc: none was compiled
    assert result.returncode == 0, result.explain()
    assert [path for path in built if not path.endswith(".pyc")] == []
    assert any("/task/" in path for path in built), built
    assert any("/layer/graphql/" in path for path in built), built


_PARSED_BY_BUILD = (
    "import sys; sys.path[:0] = sys.argv[1:]; from graphql_api import sdl; "
    "print(sdl.parsed_by_build(sdl.read_type_defs()) is not None)"
)


@pytest.mark.sam
def test_built_function_carries_its_schemas_parse_for_the_built_layers_graphql_core(sam_build: Build) -> None:
    # Given the built function and layer, in Lambda's order on sys.path
    # When the function looks for the build's parse of its schema, with the layer's graphql-core
    result = run(
        [APP_PYTHON, "-I", "-B", "-c", _PARSED_BY_BUILD, sam_build.function_dir, sam_build.layer_python_dir],
        timeout=60,
    )

    # Then it finds it (the layer's graphql-core is the one the build parsed with): no parse at init
    assert result.returncode == 0, result.explain()
    assert result.output.strip().splitlines()[-1] == "True"


# ---------------------------------------------------------------------------------------------------
# Smoke test of the built artifacts
# ---------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter (-I: no PYTHONPATH, no script folder on sys.path). The built function
# and the built layer come first on sys.path, in Lambda's order (/var/task, then /opt/python); the
# repository root comes last, only for devtools. Everything happens under moto's mock_aws.
_SMOKE_SCRIPT = r"""
import json, sys
from pathlib import Path

spec = json.loads(sys.argv[1])
sys.path[:0] = [spec["function_dir"], spec["layer_dir"]]
sys.path.append(spec["repo_root"])

from moto import mock_aws

class LambdaContext:
    function_name = "pixel-gateway-GraphQLFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pixel-gateway-GraphQLFunction"
    aws_request_id = "6f2a3c1e-0b7d-4c55-9a41-1d2e3f405162"
    log_group_name = "/aws/lambda/pixel-gateway-GraphQLFunction"
    log_stream_name = "2026/11/25/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self):
        return 10_000

with mock_aws():
    from devtools.provision import provision
    from devtools.template import load_template

    provision(load_template(), dynamodb_endpoint="https://dynamodb.us-east-1.amazonaws.com",
              sqs_endpoint=None, table_names={"PixelTable": spec["table_name"]})

    from pixel_core import auth, pixel_domains, pixels

    auth.create_tenant(spec["tenant_id"])
    auth.create_app({spec["tenant_id"]}, app_id=spec["app_id"], app_secret=spec["app_secret"])
    principal = auth.authenticate(spec["app_id"], spec["app_secret"])
    pixels.create_pixel(principal, tenant_id=spec["tenant_id"], pixel_id=spec["pixel_id"], name=None)
    pixel_domains.add_domain(principal, spec["pixel_id"], spec["domain"])

    import app

    response = app.handler(spec["event"], LambdaContext())

import aws_lambda_powertools, ariadne, graphql, graphql_api, mangum, pixel_core, pynamodb
modules = {m.__name__: m.__file__ for m in
           (app, graphql_api, pixel_core, ariadne, graphql, mangum, pynamodb, aws_lambda_powertools)}
Path(spec["result_path"]).write_text(json.dumps({"modules": modules, "response": response}))
"""


def list_domains_event(*, app_id: str, app_secret: str) -> tuple[dict[str, Any], int]:
    """The sample event from events/, with real credentials in `variables.auth`; and its pixel id."""
    event: dict[str, Any] = json.loads(LIST_DOMAINS_EVENT.read_text(encoding="utf-8"))
    body = json.loads(event["body"])
    body["variables"]["auth"] = {"appId": app_id, "appSecret": app_secret}
    event["body"] = json.dumps(body, separators=(",", ":"))
    event["headers"]["content-length"] = str(len(event["body"].encode()))
    return event, int(body["variables"]["event"]["pixel_id"])


def test_sample_list_domains_event_is_an_http_api_v2_post_to_graphql_with_placeholder_credentials() -> None:
    # Given the sample event in events/
    event = json.loads(LIST_DOMAINS_EVENT.read_text(encoding="utf-8"))

    # When its envelope and GraphQL body are read
    body = json.loads(event["body"])

    # Then it is a payload v2 event for the GraphQL route, carrying a list-domains request
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /graphql"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/graphql"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["content-length"] == str(len(event["body"].encode()))
    assert event["isBase64Encoded"] is False
    assert "domains(" in body["query"]
    assert body["variables"]["event"]["action"] == "list"
    assert set(body["variables"]["auth"]) == {"appId", "appSecret"}


@pytest.mark.sam
def test_built_function_with_built_layer_answers_the_sample_list_domains_event_with_the_added_domain(
    sam_build: Build, tmp_path: Path
) -> None:
    # Given the sample list-domains event with the credentials of an app of tenant "e2e-tenant",
    # whose pixel (the event's pixel id) has one domain, all in moto
    event, pixel_id = list_domains_event(app_id="app_e2e0123456789ab", app_secret="e2e-secret-0123456789")
    result_path = tmp_path / "result.json"
    spec = {
        "function_dir": str(sam_build.function_dir),
        "layer_dir": str(sam_build.layer_python_dir),
        "repo_root": str(REPO_ROOT),
        "table_name": SMOKE_TABLE_NAME,
        "tenant_id": "e2e-tenant",
        "app_id": "app_e2e0123456789ab",
        "app_secret": "e2e-secret-0123456789",
        "pixel_id": pixel_id,
        "domain": "shop.example.com",
        "event": event,
        "result_path": str(result_path),
    }
    env = tool_env(TABLE_NAME=SMOKE_TABLE_NAME, STAGE="dev", POWERTOOLS_SERVICE_NAME="pixel-gateway")

    # When the BUILT handler is invoked with it in a fresh interpreter
    invocation = run([APP_PYTHON, "-I", "-c", _SMOKE_SCRIPT, json.dumps(spec)], timeout=120, env=env)

    # Then every application module was imported from the build output, not from the source tree
    assert invocation.returncode == 0, invocation.explain()
    result = json.loads(result_path.read_text(encoding="utf-8"))
    modules = {name: Path(file) for name, file in result["modules"].items()}
    assert modules["app"] == sam_build.function_dir / "app.py"
    assert modules["graphql_api"].is_relative_to(sam_build.function_dir), modules
    for name in ("pixel_core", "ariadne", "graphql", "mangum", "pynamodb", "aws_lambda_powertools"):
        assert modules[name].is_relative_to(sam_build.layer_python_dir), (name, modules[name])

    # And the answer is HTTP 200 with the HeroPixel envelope listing the domain
    response = result["response"]
    assert response["statusCode"] == 200, invocation.explain()
    answer = json.loads(response["body"])
    assert answer.get("errors") is None, answer
    domains = answer["data"]["domains"]
    assert domains["code"] == 200, answer
    assert domains["message"] == "Success"
    assert [(d["pixel_id"], d["domain"]) for d in domains["data"]["domains"]] == [
        (pixel_id, "shop.example.com")
    ]
