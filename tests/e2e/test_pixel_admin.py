"""bin/pixel-admin against `make dev`'s DynamoDB Local, as a new user runs it: no AWS set-up at all."""

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devtools.dev import TABLE_NAME
from devtools.provision import provision
from devtools.template import REPO_ROOT

ADMIN = REPO_ROOT / "bin" / "pixel-admin"


def user_environment(tmp_path: Path, port: int) -> dict[str, str]:
    """A shell with no AWS credentials, profile or config, pointing pixel-admin at the local port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in {"TABLE_NAME"}}
    return {**env, "HOME": str(tmp_path), "DYNAMODB_LOCAL_PORT": str(port), "PYTHONPATH": ""}


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ADMIN), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def local_stack_table(template, dynamodb_local) -> int:
    """make dev's table in DynamoDB Local, on the port DYNAMODB_LOCAL_PORT names."""
    provision(
        template,
        dynamodb_endpoint=dynamodb_local.endpoint_url,
        sqs_endpoint=None,
        table_names={"PixelTable": TABLE_NAME},
    )
    return int(urlsplit(dynamodb_local.endpoint_url).port or 0)


@pytest.mark.dynamodb_local
def test_tenant_and_app_commands_work_against_make_dev_with_no_aws_credentials(local_stack_table, tmp_path):
    env = user_environment(tmp_path, local_stack_table)
    created = admin(env, "tenant", "create", "acme-admin-test", "--name", "Acme Inc.")
    assert (created.returncode, created.stdout, created.stderr) == (0, "tenant acme-admin-test saved\n", "")
    app = admin(env, "app", "create", "--tenant", "acme-admin-test")
    assert app.returncode == 0, app.stderr
    app_id = app.stdout.split()[1]
    rotated = admin(env, "app", "rotate-secret", app_id)
    assert rotated.returncode == 0, rotated.stderr
    assert "The old secret stops working within 60 s (AUTH_CACHE_SECONDS)." in rotated.stdout


def test_an_unreachable_dynamodb_is_one_clear_line_not_a_traceback(tmp_path):
    env = user_environment(tmp_path, 9)  # the discard port: nothing listens there
    failed = admin(env, "tenant", "create", "acme")
    assert failed.returncode == 2
    assert (
        failed.stderr == "pixel-admin: cannot reach DynamoDB at http://127.0.0.1:9 (is `make dev` running?)\n"
    )
