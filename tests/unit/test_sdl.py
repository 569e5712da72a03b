"""graphql_api.sdl: the schema's SDL parsed by the build, and used only for the text it parsed."""

import importlib.util
from pathlib import Path
from types import ModuleType

import graphql

from devtools import lambda_build
from graphql_api import sdl

REPO_ROOT = Path(__file__).resolve().parents[2]
TYPE_DEFS = sdl.read_type_defs()
PARSED_NAME = sdl.PARSED_BY_BUILD.name


def built_sdl_module(artifacts: Path) -> ModuleType:
    """graphql_api/sdl.py of a built function, loaded from there (its parse beside it)."""
    spec = importlib.util.spec_from_file_location("built_sdl", artifacts / lambda_build.SCHEMA_PARSER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refuse_to_parse(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("parsed at run time")


def test_the_built_function_uses_the_builds_parse_of_its_schema_without_parsing(tmp_path, monkeypatch):
    # Given the GraphQL function as the build leaves it
    artifacts = tmp_path / "task"
    lambda_build.build_function(REPO_ROOT / "functions/graphql_api", artifacts)
    built = built_sdl_module(artifacts)
    assert (artifacts / "graphql_api" / PARSED_NAME).is_file()

    # When its schema's document is asked for, with graphql-core's parser out of reach
    monkeypatch.setattr(graphql, "parse", refuse_to_parse)
    document = built.document(built.read_type_defs())

    # Then it is the build's, and what parsing the SDL gives
    monkeypatch.undo()
    assert document == graphql.parse(TYPE_DEFS, no_location=True)
    assert graphql.print_ast(document) == graphql.print_ast(graphql.parse(TYPE_DEFS))


def test_without_the_builds_parse_the_sdl_is_parsed(tmp_path):
    # Given no parse by the build (make dev, the tests: the sources)
    missing = tmp_path / PARSED_NAME

    # Then there is none to use, and the document is the parser's
    assert sdl.parsed_by_build(TYPE_DEFS, missing) is None
    assert not sdl.PARSED_BY_BUILD.exists()
    assert sdl.document(TYPE_DEFS) == graphql.parse(TYPE_DEFS, no_location=True)


def test_the_builds_parse_is_not_used_for_any_other_text(tmp_path):
    # Given the build's parse of the schema
    parsed = tmp_path / PARSED_NAME
    sdl.write_parsed(TYPE_DEFS, parsed)
    assert sdl.parsed_by_build(TYPE_DEFS, parsed) == graphql.parse(TYPE_DEFS, no_location=True)

    # Then a schema changed by one character after the build does not get it
    assert sdl.parsed_by_build(TYPE_DEFS + " ", parsed) is None
    assert sdl.parsed_by_build(TYPE_DEFS.replace("pixelId", "pixelID", 1), parsed) is None


def test_the_builds_parse_is_not_used_by_another_graphql_core(tmp_path, monkeypatch):
    # Given the build's parse of the schema by this graphql-core
    parsed = tmp_path / PARSED_NAME
    sdl.write_parsed(TYPE_DEFS, parsed)

    # When another version reads it (its node classes may differ): it is not unpickled
    monkeypatch.setattr(graphql, "__version__", "3.4.0")
    monkeypatch.setattr("pickle.loads", refuse_to_parse)

    # Then there is none to use
    assert sdl.parsed_by_build(TYPE_DEFS, parsed) is None


def test_a_build_without_graphql_core_leaves_the_parse_to_run_time(tmp_path, monkeypatch, capsys):
    # Given a Python that cannot import graphql-core (a bare python3.13 running the build)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "graphql" else real_find_spec(name, *rest),
    )

    # When the function is built
    artifacts = tmp_path / "task"
    lambda_build.build_function(REPO_ROOT / "functions/graphql_api", artifacts)

    # Then the build says so and leaves no parse; the function still has its schema files
    assert "the schema is parsed at run time" in capsys.readouterr().out
    assert not (artifacts / "graphql_api" / PARSED_NAME).exists()
    assert sorted(path.name for path in (artifacts / "graphql_api" / "schema").iterdir()) == [
        "capig.graphql",
        "common.graphql",
        "heropixel.graphql",
    ]
