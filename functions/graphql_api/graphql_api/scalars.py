"""Custom scalars of schema/common.graphql."""

from typing import Any

from ariadne import ScalarType
from graphql import IntValueNode, StringValueNode, ValueNode, value_from_ast_untyped

from pixel_core.pixel_ids import parse_pixel_id

json_scalar = ScalarType("JSON")


@json_scalar.literal_parser
def parse_json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


pixel_id_scalar = ScalarType("PixelId")


@pixel_id_scalar.serializer
def serialize_pixel_id(value: Any) -> int:
    return int(value)


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
