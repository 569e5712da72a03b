"""`make services` for `sam local`: the backing services run as a real process, the --env-vars file
it writes names every function and every variable they read, its URLs answer, SAM's own code gives
the functions its values, and the README's commands are the printed ones, with flags SAM CLI knows.

No Docker here: what a container would do is checked from this machine, `host.docker.internal`
read as 127.0.0.1."""

import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devtools import services
from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_meta import FakeMeta
from devtools.moto_server import MotoServerProcess
from devtools.net import free_port
from devtools.template import load_template, resources_of_type

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "docs" / "operations.md"
CONFIG_SOURCE = REPO_ROOT / "layers" / "core" / "pixel_core" / "config.py"
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = REPO_ROOT / ".venv-sam" / "bin" / "python"
READY_LINE = "Ctrl-C stops the services."
SDK_VARIABLES = {"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_KMS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
QUEUE_VARIABLE = re.compile(r"[A-Z]+_QUEUE_URL")


@dataclass(frozen=True)
class RunningServices:
    env_file: Path
    output: str
    ports: dict[str, int]

    def env_vars(self) -> dict[str, dict[str, str]]:
        loaded: dict[str, dict[str, str]] = json.loads(self.env_file.read_text(encoding="utf-8"))
        return loaded


def _wait_for(log: Path, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        if READY_LINE in text:
            return text
        if process.poll() is not None:
            raise AssertionError(f"make services exited ({process.returncode}):\n{text}")
        time.sleep(0.2)
    raise AssertionError(f"make services not ready within {timeout} s:\n{log.read_text(encoding='utf-8')}")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServices]:
    """`python -m devtools.services` (what `make services` runs) on free ports, stopped with SIGINT."""
    work = tmp_path_factory.mktemp("services")
    ports = {"DYNAMODB_LOCAL_PORT": free_port(), "MOTO_PORT": free_port(), "META_PORT": free_port()}
    # The test suite's own settings (fake endpoints, table names, stage) are not make services'.
    dropped = {"GRAPH_API_BASE_URL", "TABLE_NAME", "STAGE", "SERVICES_HOST"}
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    env.update({name: str(port) for name, port in ports.items()})
    env.update(DEV_DATA_DIR=str(work / "dynamodb"), SAM_ENV_FILE=str(work / "sam-env.json"))
    layers = [REPO_ROOT / "layers" / "core", REPO_ROOT / "functions" / "graphql_api", REPO_ROOT]
    env.setdefault("PYTHONPATH", os.pathsep.join(str(path) for path in layers))
    log = work / "services.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.services"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        text = _wait_for(log, process, timeout=90)
        yield RunningServices(env_file=work / "sam-env.json", output=text, ports=ports)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    stopped = log.read_text(encoding="utf-8")
    assert returncode == 0, stopped
    assert "Stopped DynamoDB Local." in stopped, stopped
    assert "Backing services stopped." in stopped, stopped


def _on_this_machine(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == services.CONTAINER_HOST, url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))


def _readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## With Docker\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/operations.md has no '## With Docker' section"
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block, "the 'With Docker' section has no ```bash block"
    return block.group(1)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from Linux's /proc/net/tcp and tcp6 (hex, each 32-bit
    word little-endian); an IPv4-mapped IPv6 address (Java's sockets) as its IPv4 address."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            packed = b"".join(
                bytes.fromhex(address_hex[i : i + 8])[::-1] for i in range(0, len(address_hex), 8)
            )
            address = ipaddress.ip_address(packed)
            mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
            addresses.add(str(mapped or address))
    return addresses


# The file


def test_the_env_file_names_every_function_and_every_variable_they_read(running: RunningServices) -> None:
    # Given the file `make services` wrote, the template, and what pixel_core/config.py reads
    env_vars = running.env_vars()
    template = load_template()
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    configuration = set(services.configuration_variables())
    # read independently of the recorder: every environ.get("X") / environ["X"] of config.py
    in_source = set(re.findall(r"environ(?:\.get\(|\[)\s*\"([A-Z0-9_]+)\"", CONFIG_SOURCE.read_text()))
    # Then the recorder found every one, and the file has every function, each with every variable
    assert in_source
    assert in_source <= configuration
    assert set(env_vars) == functions
    for function_id, declared in services.declared_variables(template).items():
        names = set(env_vars[function_id])
        missing = (set(declared) | configuration | SDK_VARIABLES) - names
        assert not missing, f"{function_id} lacks {sorted(missing)}"
        # and nothing points at this machine's loopback, which in a container is the container
        for name, value in env_vars[function_id].items():
            assert isinstance(value, str), name
            assert "127.0.0.1" not in value, (name, value)
            assert "localhost" not in value, (name, value)


def test_the_env_file_points_at_the_services_that_are_running(running: RunningServices) -> None:
    # Given each function's variables, host.docker.internal read as this machine
    for function_id, variables in running.env_vars().items():
        region = variables["AWS_REGION"]
        credentials = {
            "aws_access_key_id": variables["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": variables["AWS_SECRET_ACCESS_KEY"],
            "region_name": region,
        }
        # When DynamoDB, SQS, KMS and the fake Meta are called through its URLs
        dynamodb = boto3.client(
            "dynamodb", endpoint_url=_on_this_machine(variables["DYNAMODB_ENDPOINT_URL"]), **credentials
        )
        sqs = boto3.client(
            "sqs", endpoint_url=_on_this_machine(variables["AWS_ENDPOINT_URL_SQS"]), **credentials
        )
        kms = boto3.client(
            "kms", endpoint_url=_on_this_machine(variables["AWS_ENDPOINT_URL_KMS"]), **credentials
        )
        # Then each answers: the table, every queue, the key, what Meta received
        assert variables["TABLE_NAME"] in dynamodb.list_tables()["TableNames"], function_id
        queues = {name: url for name, url in variables.items() if QUEUE_VARIABLE.fullmatch(name)}
        assert {"EVENTS_QUEUE_URL", "PUBLISH_QUEUE_URL", "CLEANUP_QUEUE_URL"} <= set(queues)
        for name, url in queues.items():
            found = sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"]
            assert urllib.parse.urlsplit(found).path == urllib.parse.urlsplit(url).path, name
            attributes = sqs.get_queue_attributes(QueueUrl=_on_this_machine(url), AttributeNames=["QueueArn"])
            assert attributes["Attributes"]["QueueArn"].endswith(url.rsplit("/", 1)[1]), name
        key = kms.describe_key(KeyId=variables["TOKEN_KMS_KEY_ID"])["KeyMetadata"]
        assert key["Enabled"], function_id
        received = _on_this_machine(variables["GRAPH_API_BASE_URL"]) + "/__received"
        with urllib.request.urlopen(received, timeout=5) as answer:  # loopback
            assert answer.status == 200
            json.loads(answer.read())


def test_the_services_listen_on_loopback_by_default(running: RunningServices) -> None:
    # Given make services started without SERVICES_HOST
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    # Then DynamoDB Local, moto and the fake Meta listen on 127.0.0.1 only
    assert _listening_addresses(running.ports["DYNAMODB_LOCAL_PORT"]) == {"127.0.0.1"}
    assert _listening_addresses(running.ports["MOTO_PORT"]) == {"127.0.0.1"}
    assert _listening_addresses(running.ports["META_PORT"]) == {"127.0.0.1"}


def test_services_host_0_0_0_0_makes_every_service_listen_on_every_interface() -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    # Given the host SERVICES_HOST=0.0.0.0 asks for
    host = services.services_host({"SERVICES_HOST": "0.0.0.0"})  # noqa: S104
    # When DynamoDB Local, moto and the fake Meta start on it
    with (
        DynamoDBLocal(host=host) as dynamodb,
        MotoServerProcess(port=free_port(), host=host) as moto,
        FakeMeta(host=host) as meta,
    ):
        meta_port = urllib.parse.urlsplit(meta.base_url).port
        assert meta_port is not None
        # Then they listen on every interface, and their URLs (for this machine) stay loopback
        # (Java's wildcard socket is IPv6's "::", which takes IPv4 too)
        assert _listening_addresses(dynamodb.port) == {"::"}
        assert _listening_addresses(moto.port) == {"0.0.0.0"}  # noqa: S104
        assert _listening_addresses(meta_port) == {"0.0.0.0"}  # noqa: S104
        assert moto.endpoint_url.startswith("http://127.0.0.1:")
        assert dynamodb.endpoint_url.startswith("http://127.0.0.1:")


def test_services_host_is_loopback_unless_every_interface_is_asked_for() -> None:
    assert services.services_host({}) == "127.0.0.1"
    with pytest.raises(SystemExit, match="SERVICES_HOST must be"):
        services.services_host({"SERVICES_HOST": "10.1.2.3"})


def test_only_loopback_urls_are_rewritten_for_a_container() -> None:
    assert services.as_seen_from_a_container("http://127.0.0.1:8000") == "http://host.docker.internal:8000"
    assert (
        services.as_seen_from_a_container("http://localhost:5100/123456789012/q")
        == "http://host.docker.internal:5100/123456789012/q"
    )
    # GRAPH_API_BASE_URL set to Meta itself stays Meta
    assert services.as_seen_from_a_container("https://graph.facebook.com") == "https://graph.facebook.com"


# What SAM CLI makes of it: its own code, from .venv-sam

_SAM_RESOLVE = """
import json, sys
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables

template, env_file = sys.argv[1], sys.argv[2]
with open(env_file) as stream:
    overrides = json.load(stream)
stacks, _ = SamLocalStackProvider.get_stacks(template)
resolved = {}
for function in SamFunctionProvider(stacks).get_all():
    variables = (function.environment or {}).get("Variables", {})
    file_values = {**overrides.get("Parameters", {}), **overrides.get(function.name, {})}
    environment = EnvironmentVariables(
        function.name, function.memory, function.timeout, function.handler,
        variables=variables, shell_env_values={}, override_values=file_values,
        aws_creds={"region": "us-east-1", "key": "local", "secret": "local"},
    )
    resolved[function.name] = environment.resolve()
print(json.dumps(resolved))
"""


@pytest.mark.sam
def test_sam_gives_the_functions_the_file_values_and_the_warning_names_what_it_drops(
    running: RunningServices,
) -> None:
    # Given the file, and what SAM CLI's own code resolves from it for each function
    env_vars = running.env_vars()
    template = load_template()
    completed = subprocess.run(
        [str(SAM_PYTHON), "-c", _SAM_RESOLVE, str(REPO_ROOT / "template.yaml"), str(running.env_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    resolved: dict[str, dict[str, str]] = json.loads(completed.stdout)
    configuration = services.configuration_variables()
    declared_anywhere = {name for names in services.declared_variables(template).values() for name in names}
    dropped_that_matter = set()
    for function_id, variables in env_vars.items():
        given = resolved[function_id]
        for name, value in variables.items():
            if given.get(name) == value:
                continue  # SAM gives it as written
            # Then what SAM does not give is the configuration's own default, or a variable some other
            # function declares (a function declares what it uses), or one the warning names
            if configuration.get(name) == value or name in declared_anywhere:
                continue
            dropped_that_matter.add(name)
    warning = re.search(r"template\.yaml declares no (.*?): SAM", running.output)
    warned = set(warning.group(1).split(", ")) if warning else set()
    assert dropped_that_matter == warned, running.output


# The printed commands and the README


def test_the_readme_shows_exactly_what_make_services_prints(running: RunningServices) -> None:
    assert _readme_block() == services.SAM_COMMANDS
    assert services.SAM_COMMANDS in running.output


@pytest.mark.sam
def test_sam_cli_accepts_every_flag_of_the_readme_commands() -> None:
    # Given the README's commands for SAM CLI
    commands = [
        shlex.split(line) for line in _readme_block().splitlines() if line.startswith(".venv-sam/bin/sam ")
    ]
    assert any(c[1:3] == ["local", "start-api"] for c in commands)
    assert any(c[1:3] == ["local", "invoke"] for c in commands)
    functions = set(resources_of_type(load_template(), "AWS::Serverless::Function"))
    helps: dict[tuple[str, ...], str] = {}
    for command in commands:
        subcommand = tuple(command[1:3]) if command[1] == "local" else (command[1],)
        if subcommand not in helps:
            result = subprocess.run(
                [str(SAM), *subcommand, "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
                env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
            )
            helps[subcommand] = result.stdout
        # Then every flag is in that command's --help, every file exists, every function is the template's
        arguments = command[1 + len(subcommand) :]
        for index, argument in enumerate(arguments):
            if argument.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(argument)}(?![\w-])", helps[subcommand]), (
                    f"{' '.join(subcommand)} --help has no {argument}"
                )
            elif arguments[index - 1] == "-e" and index > 0:
                assert (REPO_ROOT / argument).is_file(), argument
            elif index == 0 and subcommand == ("local", "invoke"):
                assert argument in functions, argument
