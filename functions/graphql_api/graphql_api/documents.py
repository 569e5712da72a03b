"""Parse and validate each distinct query once per container.

graphql-core's validation costs about a millisecond per request and dominates warm latency; a
site sends the same few documents over and over. Bounded, so hostile variety cannot grow it.

Only rules that depend on the document alone are cached. Request-scoped rules (a class attribute
`request_scoped = True`, like the cost rule, which reads the variables) run on every request, only
once the cached rules have passed, and are never part of a cache key: a new rule class per request
would otherwise add an entry per request.
"""

import threading
from collections.abc import Collection
from typing import Any, NamedTuple

from cachetools import LRUCache
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    TypeInfo,
    ValidationContext,
    parse,
    specified_rules,
    validate,
    visit,
)

MAX_CACHED_DOCUMENTS = 512
DEFAULT_MAX_TOKENS = 2000

type Rules = tuple[type[ASTValidationRule], ...]


class _Entry(NamedTuple):
    """A parsed query, and the errors each set of cached rules found in it."""

    document: DocumentNode
    errors: dict[Rules, list[GraphQLError]]


class _Documents(LRUCache[str, _Entry]):
    """An LRU of parsed queries that also finds an entry by its document object."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.by_document: dict[int, _Entry] = {}

    def remember(self, query: str, document: DocumentNode) -> None:
        entry = _Entry(document, errors={})
        self[query] = entry
        self.by_document[id(document)] = entry

    def popitem(self) -> tuple[str, _Entry]:
        query, entry = super().popitem()
        self.by_document.pop(id(entry.document), None)
        return query, entry


class DocumentCache:
    """Ariadne's `query_parser` and `query_validator`, with memory."""

    def __init__(
        self,
        size: int = MAX_CACHED_DOCUMENTS,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        hide_suggestions: bool = False,
    ) -> None:
        self._documents = _Documents(size)
        self._lock = threading.Lock()
        self.max_tokens = max_tokens
        # Production leaves "Did you mean ...?" out of validation errors: they map out the schema.
        self.hide_suggestions = hide_suggestions

    def parse(self, _context: Any, data: dict[str, Any]) -> DocumentNode:
        query = data["query"]
        with self._lock:
            entry = self._documents.get(query)
        if entry is not None:
            return entry.document
        # The lexer stops at max_tokens, so a huge document costs little; errors are not remembered.
        document = parse(query, max_tokens=self.max_tokens)
        with self._lock:
            self._documents.remember(query, document)
        return document

    def validate(
        self,
        schema: GraphQLSchema,
        document_ast: DocumentNode,
        rules: Collection[type[ASTValidationRule]] | None = None,
        max_errors: int | None = None,
        type_info: TypeInfo | None = None,
    ) -> list[GraphQLError]:
        every_rule = tuple(specified_rules if rules is None else rules)
        static = tuple(rule for rule in every_rule if not is_request_scoped(rule))
        per_request = tuple(rule for rule in every_rule if is_request_scoped(rule))
        errors = self._validate_cached(schema, document_ast, static, max_errors)
        if errors or not per_request:
            return errors
        return self._validate_per_request(schema, document_ast, per_request)

    def _validate_per_request(
        self, schema: GraphQLSchema, document_ast: DocumentNode, rules: Rules
    ) -> list[GraphQLError]:
        # A plain visit, without graphql-core's typed walk of every node (which costs twice what
        # the cost rule does): request-scoped rules read the schema through their context and SKIP
        # what they do not need.
        errors: list[GraphQLError] = []
        context = ValidationContext(
            schema, document_ast, TypeInfo(schema), errors.append, self.hide_suggestions
        )
        for rule in rules:
            visit(document_ast, rule(context))
        return errors

    def _validate_cached(
        self,
        schema: GraphQLSchema,
        document_ast: DocumentNode,
        rules: Rules,
        max_errors: int | None,
    ) -> list[GraphQLError]:
        with self._lock:
            entry = self._documents.by_document.get(id(document_ast))
            if entry is not None and entry.document is document_ast and rules in entry.errors:
                return entry.errors[rules]
        errors = validate(
            schema, document_ast, rules=rules, max_errors=max_errors, hide_suggestions=self.hide_suggestions
        )
        if entry is not None:
            with self._lock:
                entry.errors[rules] = errors
        return errors


def is_request_scoped(rule: type[ASTValidationRule]) -> bool:
    """A rule whose verdict depends on more than the document (e.g. on the variables)."""
    return getattr(rule, "request_scoped", False) is True
