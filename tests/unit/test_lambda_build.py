"""devtools/lambda_build.py, which `sam build` runs: the code as Lambda mounts it, compiled ahead of
time. The whole build (pip and all) is exercised by tests/e2e/test_template.py; these cover the
copying and compiling on small folders, including the inputs that must fail the build."""

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

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
