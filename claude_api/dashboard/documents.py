"""The GraphQL documents the dashboard's pages send, read from its `queries.js` as the browser
builds them: the tests validate them against the schema and the benchmark runs them."""

from __future__ import annotations

import re
from functools import cache

from claude_api.dashboard import FILES

QUERIES = FILES / "js" / "queries.js"
# `const NAME = `...`;` or `const NAME = "...";`, whose body may use ${OTHER} pieces.
_PIECE = re.compile(r"const (\w+) =\s*[`\"]((?:[^`\"])*)[`\"];", flags=re.DOTALL)
_USE = re.compile(r"\$\{(\w+)\}")


@cache
def pieces() -> dict[str, str]:
    """Every string constant of queries.js by name, its `${NAME}` uses filled in."""
    found = dict(_PIECE.findall(QUERIES.read_text(encoding="utf-8")))

    def filled(text: str) -> str:
        while "${" in text:
            text = _USE.sub(lambda match: found[match.group(1)], text)
        return text

    return {name: filled(body) for name, body in found.items()}


def documents() -> dict[str, str]:
    """The pages' queries by constant name (OVERVIEW, TRENDS, USAGE, TASKS, TASK, ...)."""
    return {name: body for name, body in pieces().items() if "query " in body}
