"""How the CLI runs its canned GraphQL operations with gql: over HTTP against a claude-api
server, or in-process against the local database with the server's own schema. The only module
that imports gql; every failure leaves it as an `ApiError` that reads as a sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gql import Client, GraphQLRequest
from gql.transport import Transport
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from graphql import ExecutionResult, print_ast

from claude_api.client import operations
from claude_api.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from claude_api.tracking import Tracker

HTTP_TIMEOUT = 60.0  # seconds; a report over a large range may take a while on the server
GRAPHQL_PATH = "/graphql"
AUTH_STATUSES = {401: "UNAUTHENTICATED", 403: "FORBIDDEN"}


class ApiError(Exception):
    """An operation that failed, told as a sentence; `code` and `field` are the GraphQL error's
    `extensions.code` and `extensions.field` when it came from one."""

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


class Api:
    """A connected gql session: `run(operation, **variables)` answers with the operation's data."""

    def __init__(self, session: Any, where: str, transport: Transport | None = None) -> None:
        self._session = session
        self.where = where  # the server's URL or the database's, for error messages
        self._transport = transport

    def local_engine(self) -> Engine | None:
        """The local database's engine when this API runs in-process (opening the database,
        which must exist), None when it is a server: what a command reads from directly when
        GraphQL would cost more than the answer (an export's stream of rows)."""
        if not isinstance(self._transport, InProcessTransport):
            return None
        return self._transport.engine(create=False)

    @classmethod
    @contextmanager
    def connect(cls, settings: Settings) -> Iterator[Api]:
        """The API at `settings.url`, or, without one, in this process on `settings.database_url`.

        Raises ApiError when the URL is malformed or the local database cannot be opened.
        """
        transport: Transport
        if settings.url:
            endpoint = graphql_endpoint(settings.url)
            key = settings.api_key.get_secret_value() if settings.api_key else None
            transport = _http_transport(endpoint, api_key=key)
            where = endpoint
        else:
            transport = InProcessTransport(settings.database_url)
            where = transport.where
        with Client(transport=transport) as session:
            yield cls(session, where, transport)

    @contextmanager
    def stream(self, path: str, params: dict[str, str]) -> Iterator[Iterator[str]]:
        """The text of the server's GET `path` (e.g. /v1/invocations/export) as it arrives.

        Raises ApiError when the server cannot be reached or refuses the request (its problem's
        message and field), or when this API runs in-process.
        """
        import httpx

        if not isinstance(self._transport, _http_transport_class()):
            raise ApiError(f"{path} is a server's route: ask one with --url")
        url = self._transport.url.removesuffix(GRAPHQL_PATH) + path
        started = False
        try:
            with (
                httpx.Client(headers=self._transport.auth_headers, timeout=HTTP_TIMEOUT) as client,
                client.stream("GET", url, params=params) as response,
            ):
                if response.status_code != 200:
                    response.read()
                    raise _refusal(response, url)
                started = True
                yield response.iter_text()
        except httpx.TransportError as error:
            if started:
                raise ApiError(
                    f"the server at {url} stopped before the end of its answer ({error})",
                    code="SERVER_ERROR",
                ) from None
            raise ApiError(
                f"cannot reach the claude-api server at {url} ({error}); is it running? "
                "Check --url or CLAUDE_API_URL",
                code="UNREACHABLE",
            ) from None

    def run(self, operation: str, **variables: Any) -> dict[str, Any]:
        """Run the canned `operation` with `variables` (None values are left out)."""
        request = GraphQLRequest(
            _document(operation),
            variable_values={key: value for key, value in variables.items() if value is not None},
            operation_name=operation,
        )
        try:
            return self._session.execute(request)
        except TransportQueryError as error:
            raise _query_error(error) from None
        except TransportConnectionFailed as error:
            raise ApiError(
                f"cannot reach the claude-api server at {self.where} ({error}); is it running? "
                "Check --url or CLAUDE_API_URL",
                code="UNREACHABLE",
            ) from None
        except TransportServerError as error:
            raise _server_error(error, self.where) from None
        except TransportProtocolError:
            raise ApiError(
                f"{self.where} did not answer as a claude-api GraphQL endpoint; check --url or "
                "CLAUDE_API_URL",
                code="PROTOCOL",
            ) from None


def graphql_endpoint(url: str) -> str:
    """The GraphQL endpoint of a server given by its base URL or by the endpoint itself."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"the server URL must start with http:// or https://, got {url!r}")
    base = url.rstrip("/")
    return base if base.endswith(GRAPHQL_PATH) else base + GRAPHQL_PATH


@cache
def _document(operation: str) -> Any:
    return GraphQLRequest(operations.load(operation)).document


def _query_error(error: TransportQueryError) -> ApiError:
    first = (error.errors or [{}])[0]
    if not isinstance(first, dict):
        return ApiError(str(error))
    extensions = first.get("extensions") or {}
    return ApiError(
        str(first.get("message") or error),
        code=extensions.get("code"),
        field=extensions.get("field"),
    )


def _refusal(response: Any, where: str) -> ApiError:
    """A REST route's error answer as an ApiError: its problem's message and first field."""
    message, field = _problem(response)
    if response.status_code == 403 and message:
        # A valid key refused what it asked (another project's rows): the server says why.
        return ApiError(str(message), code=AUTH_STATUSES[403], field=field)
    if response.status_code in AUTH_STATUSES:
        error = TransportServerError(f"HTTP {response.status_code}", response.status_code)
        return _server_error(error, where)
    if response.status_code in (404, 405):
        return ApiError(
            f"there is no claude-api route at {where} (HTTP {response.status_code}); check --url "
            "or CLAUDE_API_URL",
            code="PROTOCOL",
        )
    return ApiError(
        str(message or f"the server at {where} failed (HTTP {response.status_code})"),
        code="BAD_USER_INPUT" if response.status_code == 400 else "SERVER_ERROR",
        field=field,
    )


def _problem(response: Any) -> tuple[Any, Any]:
    """The message and first field of a REST error body, None where it has none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    return first.get("message") or body.get("message"), first.get("field")


def _server_error(error: TransportServerError, where: str) -> ApiError:
    if error.code in AUTH_STATUSES:
        return ApiError(
            f"the server at {where} refused the request (HTTP {error.code}): set CLAUDE_API_KEY "
            "to a valid API key",
            code=AUTH_STATUSES[error.code],
        )
    if error.code in (404, 405):
        return ApiError(
            f"there is no claude-api GraphQL endpoint at {where} (HTTP {error.code}); check --url "
            "or CLAUDE_API_URL",
            code="PROTOCOL",
        )
    return ApiError(f"the server at {where} failed (HTTP {error.code})", code="SERVER_ERROR")


def _http_transport(url: str, *, api_key: str | None) -> Transport:
    """gql's httpx transport to `url`, with `api_key` as a bearer token."""
    return _http_transport_class()(url, api_key=api_key)


@cache
def _http_transport_class() -> type[Transport]:
    # httpx loads only for a server's URL: a command run in-process never needs it.
    from gql.transport.httpx import HTTPXTransport

    class HTTPTransport(HTTPXTransport):
        """gql's httpx transport with an API key, and 401/403 told apart even with a GraphQL
        body."""

        def __init__(self, url: str, *, api_key: str | None) -> None:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            super().__init__(url=url, headers=headers, timeout=HTTP_TIMEOUT)
            self.auth_headers = headers

        def _prepare_result(self, response: Any) -> ExecutionResult:
            # A server may explain a refusal in a GraphQL error body, which gql would pass on as
            # an ordinary query error; the status says more.
            if response.status_code in AUTH_STATUSES:
                raise TransportServerError(f"HTTP {response.status_code}", response.status_code)
            return super()._prepare_result(response)

    return HTTPTransport


FILL_HINT = "run `claude-api import`, `claude-api hook install` or `claude-api demo`"


class InProcessTransport(Transport):
    """A sync gql transport that executes documents against the server's schema in this process,
    on the local database. The database opens on the first operation: a query only opens one
    that exists (it never creates a SQLite file or its directory), a mutation may create it;
    migrations run when it opens, a tracker starts only if a mutation needs one. Errors carry the
    same codes as over HTTP.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.where = _readable_url(database_url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: LocalContext | None = None
        self._schema: Any = None

    def connect(self) -> None:
        pass  # the database opens with the first operation, which says whether it may create it

    def engine(self, *, create: bool) -> Engine:
        """The database's engine, opened (and, with `create`, made) on first use."""
        if self._context is None:
            self._open(create=create)
        assert self._context is not None
        return self._context.engine

    def _open(self, *, create: bool) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from claude_api.models.db import make_engine, upgrade

        try:
            parsed = make_url(self.database_url)
        except (ArgumentError, ValueError):
            raise ApiError(
                f"CLAUDE_API_DATABASE_URL is not a database URL ({self.where!r}); expected e.g. "
                "sqlite:////path/to/claude-api.db or postgresql+psycopg://user@host/db",
                code="DATABASE_UNAVAILABLE",
            ) from None
        missing = _missing_sqlite_file(parsed)
        if missing is not None and not create:
            raise ApiError(f"no database at {missing} yet: {FILL_HINT}", code="NO_DATABASE")
        engine = None
        try:
            engine = make_engine(self.database_url)
            upgrade(engine)
        except Exception as error:
            if engine is not None:
                engine.dispose()
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise ApiError(
                f"cannot open the database {self.where} ({reason}); check "
                "CLAUDE_API_DATABASE_URL, or ask a server with --url",
                code="DATABASE_UNAVAILABLE",
            ) from None
        self._context = LocalContext(engine)
        self._loop = asyncio.new_event_loop()

    def execute(self, request: GraphQLRequest, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Execute `request` with the server's schema, its errors formatted as over HTTP."""
        from claude_api.graph.errors import translate_error

        self.engine(create=_is_mutation(request))
        assert self._loop is not None
        if self._schema is None:  # on first use: a command reading the engine only needs none
            from claude_api.graph.schema import build_schema

            self._schema = build_schema()
        result = self._loop.run_until_complete(
            self._schema.execute(
                print_ast(request.document),
                variable_values=request.variable_values,
                context_value=self._context,
                operation_name=request.operation_name,
            )
        )
        errors = [translate_error(error).formatted for error in result.errors or ()]
        return ExecutionResult(data=result.data, errors=errors or None)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()
            self._loop = None
        if self._context is not None:
            self._context.close()
            self._context = None


def _readable_url(database_url: str) -> str:
    """The URL for messages, its password hidden; as given when it does not parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return database_url.split("@")[-1]  # whatever precedes an @ may hold a password


def _missing_sqlite_file(parsed: Any) -> Path | None:
    """The SQLite file `parsed` names when it does not exist yet; None for any other database."""
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def _is_mutation(request: GraphQLRequest) -> bool:
    from graphql import OperationDefinitionNode, OperationType

    return any(
        isinstance(node, OperationDefinitionNode) and node.operation is OperationType.MUTATION
        for node in request.document.definitions
    )


class LocalContext:
    """The GraphQL context of in-process execution: what the server's `Services` give resolvers,
    the same read gateway included, without a deadline.

    Its caller has full access, as the server without authentication: whoever can open the
    database owns it.
    """

    deadline = None

    def __init__(self, engine: Engine) -> None:
        from claude_api.access import FULL_ACCESS
        from claude_api.models.gateway import Gateway

        self.engine = engine
        self.gateway = Gateway(engine, threads=4)
        self.principal = FULL_ACCESS

    @cached_property
    def tracker(self) -> Tracker:
        """The tracker for mutations, started on first use: the CLI's reads never need one."""
        from claude_api.tracking import build_tracker

        return build_tracker(self.engine)

    def close(self) -> None:
        self.gateway.close()
        if "tracker" in self.__dict__:
            self.tracker.close()
        self.engine.dispose()
