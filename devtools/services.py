"""`make services`: only the backing services, for `sam local start-api` and `sam local invoke`.

DynamoDB Local, moto (SQS, KMS) and the local fake Meta, started and provisioned from template.yaml
exactly as `make dev` does it (devtools/dev.py's ``backing_services``), the development tenant and
app created, and ``.local/sam-env.json`` written: SAM's ``--env-vars`` file that points every
function of the template at those services through ``host.docker.internal``, the host as a Lambda
container sees it. Then it prints the commands to run (``SAM_COMMANDS``, which docs/operations.md's
"With Docker" section repeats word for word) and waits; Ctrl-C or SIGTERM stops the services.

The services listen on 127.0.0.1 (``SERVICES_HOST``). On Linux a container reaches the host only on
an address of the Docker bridge, so ``SERVICES_HOST=0.0.0.0`` is needed there, which also exposes
them to the network this machine is on.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from devtools.dev import (
    LOCAL_AWS_CREDENTIALS,
    BackingServices,
    DevSettings,
    StopRequested,
    StopSignals,
    backing_services,
    ensure_dev_credentials,
    local_aws_environment,
    say,
    use_fake_credentials,
    use_local_aws,
)
from devtools.provision import ProvisionedResources
from devtools.template import REPO_ROOT, load_template, resources_of_type

ENV_FILE = REPO_ROOT / ".local" / "sam-env.json"
CONTAINER_HOST = "host.docker.internal"  # the host, seen from a container (with --add-host on Linux)
LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"  # only when asked for, with a warning
_LOOPBACK_NAMES = {"127.0.0.1", "localhost"}

_FAKE_CREDENTIALS = " ".join(f"{name}={value}" for name, value in LOCAL_AWS_CREDENTIALS.items())
_SAM = ".venv-sam/bin/sam"
_ENV_VARS = ".local/sam-env.json"
_ADD_HOST = f"--add-host {CONTAINER_HOST}:host-gateway"

# The one text of the commands: printed by `make services`, and docs/operations.md's "With Docker" block
# (tests/e2e/test_services.py holds them equal and checks every flag against SAM CLI's --help).
SAM_COMMANDS = f"""\
# In a second terminal, from the repository root, while `make services` runs.
# SAM gives the functions the shell's AWS credentials and region: make them the local fakes.
export {_FAKE_CREDENTIALS}
unset AWS_PROFILE AWS_SESSION_TOKEN
{_SAM} build

# Linux (Docker Engine): `SERVICES_HOST=0.0.0.0 make services`, and --add-host, so that
# host.docker.internal is this machine inside the function's container.
{_SAM} local invoke GraphQLFunction -e events/health.json --env-vars {_ENV_VARS} {_ADD_HOST}
{_SAM} local invoke GraphQLFunction -e events/graphql_add_domain.json --env-vars {_ENV_VARS} {_ADD_HOST}
{_SAM} local start-api --env-vars {_ENV_VARS} {_ADD_HOST}

# macOS and Windows (Docker Desktop): `make services`; host.docker.internal works by default.
{_SAM} local invoke GraphQLFunction -e events/health.json --env-vars {_ENV_VARS}
{_SAM} local invoke GraphQLFunction -e events/graphql_add_domain.json --env-vars {_ENV_VARS}
{_SAM} local start-api --env-vars {_ENV_VARS}

# Then, with start-api running:
curl -s http://127.0.0.1:3000/health
"""


class _RecordingEnviron(Mapping[str, str]):
    """An empty environment that records what is read from it, and the default each read gives."""

    def __init__(self) -> None:
        self.defaults: dict[str, str | None] = {}

    def get(self, key: str, default: Any = None) -> Any:
        self.defaults.setdefault(key, default)
        return default

    def __getitem__(self, key: str) -> str:
        self.defaults.setdefault(key, None)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def configuration_variables() -> dict[str, str | None]:
    """Every variable the functions' configuration reads (pixel_core.config.load_settings), with
    the default it falls back to (None: no default)."""
    from pixel_core.config import load_settings  # noqa: PLC0415  # the functions' own code

    environ = _RecordingEnviron()
    load_settings(environ)
    return environ.defaults


def _function_globals(template: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    return variables


def declared_variables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per function: the variables the template gives it (Globals, then its own), as written."""
    common = _function_globals(template)
    declared = {}
    for function_id, function in resources_of_type(template, "AWS::Serverless::Function").items():
        own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
        declared[function_id] = {**common, **own}
    return declared


def as_seen_from_a_container(url: str) -> str:
    """A loopback URL with ``host.docker.internal`` for its host; any other URL as it is."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _LOOPBACK_NAMES:
        return url
    netloc = CONTAINER_HOST if parts.port is None else f"{CONTAINER_HOST}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def container_environment(services: BackingServices) -> dict[str, str]:
    """dev.py's local_aws_environment, with the URLs a container uses."""
    resources = ProvisionedResources(
        table_names=services.resources.table_names,
        queue_urls={
            queue: as_seen_from_a_container(url) for queue, url in services.resources.queue_urls.items()
        },
        queue_arns=services.resources.queue_arns,
        kms_aliases=services.resources.kms_aliases,
    )
    return local_aws_environment(
        as_seen_from_a_container(services.dynamodb_url),
        as_seen_from_a_container(services.moto_url),
        resources,
        as_seen_from_a_container(services.graph_api),
    )


def _template_value(template: dict[str, Any], value: Any) -> str | None:
    """A plain value, or ``!Ref`` of a parameter (its default); None for what only AWS resolves."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        if parameter is not None and "Default" in parameter:
            return str(parameter["Default"])
    return None


def sam_env_vars(template: dict[str, Any], local: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """SAM's --env-vars content: for every function of the template, every variable it is given
    (the template's) or reads (its configuration, the SDK's endpoints, credentials and region),
    valued from ``local`` first, then the fake credentials, the template, the configuration's default."""
    configuration = configuration_variables()
    env_vars = {}
    for function_id, declared in declared_variables(template).items():
        names = [*declared, *configuration, *local, *LOCAL_AWS_CREDENTIALS]
        values: dict[str, str] = {}
        for name in dict.fromkeys(names):  # each once, in that order
            value = local.get(name) or LOCAL_AWS_CREDENTIALS.get(name)
            if value is None and name in declared:
                value = _template_value(template, declared[name])
            if value is None:
                value = configuration.get(name)
            if value is None:
                raise ValueError(
                    f"{function_id}.{name}: no local value (add it to devtools/dev.py's local_aws_environment)"
                )
            values[name] = value
        env_vars[function_id] = values
    return env_vars


def undeclared_local_variables(template: dict[str, Any], local: Mapping[str, str]) -> list[str]:
    """What points the functions at the local services but no function of the template declares.
    SAM sets a variable from --env-vars only where the template declares it for that function
    (credentials and region aside: those come from the shell), so these never reach a container."""
    declared = {name for variables in declared_variables(template).values() for name in variables}
    return sorted(set(local) - declared)


def write_env_file(path: Path, env_vars: Mapping[str, Mapping[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(env_vars, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)  # whole or not at all, for whoever reads it


def services_host(environ: Mapping[str, str] = os.environ) -> str:
    host = environ.get("SERVICES_HOST", LOOPBACK)
    if host not in (LOOPBACK, EVERY_INTERFACE):
        raise SystemExit(f"SERVICES_HOST must be {LOOPBACK} (the default) or {EVERY_INTERFACE}, not {host!r}")
    return host


def banner(services: BackingServices, env_file: Path, host: str, undeclared: list[str]) -> str:
    lines = [
        "",
        "Pixel Gateway's backing services are running (for sam local; `make dev` runs everything).",
        f"  DynamoDB     {services.dynamodb_url} (Amazon's DynamoDB Local)",
        f"  SQS / KMS    {services.moto_url} (moto)",
        f"  Meta         {services.fake_meta_url} (a local fake; what it received: {services.fake_meta_url}/__received)",
        f"  --env-vars   {env_file} (the URLs with {CONTAINER_HOST}, as a container sees them)",
    ]
    if host == EVERY_INTERFACE:
        lines.append(
            f"WARNING: SERVICES_HOST={EVERY_INTERFACE}: DynamoDB Local, moto and the local Meta listen on "
            "every interface, so anyone on this machine's networks can reach them."
        )
    elif sys.platform == "linux":
        lines.append(
            f"Listening on {LOOPBACK} only: a container on Linux cannot reach that; for sam local, "
            f"stop and run `SERVICES_HOST={EVERY_INTERFACE} make services`."
        )
    if undeclared:
        names = ", ".join(undeclared)
        lines.append(
            f"WARNING: template.yaml declares no {names}: SAM sets only the variables a function declares, "
            'so the functions would call AWS instead. Declare them, as "", under '
            "Globals.Function.Environment.Variables."
        )
    return "\n".join([*lines, "", SAM_COMMANDS, "Ctrl-C stops the services."])


def serve(dev: DevSettings, env_file: Path, host: str) -> None:
    use_fake_credentials()
    template = load_template()
    with backing_services(dev, template, host=host) as services:
        use_local_aws(services.dynamodb_url, services.moto_url, services.resources, services.graph_api)
        ensure_dev_credentials(dev)
        local = container_environment(services)
        write_env_file(env_file, sam_env_vars(template, local))
        say(banner(services, env_file, host, undeclared_local_variables(template, local)))
        while True:  # until Ctrl-C or SIGTERM (StopRequested)
            time.sleep(3600)


def main() -> int:
    signals = StopSignals()
    signals.install()
    dev = DevSettings.from_environment()
    host = services_host()
    env_file = Path(os.environ.get("SAM_ENV_FILE", str(ENV_FILE)))
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        serve(dev, env_file, host)
    except StopRequested:
        pass  # everything started has been stopped, a line each
    finally:
        say("Backing services stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
