"""graphql_api.server.executable_schema: Ariadne's make_executable_schema without the SDL checks at
every cold start. These tests are the checks it leaves out, run once on the schema files, and the
proof that what it builds is what Ariadne builds."""

from typing import Any

import pytest
from ariadne import make_executable_schema
from graphql import (
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    is_specified_scalar_type,
    parse,
    print_schema,
)
from graphql.validation.validate import validate_sdl

from graphql_api.resolvers import bindables
from graphql_api.server import TYPE_DEFS, executable_schema, python_name, schema


def bound(built: GraphQLSchema) -> dict[str, Any]:
    """Every object field's resolver (by name: Ariadne's name converter makes new closures each time)
    and the Python names of its arguments; every scalar's functions."""
    fields = {
        f"{type_name}.{field_name}": (
            getattr(field.resolve, "__qualname__", None),
            {name: argument.out_name for name, argument in field.args.items()},
        )
        for type_name, graphql_type in built.type_map.items()
        if isinstance(graphql_type, GraphQLObjectType) and not type_name.startswith("__")
        for field_name, field in graphql_type.fields.items()
    }
    scalars = {
        name: (graphql_type.serialize, graphql_type.parse_value, graphql_type.parse_literal)
        for name, graphql_type in built.type_map.items()
        if isinstance(graphql_type, GraphQLScalarType) and not is_specified_scalar_type(graphql_type)
    }
    return {"fields": fields, "scalars": scalars}


def test_the_schema_files_pass_graphql_cores_sdl_validation() -> None:
    assert validate_sdl(parse(TYPE_DEFS)) == []


def test_the_schema_is_the_one_ariadnes_make_executable_schema_builds() -> None:
    ariadnes = make_executable_schema(TYPE_DEFS, *bindables, convert_names_case=python_name)

    assert print_schema(schema) == print_schema(ariadnes)
    assert bound(schema) == bound(ariadnes)
    assert sorted(bound(schema)["scalars"]) == ["JSON", "PixelId"]
    # Every root field is bound to one of our resolvers, not left to a default
    assert all(
        resolver is not None and not resolver.startswith("resolve_to")
        for name, (resolver, _arguments) in bound(schema)["fields"].items()
        if name.split(".")[0] in ("Query", "Mutation")
    )


def test_what_the_skipped_sdl_checks_catch_is_left_to_the_test_of_the_files() -> None:
    # Given SDL that defines a field twice: only the SDL checks see it
    duplicated = "type Query { pixel: Int pixel: String }"

    # Then graphql-core's SDL validation, which the test of the files runs, names it
    assert [error.message for error in validate_sdl(parse(duplicated))] == [
        "Field 'Query.pixel' can only be defined once."
    ]
    # And the cold start's build, which skips it, does not: hence the test above
    query_type = executable_schema(duplicated, []).query_type
    assert query_type is not None
    assert str(query_type.fields["pixel"].type) == "String"


def test_a_type_that_does_not_exist_still_fails_the_cold_starts_build() -> None:
    with pytest.raises(TypeError, match="Unknown type: 'Missing'"):
        executable_schema("type Query { pixel: Missing }", [])
