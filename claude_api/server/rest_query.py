"""Parsing of the REST GETs' parameters: a request's path and query parameters, checked against
the endpoint's declared `Param`s, into the query layer's `UsageFilter` and keyword arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from starlette.requests import Request

from claude_api.errors import InvalidFilter
from claude_api.models.filters import UsageFilter
from claude_api.models.local_time import zone_of


class InvalidQuery(Exception):
    """The request's parameters have problems; `errors` lists each as {"field", "message"}."""

    def __init__(self, errors: list[dict[str, str]], message: str | None = None) -> None:
        self.errors = errors
        self.message = message or "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(self.message)


@dataclass(frozen=True, kw_only=True)
class Param:
    """A path or query parameter: how it is documented and parsed, and where its value goes.

    A value sets the filter field `field` (with the `implies` fields beside it) or, with
    `option`, the query function's keyword argument of that name. `default` is applied when
    the parameter is absent.
    """

    name: str
    description: str
    schema: Mapping[str, Any]
    parse: Callable[[str, ZoneInfo], Any]
    location: Literal["query", "path"] = "query"
    field: str | None = None
    option: str | None = None
    implies: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default: Any = None

    def __post_init__(self) -> None:
        if (self.field is None) == (self.option is None):
            raise TypeError(f"parameter {self.name} must set either a field or an option")


@dataclass(frozen=True, kw_only=True)
class ParsedQuery:
    """A request's parameters as the query layer takes them."""

    filter: UsageFilter
    options: dict[str, Any]
    # The query layer's name of each field or argument set -> the parameter that set it, so its
    # errors name what the client sent (`project`, not `project_id`).
    sources: dict[str, str]

    def param_of(self, name: str) -> str:
        """The request parameter behind the query layer's field or argument `name`."""
        return self.sources.get(name, name)


def parse_request(
    request: Request,
    params: Sequence[Param],
    *,
    fixed: Mapping[str, Any] | None = None,
    refused: Mapping[str, str] | None = None,
) -> ParsedQuery:
    """The request's path and query parameters as a filter and keyword arguments.

    `fixed` filter fields come from the route (the kind); `refused` maps a parameter name to
    the reason it is not taken here. Raises InvalidQuery listing every problem: unknown or
    repeated parameters, values that do not parse, and what `UsageFilter` rejects.
    """
    declared = {param.name: param for param in params}
    texts, errors = _texts(request, declared, refused or {})
    zone = zone_of(texts.get("tz"))
    filter_fields: dict[str, Any] = dict(fixed or {})
    options: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for param in params:
        text = texts.get(param.name)
        if text is None:
            value = param.default
            if value is None:
                continue
        else:
            try:
                value = param.parse(text, zone)
            except (ValueError, InvalidFilter) as error:
                message = error.message if isinstance(error, InvalidFilter) else str(error)
                errors.append({"field": param.name, "message": message})
                continue
        if param.option is not None:
            options[param.option] = value
            sources[param.option] = param.name
            continue
        targets = {**param.implies, param.field: value}
        taken = {sources[name] for name in targets if name in sources}
        if taken and text is not None:
            errors.append({"field": param.name, "message": f"cannot be combined with {min(taken)}"})
            continue
        filter_fields.update(targets)
        sources.update(dict.fromkeys(targets, param.name))
    if errors:
        raise InvalidQuery(errors)
    try:
        usage_filter = UsageFilter(**filter_fields)
    except InvalidFilter as error:
        problem = {"field": sources.get(error.field, error.field), "message": error.message}
        raise InvalidQuery([problem]) from None
    return ParsedQuery(filter=usage_filter, options=options, sources=sources)


def _texts(
    request: Request, declared: Mapping[str, Param], refused: Mapping[str, str]
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Each given parameter's text, and the problems of unknown or repeated ones: a typo such as
    `projet` silently ignored would answer with wrong numbers."""
    texts = {
        name: value
        for name, value in request.path_params.items()
        if name in declared and declared[name].location == "path"
    }
    errors = []
    accepted = [name for name, param in declared.items() if param.location == "query"]
    query = request.query_params
    for name in dict.fromkeys(query.keys()):
        values = query.getlist(name)
        if name in refused:
            errors.append({"field": name, "message": refused[name]})
        elif name not in accepted:
            errors.append({"field": name, "message": _unknown(name, accepted)})
        elif len(values) > 1:
            errors.append({"field": name, "message": "is given more than once"})
        else:
            texts[name] = values[0]
    return texts, errors


def _unknown(name: str, accepted: list[str]) -> str:
    close = difflib.get_close_matches(name, accepted, n=1)
    if close:
        return f"is not a parameter of this endpoint; did you mean {close[0]!r}?"
    known = ", ".join(accepted) or "none"
    return f"is not a parameter of this endpoint (it takes: {known})"
