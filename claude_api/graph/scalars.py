"""`Long`, the GraphQL scalar of every count and token sum: GraphQL's `Int` is 32-bit, and the
token sums of one busy month pass 2^31."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NewType

import strawberry
from graphql import GraphQLError, IntValueNode, ValueNode, print_ast
from strawberry.types.scalar import ScalarDefinition

Long = NewType("Long", int)

# The largest integer every JSON reader keeps exact (a double's 53-bit mantissa).
MAX_SAFE = 2**53 - 1
DESCRIPTION = (
    "An integer exact up to 2^53 - 1 (9,007,199,254,740,991) in magnitude, serialized as a JSON "
    "number: every count and token sum, where GraphQL's 32-bit `Int` would overflow."
)


def _checked(value: Any) -> int:
    # bool is an int in Python, and a float may carry a fraction: neither is a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError(f"Long cannot represent a non-integer value: {value!r}")
    if abs(value) > MAX_SAFE:
        raise GraphQLError(f"Long cannot represent {value}: beyond 2^53 - 1 in magnitude")
    return value


def _serialize(value: Any) -> int:
    # PostgreSQL sums BIGINT columns as NUMERIC: a whole Decimal is the integer it holds.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    return _checked(value)


def _parse_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError(f"Long cannot represent a non-integer value: {print_ast(node)}")
    return _checked(int(node.value))


LONG: ScalarDefinition = strawberry.scalar(
    name="Long",
    description=DESCRIPTION,
    serialize=_serialize,
    parse_value=_checked,
    parse_literal=_parse_literal,
)
SCALARS: dict[object, ScalarDefinition] = {Long: LONG}
