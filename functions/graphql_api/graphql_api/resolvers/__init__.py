"""Resolvers by area; `bindables` is everything make_executable_schema needs."""

from graphql_api.resolvers import capig
from graphql_api.resolvers.common import query
from graphql_api.resolvers.heropixel import mutation
from graphql_api.resolvers.heropixel import query as heropixel_query
from graphql_api.scalars import json_scalar, pixel_id_scalar

bindables = [query, heropixel_query, mutation, *capig.bindables, json_scalar, pixel_id_scalar]
