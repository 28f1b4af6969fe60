"""The CLI's canned GraphQL operations, one `<Name>.graphql` file per operation named `<Name>`."""

from __future__ import annotations

from functools import cache
from importlib import resources

SUFFIX = ".graphql"


@cache
def load(name: str) -> str:
    """The text of the operation `name`; FileNotFoundError when there is no such file."""
    return resources.files(__name__).joinpath(f"{name}{SUFFIX}").read_text(encoding="utf-8")


def names() -> list[str]:
    """Every canned operation, by name."""
    return sorted(
        entry.name.removesuffix(SUFFIX)
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(SUFFIX)
    )
