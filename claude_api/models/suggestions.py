"""Close names for an unknown agent or skill: what REST's 404, GraphQL's NOT_FOUND and the
CLI suggest, by one rule. Standard library only: the CLI imports it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

MAX_SUGGESTIONS = 3
SIMILAR = 0.6  # difflib's similarity ratio from which a name is worth suggesting


def close_names(name: str, names: Iterable[str]) -> tuple[str, ...]:
    """Up to MAX_SUGGESTIONS of `names` that look like `name`, the closest first, then by name."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)
    scored = []
    for known in names:
        matcher.set_seq1(known)
        if matcher.real_quick_ratio() >= SIMILAR and matcher.quick_ratio() >= SIMILAR:
            score = matcher.ratio()
            if score >= SIMILAR:
                scored.append((-score, known))
    return tuple(known for _, known in sorted(scored)[:MAX_SUGGESTIONS])
