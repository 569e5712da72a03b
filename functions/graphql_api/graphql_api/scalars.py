"""Custom scalars of schema/common.graphql, and the one rule for numbers in answers.

JavaScript reads every JSON number as a double, exact only up to 2^53-1: `18904456377094531` would
read as `18904456377094532`. So an answer gives an integer as a JSON number up to that bound and
as a string of its digits beyond it (`exact_number`). The `JSON` scalar (the HeroPixel envelope's
`data`) applies the rule to every integer it answers, and `PixelId` to itself, so every path an id
or a count leaves the API by follows it. The CAPIG reference gives its ids as strings already
(`pixelID`, `connectionId`, `pixelId`), and its counters are GraphQL `Float`s, as it documents.
"""

from typing import Any

from ariadne import ScalarType
from graphql import IntValueNode, StringValueNode, ValueNode, value_from_ast_untyped

from pixel_core.pixel_ids import parse_pixel_id

# The largest integer every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1


def exact_number(value: int) -> int | str:
    """`value` as a JSON number when every client reads it exactly, else as a digit string."""
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)


def exact_json(value: Any) -> Any:
    """`value` with `exact_number` applied to every integer in it (bools stay bools)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return exact_number(value)
    if isinstance(value, dict):
        return {key: exact_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [exact_json(item) for item in value]
    return value


json_scalar = ScalarType("JSON")


@json_scalar.serializer
def serialize_json(value: Any) -> Any:
    return exact_json(value)


@json_scalar.literal_parser
def parse_json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


pixel_id_scalar = ScalarType("PixelId")


@pixel_id_scalar.serializer
def serialize_pixel_id(value: Any) -> int | str:
    return exact_number(int(value))


@pixel_id_scalar.value_parser
def parse_pixel_id_value(value: Any) -> int:
    return parse_pixel_id(value)


@pixel_id_scalar.literal_parser
def parse_pixel_id_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> int:
    if isinstance(node, IntValueNode):
        return parse_pixel_id(int(node.value))
    if isinstance(node, StringValueNode):
        return parse_pixel_id(node.value)
    raise ValueError("Pixel id must be an integer or a string of digits")
