"""The GraphQL API function: schema, resolvers and the ASGI app that Mangum serves."""
