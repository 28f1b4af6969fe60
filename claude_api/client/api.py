"""A command's way to the API: the settings behind `--url`, and failures told as one sentence
on stderr with exit code 1, with the closest names for an unknown agent or skill.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from claude_api.client import output
from claude_api.client.transport import Api, ApiError
from claude_api.config import Settings
from claude_api.models.suggestions import close_names

NOT_FOUND = "NOT_FOUND"

# GraphQL argument or filter field -> the option that sets it, to name it in an error.
OPTIONS = {
    "since": "--since",
    "until": "--until",
    "tz": "--tz",
    "project_id": "--project",
    "projectId": "--project",
    "period": "--period",
    "date": "--date",
    "on": "--date",
    "limit": "--limit",
    "min_invocations": "--min-invocations",
    "metric": "--by",
    "name": "the name",
}


@contextmanager
def open_api(url: str | None, *, kind: str | None = None, name: str | None = None) -> Iterator[Api]:
    """The API at `url` (else CLAUDE_API_URL, else the local database) for the block.

    An ApiError from the block or the connection is printed as a sentence and exits 1; when the
    block asked about the `kind` named `name` and it is unknown, the closest names are suggested.
    """
    settings = Settings(url=url) if url else Settings()
    try:
        with Api.connect(settings) as api:
            try:
                yield api
            except ApiError as error:
                if error.code == NOT_FOUND and kind is not None and name is not None:
                    message = _with_suggestions(api, error, kind, name)
                    raise ApiError(message, code=NOT_FOUND) from None
                raise
    except ApiError as error:
        output.error(describe(error))
        raise typer.Exit(1) from None


def describe(error: ApiError) -> str:
    """The error as a sentence, naming the option behind a bad input."""
    if error.field is None:
        return error.message
    option = OPTIONS.get(error.field, error.field)
    detail = error.message.removeprefix(f"{error.field}: ")
    return f"invalid {option}: {detail}"


def _with_suggestions(api: Api, error: ApiError, kind: str, name: str) -> str:
    try:
        names = api.run("Names", kind=kind.upper())["names"]
    except ApiError:
        return error.message  # the suggestions are a courtesy; the error itself stands
    close = close_names(name, names)
    if close:
        return f"{error.message}; did you mean {_either(close)}?"
    if names:
        return f"{error.message}; `claude-api {kind}s stats` lists the known {kind}s"
    return f"{error.message}; no {kind} has been recorded yet"


def _either(names: tuple[str, ...]) -> str:
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
