"""Bounds on one GraphQL request: its document's tokens, depth and aliases, checked before anything
runs, so a request cannot ask for thousands of costly fields at once; and how deep its JSON nests.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from graphql import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    visit,
)
from graphql.language import Visitor
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator

# Far above what the CLI's operations need (depth 4, 120 tokens, no aliases) and GraphiQL's
# introspection (not counted in depth). No type nests itself today; the depth bound keeps it so
# should one ever do. Each field's own cost is bounded by page sizes and the query deadline.
MAX_QUERY_DEPTH = 10
MAX_QUERY_TOKENS = 2000
MAX_QUERY_ALIASES = 15
# A request's JSON (its body, variables and extensions). The schema's inputs nest 4 deep at most;
# far deeper JSON only costs (and orjson refuses to encode beyond 254 levels).
MAX_JSON_DEPTH = 32


class NonEmptySelections(ValidationRule):
    """A selection set must select something. The GraphQL grammar says so, but graphql-core 3.3
    parses `{}`, which Strawberry's depth limiter cannot measure (it raised ValueError: a 500)."""

    def enter_selection_set(self, node: SelectionSetNode, *_args: Any) -> None:
        if not node.selections:
            self.report_error(GraphQLError("A selection set must select at least one field.", node))


def depth_limit(max_depth: int) -> type[ValidationRule]:
    """Strawberry's depth limit (introspection not counted), skipped for a document it cannot
    measure, which other rules refuse anyway: an empty selection set (`NonEmptySelections`;
    the limiter raised ValueError) or a spread of a fragment the document does not define
    (graphql-core's KnownFragmentNames; the limiter raised KeyError)."""
    measure = create_validator(max_depth, None, None)

    class DepthLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            if _measurable(context.document):
                measure(context)  # reports through the context as it measures

    return DepthLimit


def _measurable(document: Any) -> bool:
    empty = False
    defined: set[str] = set()
    spread: set[str] = set()

    class Finder(Visitor):
        def enter_selection_set(self, node: SelectionSetNode, *_args: Any) -> None:
            nonlocal empty
            empty = empty or not node.selections

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_args: Any) -> None:
            defined.add(node.name.value)

        def enter_fragment_spread(self, node: FragmentSpreadNode, *_args: Any) -> None:
            spread.add(node.name.value)

    visit(document, Finder())
    return not empty and spread <= defined


def nested_deeper(value: object, limit: int) -> bool:
    """Whether decoded JSON `value` has lists or objects nested more than `limit` levels deep
    (`[]` and `{}` are one level). Iterative, so any depth is measured without recursion."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, list | dict)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, list | dict) for item in level)


def limit_extensions() -> list[Callable[[], SchemaExtension]]:
    """Schema extension factories that refuse a document past the bounds: too many tokens is a
    parse error, too deep or too many aliases a validation error.

    The rule classes are made once, here: `ValidationCache` keys its entries by the document and
    the rules, so rules made afresh per request (as `MaxAliasesLimiter` does) never hit it.
    """
    rules = [NonEmptySelections, depth_limit(MAX_QUERY_DEPTH), alias_limit(MAX_QUERY_ALIASES)]
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_QUERY_TOKENS),
        partial(AddValidationRules, rules),
    ]
