from typing import Any

from ariadne import QueryType
from graphql import GraphQLResolveInfo

API_VERSION = "2026-11"

query = QueryType()


@query.field("version")
def resolve_version(_root: Any, _info: GraphQLResolveInfo[Any]) -> str:
    return API_VERSION
