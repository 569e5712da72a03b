"""Parse and validate each distinct query once per container.

graphql-core's validation costs about a millisecond per request and dominates warm latency; a
site sends the same few documents over and over. Bounded, so hostile variety cannot grow it.
"""

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, TypeInfo, parse, validate

MAX_CACHED_DOCUMENTS = 512

type Rules = tuple[type[ASTValidationRule], ...]


@dataclass
class _Entry:
    document: DocumentNode
    errors: dict[Rules, list[GraphQLError]] = field(default_factory=dict)


class _Documents(LRUCache[str, _Entry]):
    """An LRU of parsed queries that also finds an entry by its document object."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.by_document: dict[int, _Entry] = {}

    def remember(self, query: str, document: DocumentNode) -> None:
        entry = _Entry(document)
        self[query] = entry
        self.by_document[id(document)] = entry

    def popitem(self) -> tuple[str, _Entry]:
        query, entry = super().popitem()
        self.by_document.pop(id(entry.document), None)
        return query, entry


class DocumentCache:
    """Ariadne's `query_parser` and `query_validator`, with memory."""

    def __init__(self, size: int = MAX_CACHED_DOCUMENTS) -> None:
        self._documents = _Documents(size)
        self._lock = threading.Lock()

    def parse(self, _context: Any, data: dict[str, Any]) -> DocumentNode:
        query = data["query"]
        with self._lock:
            entry = self._documents.get(query)
        if entry is not None:
            return entry.document
        document = parse(query)  # a syntax error raises and is not remembered
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
        key = tuple(rules or ())
        with self._lock:
            entry = self._documents.by_document.get(id(document_ast))
            if entry is not None and entry.document is document_ast and key in entry.errors:
                return entry.errors[key]
        errors = validate(schema, document_ast, rules=rules, max_errors=max_errors)
        if entry is not None:
            with self._lock:
                entry.errors[key] = errors
        return errors
