"""Opaque cursors for keyset pagination: the last item's sort key, tagged with its listing."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from claude_api.errors import InvalidFilter
from claude_api.models.results import Page

T = TypeVar("T")


def encode_cursor(listing: str, key: Sequence[str]) -> str:
    """A cursor that resumes `listing` after the item whose sort key is `key`."""
    payload = json.dumps([listing, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, size: int) -> list[str]:
    """The sort key in `cursor`; InvalidFilter("after") when it is not one of `listing`'s."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError, TypeError, AttributeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != size + 1
        or values[0] != listing
        or not all(isinstance(value, str) for value in values)
    ):
        raise InvalidFilter("after", "is not a cursor of this listing")
    return values[1:]


def make_page(
    items: Sequence[T], *, limit: int, listing: str, key: Callable[[T], Sequence[str]]
) -> Page[T]:
    """A page from up to `limit + 1` fetched items: the extra one only says there is more."""
    shown = tuple(items[:limit])
    more = len(items) > limit
    return Page(items=shown, next_cursor=encode_cursor(listing, key(shown[-1])) if more else None)
