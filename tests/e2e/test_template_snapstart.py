"""The SnapStart switch of template.yaml: lint clean either way, and what SAM's transform (the one
CloudFormation runs on deploy) makes of it: SnapStart on the published versions of the GraphQL
function when the parameter is "on", and the HTTP API invoking the alias `live` either way.

`sam validate --lint` alone is not enough here: it accepts an Fn::If in AutoPublishAlias, which the
transform refuses ("'AutoPublishAlias' must be a string or a Ref to a template parameter"), so the
transform itself runs too, from .venv-sam, offline (code URIs stand in for `sam package`'s).
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_aws import FAKE_AWS_ENVIRONMENT
from devtools.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
SAM_PYTHON = REPO_ROOT / ".venv-sam" / "bin" / "python"
CFN_LINT = REPO_ROOT / ".venv" / "bin" / "cfn-lint"
FUNCTION_ID = "GraphQLFunction"
ALIAS_ID = f"{FUNCTION_ID}Aliaslive"
SNAPSTART_ON = {"Fn::If": ["SnapStartOn", {"ApplyOn": "PublishedVersions"}, {"Ref": "AWS::NoValue"}]}

# Run with .venv-sam's interpreter: SAM's transform of the template given as argv[1], printed as JSON.
_TRANSFORM = r"""
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

with open(sys.argv[1]) as stream:
    template = yaml_parse(stream.read())
for resource in template["Resources"].values():
    for uri in ("CodeUri", "ContentUri"):
        if uri in resource.get("Properties", {}):
            resource["Properties"][uri] = "s3://bucket/key"  # what `sam package` puts there

class NoManagedPolicies:
    def load(self):
        return {}

print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **FAKE_AWS_ENVIRONMENT, "SAM_CLI_TELEMETRY": "0", "AWS_REGION": "us-east-1"}
    return subprocess.run(  # our own tools on our own template
        [str(arg) for arg in args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def switched_on(tmp_path: Path) -> Path:
    """template.yaml with SnapStart defaulting to "on". As committed ("off"), tests/e2e/test_template.py
    runs cfn-lint and `sam validate --lint` on it."""
    text = TEMPLATE.read_text()
    default = '  SnapStart:\n    Type: String\n    Default: "off"\n'
    assert text.count(default) == 1
    switched = tmp_path / "template.yaml"
    switched.write_text(text.replace(default, default.replace('"off"', '"on"')))
    return switched


def test_cfn_lint_reports_nothing_with_snapstart_on(switched_on: Path) -> None:
    result = run(CFN_LINT, switched_on)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


@pytest.mark.sam
def test_sam_validate_with_lint_accepts_the_template_with_snapstart_on(switched_on: Path) -> None:
    result = run(SAM, "validate", "--lint", "--template-file", switched_on)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_snapstart_is_a_parameter_off_unless_asked_for() -> None:
    parameters = load_template()["Parameters"]
    assert parameters["SnapStart"]["Default"] == "off"
    assert parameters["SnapStart"]["AllowedValues"] == ["on", "off"]


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    result = run(SAM_PYTHON, "-c", _TRANSFORM, TEMPLATE)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.sam
def test_the_transform_puts_snapstart_on_the_function_when_the_condition_holds(
    transformed: dict[str, Any],
) -> None:
    resources = transformed["Resources"]
    function = resources[FUNCTION_ID]["Properties"]
    assert function["SnapStart"] == SNAPSTART_ON
    assert transformed["Conditions"]["SnapStartOn"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "on"]}
    alias = resources[ALIAS_ID]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == "live"
    version = resources[alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]]
    assert version["Type"] == "AWS::Lambda::Version"


@pytest.mark.sam
def test_every_route_of_the_http_api_invokes_the_alias_never_latest(transformed: dict[str, Any]) -> None:
    resources = transformed["Resources"]
    permissions = {
        logical_id: resource["Properties"]["FunctionName"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Permission" and logical_id.startswith(FUNCTION_ID)
    }
    assert permissions
    assert set(map(json.dumps, permissions.values())) == {json.dumps({"Ref": ALIAS_ID})}
    body = resources["HttpApi"]["Properties"]["Body"]
    uris = {
        json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
        for path in body["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation
    }
    assert uris
    assert all(f"${{{ALIAS_ID}}}" in uri for uri in uris), uris
