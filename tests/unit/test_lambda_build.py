"""devtools/lambda_build.py, which `sam build` runs: the code as Lambda mounts it, compiled ahead of
time. The whole build (pip and all) is exercised by tests/e2e/test_template.py; these cover the
copying and compiling on small folders, including the inputs that must fail the build."""

import gzip
import importlib.util
import json
import marshal
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore
import pytest

from devtools import lambda_build

SCRIPT = Path(lambda_build.__file__)


def pyc_flags(source: Path) -> int:
    cached = Path(importlib.util.cache_from_source(str(source)))
    return int.from_bytes(cached.read_bytes()[4:8], "little")


def pyc_source_path(source: Path) -> str:
    """The file name compiled into the bytecode: what tracebacks will show."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    code = marshal.loads(cached.read_bytes()[16:])  # noqa: S302  # bytecode this test just compiled
    return str(code.co_filename)


def make_function(root: Path) -> Path:
    source = root / "function"
    (source / "api" / "resolvers").mkdir(parents=True)
    (source / "app.py").write_text("def handler(event, context):\n    return event\n")
    (source / "api" / "__init__.py").write_text("")
    (source / "api" / "resolvers" / "__init__.py").write_text("VALUE = 1\n")
    shared = root / "schema"
    shared.mkdir()
    (shared / "api.graphql").write_text("type Query { ok: Boolean }\n")
    (source / "api" / "schema").symlink_to(shared, target_is_directory=True)
    (source / "api" / "__pycache__").mkdir()
    (source / "api" / "__pycache__" / "stale.cpython-313.pyc").write_bytes(b"stale")
    (source / ".hidden").write_text("not shipped")
    return source


def test_a_function_is_copied_with_links_resolved_and_every_module_compiled_unchecked(tmp_path):
    # Given a function folder with a linked schema folder, a stale cache and a hidden file
    source = make_function(tmp_path)
    artifacts = tmp_path / "artifacts"

    # When it is built
    lambda_build.build_function(source, artifacts)

    # Then the schema is a real folder, caches and hidden files stay behind
    schema = artifacts / "api" / "schema"
    assert not schema.is_symlink()
    assert (schema / "api.graphql").read_text() == "type Query { ok: Boolean }\n"
    assert not (artifacts / ".hidden").exists()
    assert not (artifacts / "api" / "__pycache__" / "stale.cpython-313.pyc").exists()
    # And every module has unchecked-hash bytecode naming its path in Lambda
    modules = sorted(artifacts.rglob("*.py"))
    assert [path.relative_to(artifacts).as_posix() for path in modules] == [
        "api/__init__.py",
        "api/resolvers/__init__.py",
        "app.py",
    ]
    assert {pyc_flags(module) for module in modules} == {0b01}
    assert pyc_source_path(artifacts / "app.py") == "/var/task/app.py"


def test_layer_packages_are_copied_without_caches_or_requirements(tmp_path):
    # Given a layer folder: a package, a loose script, requirements.txt and a stale cache
    source = tmp_path / "layer"
    (source / "core" / "__pycache__").mkdir(parents=True)
    (source / "core" / "__init__.py").write_text("")
    (source / "core" / "__pycache__" / "x.pyc").write_bytes(b"stale")
    (source / "requirements.txt").write_text("idna\n")
    (source / "notes").mkdir()

    # When its packages are copied into python/
    python_dir = tmp_path / "python"
    lambda_build.copy_layer_packages(source, python_dir)

    # Then only the package is there, without its cache
    assert sorted(p.relative_to(python_dir).as_posix() for p in python_dir.rglob("*")) == [
        "core",
        "core/__init__.py",
    ]


def test_a_module_that_does_not_compile_fails_the_build_naming_the_file(tmp_path):
    # Given a function with a syntax error
    source = make_function(tmp_path)
    (source / "api" / "broken.py").write_text("def broken(:\n")

    # When it is built, as `sam build` runs it
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "function", str(source), str(tmp_path / "artifacts")],
        capture_output=True,
        text=True,
        check=False,
    )

    # Then the build fails, naming the file and the folder
    assert completed.returncode == 1
    assert "Error compiling" in completed.stdout
    assert "/var/task/api/broken.py" in completed.stdout
    assert "does not compile" in completed.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "the following arguments are required"),
        (["package", "src", "out"], "invalid choice: 'package'"),
        (["function", "src"], "the following arguments are required: artifacts"),
    ],
)
def test_bad_arguments_are_refused_with_usage(arguments, message):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "usage: lambda_build" in completed.stderr


def test_another_python_version_is_refused_because_its_bytecode_would_not_load(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(lambda_build, "RUNTIME_VERSION", (3, 12))
    with pytest.raises(SystemExit) as failure:
        lambda_build.main(["function", str(make_function(tmp_path)), str(tmp_path / "out")])
    assert failure.value.code == 2
    assert "needs Python 3.12, as the runtime; this is 3.13" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- botocore's data, slimmed to the services the functions call ----------------------------------

INSTALLED_BOTOCORE = Path(botocore.__file__).parent
LAYER_SOURCE = Path(__file__).resolve().parents[2] / "layers" / "core"

# In a fresh interpreter with the slimmed botocore first on sys.path: a client of each service named in
# argv makes a call (answered in memory, after it was serialised and signed), then another service's
# client is asked for. Prints what was sent and what the other service raised.
_CLIENTS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import botocore, botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import UnknownServiceError

CALLS = {"dynamodb": ("get_item", {"TableName": "t", "Key": {"pk": {"S": "p"}}}),
         "sqs": ("get_queue_url", {"QueueName": "q"}),
         "kms": ("describe_key", {"KeyId": "alias/k"})}

class Raw:
    def stream(self, **_):
        yield b"{}"

sent = []
def answer(request, **_):
    sent.append([request.headers["X-Amz-Target"].decode(), "Signature=" in request.headers["Authorization"].decode()])
    return AWSResponse(request.url, 200, {}, Raw())

session = botocore.session.get_session()
for service in sys.argv[2].split(","):
    client = session.create_client(service, region_name="us-east-1", aws_access_key_id="testing",
                                   aws_secret_access_key="testing")
    client.meta.events.register("before-send", answer)
    operation, parameters = CALLS[service]
    getattr(client, operation)(**parameters)
try:
    session.create_client("s3", region_name="us-east-1")
    other = "made"
except UnknownServiceError:
    other = "UnknownServiceError"
print(json.dumps({"botocore": botocore.__file__, "sent": sent, "other": other}))
"""


def documentation_texts(node: object) -> int:
    if isinstance(node, dict):
        own = sum(1 for key, value in node.items() if key == "documentation" and isinstance(value, str))
        return own + sum(documentation_texts(value) for value in node.values())
    if isinstance(node, list):
        return sum(documentation_texts(value) for value in node)
    return 0


def service_model(data: Path, service: str) -> dict[str, Any]:
    (path,) = sorted(data.glob(f"{service}/*/service-2.json*"))[-1:]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def slim_botocore(tmp_path_factory) -> Path:
    """A copy of the installed botocore, slimmed as the layer's build slims it."""
    copy = tmp_path_factory.mktemp("layer") / "botocore"
    shutil.copytree(INSTALLED_BOTOCORE, copy, ignore=lambda_build.SKIPPED)
    lambda_build.slim_botocore(copy, lambda_build.services_called(LAYER_SOURCE))
    return copy


def test_the_services_the_layer_keeps_are_the_ones_pixel_core_calls():
    from pixel_core import aws

    assert lambda_build.services_called(LAYER_SOURCE) == aws.SERVICES == ("dynamodb", "sqs", "kms")


def test_a_client_of_a_service_the_layer_does_not_keep_is_refused_in_every_run_not_only_in_aws():
    from pixel_core import aws

    with pytest.raises(ValueError, match=r"'s3' is not in pixel_core\.aws\.SERVICES"):
        aws.client("s3")


def test_slimmed_botocore_keeps_the_services_models_whole_but_their_documentation(slim_botocore):
    data = slim_botocore / "data"
    installed = INSTALLED_BOTOCORE / "data"

    # Only the services called are left, beside botocore's own files, and without examples
    assert sorted(path.name for path in data.iterdir() if path.is_dir()) == ["dynamodb", "kms", "sqs"]
    assert sorted(path.name for path in data.iterdir() if path.is_file()) == sorted(
        path.name for path in installed.iterdir() if path.is_file()
    )
    assert list(data.glob("*/*/examples-1.json")) == []
    for service in ("dynamodb", "sqs", "kms"):
        slim, whole = service_model(data, service), service_model(installed, service)
        # Every operation and shape is there, with the same members, minus the documentation
        assert documentation_texts(whole) > 100
        assert documentation_texts(slim) == 0
        assert slim["operations"].keys() == whole["operations"].keys()
        assert slim["shapes"].keys() == whole["shapes"].keys()
        assert {name: shape.get("members", {}).keys() for name, shape in slim["shapes"].items()} == {
            name: shape.get("members", {}).keys() for name, shape in whole["shapes"].items()
        }
        assert slim["metadata"] == {k: v for k, v in whole["metadata"].items() if k != "documentationUrl"}
    endpoints = json.loads((data / "endpoints.json").read_text(encoding="utf-8"))
    assert {
        partition["partition"]: sorted(partition["services"]) for partition in endpoints["partitions"]
    } == {
        partition["partition"]: sorted(set(partition["services"]) & {"dynamodb", "kms", "sqs"})
        for partition in json.loads((installed / "endpoints.json").read_text(encoding="utf-8"))["partitions"]
    }
    # And the layer is lighter by the rest: tens of megabytes
    assert sum(path.stat().st_size for path in data.rglob("*") if path.is_file()) < 500_000


def test_slimmed_botocore_makes_and_calls_each_service_client_and_knows_no_other(slim_botocore):
    # When a fresh interpreter, with the slimmed copy first on sys.path, calls each service
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _CLIENTS, str(slim_botocore.parent), "dynamodb,sqs,kms"],
        capture_output=True,
        text=True,
        check=False,
    )

    # Then each call was serialised and signed from the slimmed models, and another service is unknown
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert Path(result["botocore"]).is_relative_to(slim_botocore)
    assert result["sent"] == [
        ["DynamoDB_20120810.GetItem", True],
        ["AmazonSQS.GetQueueUrl", True],
        ["TrentService.DescribeKey", True],
    ]
    assert result["other"] == "UnknownServiceError"


def test_a_service_botocore_has_no_data_for_fails_the_build(tmp_path):
    data = tmp_path / "botocore" / "data"
    (data / "dynamodb").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"botocore has no data for \['sqs'\]"):
        lambda_build.slim_botocore(tmp_path / "botocore", ("dynamodb", "sqs"))
    assert (data / "dynamodb").is_dir()


def test_a_layer_source_without_services_fails_the_build(tmp_path):
    (tmp_path / "pixel_core").mkdir()
    (tmp_path / "pixel_core" / "aws.py").write_text("OTHER = ('dynamodb',)\n")
    with pytest.raises(SystemExit, match="defines no SERVICES"):
        lambda_build.services_called(tmp_path)
