"""Limits on one GraphQL request, all enforced before any resolver runs.

- body size: read by the ASGI app before anything parses it (`read_body`);
- tokens: by graphql-core's parser (`DocumentCache(max_tokens=...)`);
- depth and aliases: validation rules that depend on the document only, so their verdict is cached
  with the document's;
- cost: Ariadne's cost validator, which depends on the request's variables too, so it runs on every
  request after the cached validation has passed (see `DocumentCache.validate`).
"""

from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

from ariadne.validation.query_cost import CostValidator
from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from graphql.execution.values import get_variable_values
from graphql.language import SKIP, VisitorAction
from starlette.types import Message, Receive, Scope

from pixel_core.errors import BadRequest
from pixel_core.stats import DayRange

type Rules = tuple[type[ASTValidationRule], ...]

# What a field costs, in points: 1 for a field whose resolver only shapes data already read, more
# for one that calls AWS: about its DynamoDB / SQS / KMS round trips. A filter update checks and
# writes each pixel it names (3 calls a pixel), so its cost is per pixel of `input.pixel_ids`
# (the variables are coerced first, so a literal list and a variable both count, under the
# arguments' Python names). `stats` reads its range's day counters and up to
# `pixel_core.stats.MAX_VISITOR_DAYS_READ` visitor-day items: it costs STATS_COST plus
# STATS_COST_PER_DAY for each day of `event.from`..`event.to` (a 1-day stats 7, a 92-day one 189,
# so a request of the default maximum cost, 500, holds two full-range stats, not twenty).
STATS_COST = 5
STATS_COST_PER_DAY = 2
COST_MAP: dict[str, dict[str, Any]] = {
    "Query": {
        "stats": {"complexity": STATS_COST, "per_range_day": STATS_COST_PER_DAY},
        "tenantQueries": {"complexity": 2},
    },
    "Mutation": {
        "domains": {"complexity": 3},
        "pixels": {"complexity": 3},
        "pageview": {"complexity": 3},
        "track": {"complexity": 3},
        "tenantMutations": {"complexity": 2},
    },
    "TenantQueries": {"eventFilters": {"complexity": 3}, "domainFilters": {"complexity": 3}},
    "Account": {"signalConfigs": {"complexity": 3}},
    "SignalMutations": {
        "setupPixelSignalConfig": {"complexity": 5},
        "deleteDataSource": {"complexity": 5},
        "updateSignalConfigEventsStatus": {"complexity": 3},
        "updateSignalConfigCapiPublish": {"complexity": 3},
    },
    "TenantMutations": {
        "updateEventFilter": {"complexity": 3, "multipliers": ["input.pixel_ids"]},
        "updateDomainFilter": {"complexity": 3, "multipliers": ["input.pixel_ids"]},
    },
}
DEFAULT_FIELD_COST = 1


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def depth_limit(max_depth: int) -> type[ASTValidationRule]:
    """A rule: no operation nests fields deeper than `max_depth`, through fragments included.

    Introspection fields (`__schema`, `__type`) are not followed: GraphiQL's own introspection
    query nests `ofType` 9 levels deep, it resolves in memory, and production refuses it anyway.
    """

    class DepthLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments = _fragments(context.document)
            # A fragment's depth, computed once however often it is spread: the walk is linear in
            # the document. The recursion is bounded too: graphql-core's parser refuses nesting
            # beyond 200 levels, and validation aborts chains of fragments nested deeper than that
            # before any rule enters an operation.
            self.fragment_depths: dict[str, int] = {}
            self.in_progress: set[str] = set()

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> Any:
            depth = self.depth(node.selection_set)
            if depth > max_depth:
                name = f"'{node.name.value}' " if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"Operation {name}is nested {depth} levels deep; the maximum is {max_depth}.",
                        node,
                    )
                )
            return SKIP  # the depth is known; nothing below needs visiting by this rule

        def depth(self, selection_set: SelectionSetNode | None) -> int:
            if selection_set is None:
                return 0
            deepest = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    below = (
                        0 if selection.name.value.startswith("__") else self.depth(selection.selection_set)
                    )
                    deepest = max(deepest, 1 + below)
                elif isinstance(selection, InlineFragmentNode):
                    deepest = max(deepest, self.depth(selection.selection_set))
                elif isinstance(selection, FragmentSpreadNode):
                    deepest = max(deepest, self.spread_depth(selection.name.value))
            return deepest

        def spread_depth(self, name: str) -> int:
            if name in self.fragment_depths:
                return self.fragment_depths[name]
            fragment = self.fragments.get(name)
            # Unknown fragments and cycles are reported by the specification's own rules.
            if fragment is None or name in self.in_progress:
                return 0
            self.in_progress.add(name)
            depth = self.depth(fragment.selection_set)
            self.in_progress.discard(name)
            self.fragment_depths[name] = depth
            return depth

    return DepthLimit


def alias_limit(max_aliases: int) -> type[ASTValidationRule]:
    """A rule: at most `max_aliases` aliases in the whole document, fragments included.

    Aliases are what let one request run the same resolver many times over."""

    class AliasLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.aliases = 0
            self.first_excess: FieldNode | None = None

        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            if node.alias is not None:
                self.aliases += 1
                if self.aliases == max_aliases + 1:
                    self.first_excess = node

        def leave_document(self, _node: DocumentNode, *_args: Any) -> None:
            if self.first_excess is not None:
                self.report_error(
                    GraphQLError(
                        f"The document has {self.aliases} aliases; the maximum is {max_aliases}.",
                        self.first_excess,
                    )
                )

    return AliasLimit


class RequestCost(CostValidator):
    """Ariadne's cost validator, costing the operation the request runs, with its coerced variables.

    Two changes to Ariadne 1.1.1's: a list argument used as a multiplier counts its length (Ariadne
    tries `int(list)`, fails and ignores it), and the variables are coerced against the operation's
    definitions first, so input objects have the same (Python) keys whether they come as literals
    or as variables. Request-scoped: `DocumentCache` runs it on every request, never caches it,
    and only once the document has passed the cached validation (so no fragment cycles here).
    """

    request_scoped: ClassVar[bool] = True

    def __init__(
        self,
        context: ValidationContext,
        max_cost: int,
        raw_variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        super().__init__(context, max_cost, default_cost=DEFAULT_FIELD_COST, cost_map=COST_MAP)
        self.raw_variables = dict(raw_variables or {})
        self.operation_name = operation_name

    def enter_operation_definition(self, node: OperationDefinitionNode, *args: Any) -> VisitorAction:
        # Costing reads the operation's tree itself: SKIP spares the visitor walking it again.
        if self.operation_name is not None and (node.name is None or node.name.value != self.operation_name):
            return SKIP  # not the operation that runs
        coerced = get_variable_values(
            self.context.schema, node.variable_definitions or (), self.raw_variables
        )
        if isinstance(coerced, list):
            # Variables that do not fit the operation stop execution before any resolver runs,
            # with graphql-core's own messages: nothing to cost.
            return SKIP
        self.variables = coerced.coerced
        super().enter_operation_definition(node, *args)  # type: ignore[no-untyped-call]
        # A skipped node is never left, so the verdict is given here.
        self.leave_operation_definition(node, *args)  # type: ignore[no-untyped-call]
        return SKIP

    def enter_fragment_definition(self, _node: FragmentDefinitionNode, *_args: Any) -> VisitorAction:
        return SKIP  # fragments are costed where they are spread

    def get_args_from_cost_map(
        self, node: FieldNode, parent_type: str, field_args: dict[str, Any]
    ) -> dict[str, Any] | None:
        cost_args: dict[str, Any] | None = super().get_args_from_cost_map(node, parent_type, field_args)
        if cost_args is not None and "per_range_day" in cost_args:
            per_day = cost_args.pop("per_range_day")
            cost_args["complexity"] = cost_args["complexity"] + per_day * range_days(field_args.get("event"))
        return cost_args

    def get_multipliers_from_string(self, multipliers: list[str], field_args: dict[str, Any]) -> list[int]:
        found: list[int] = []
        for accessor in multipliers:
            value: Any = field_args
            for key in accessor.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, list | tuple):
                found.append(len(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                found.append(value)
        return [multiplier for multiplier in found if multiplier > 0]


def range_days(event: Any) -> int:
    """The days of a stats request's `from`..`to`; 1 for a range the resolver refuses unread."""
    if not isinstance(event, dict):
        return 1
    try:
        days = DayRange.parse(event.get("from"), event.get("to"))
    except BadRequest:
        return 1
    return (days.end - days.start).days + 1


def request_cost_rule(
    max_cost: int, variables: Mapping[str, Any] | None, operation_name: str | None
) -> type[ASTValidationRule]:
    """The cost rule for one request (graphql-core makes rules from classes, given the context only)."""

    class RequestCostRule(RequestCost):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context, max_cost, variables, operation_name)

    return RequestCostRule


type RulesForRequest = Callable[[Any, DocumentNode, dict[str, Any]], Collection[type[ASTValidationRule]]]


def validation_rules(static_rules: Rules, max_cost: int) -> RulesForRequest:
    """Ariadne's `validation_rules` callable: the static rules, and the cost rule for this request."""

    def rules(_context: Any, _document: DocumentNode, data: dict[str, Any]) -> Rules:
        cost = request_cost_rule(max_cost, data.get("variables"), data.get("operationName"))
        return (*static_rules, cost)

    return rules


def too_large(max_bytes: int) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": f"Request body is larger than the maximum of {max_bytes} bytes.",
                "extensions": {"code": 413},
            }
        ]
    }


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes | None:
    """The whole request body, or None as soon as it is known to exceed `max_bytes`.

    The declared content-length is checked first, then the bytes actually received (a client can
    omit or understate the header).
    """
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                if int(value) > max_bytes:
                    return None
            except ValueError:
                pass  # an unreadable header: the bytes received decide
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app will see an empty body
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
