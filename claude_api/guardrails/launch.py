"""The budget decision for an agent or skill about to start, from wherever the data lives: the
server at CLAUDE_API_URL (a team's: `GET /v1/agents/{name}/budgets`) or the database itself.

Standard library only (psycopg for PostgreSQL): the PreToolUse hook asks before every subagent
and skill, and `claude-api run` before every task.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from claude_api.guardrails import dbapi
from claude_api.guardrails.verdicts import ALLOW, Decision, check_call

CONNECT_SECONDS = 2.0


def launch_decision(
    kind: str,
    name: str,
    *,
    project_id: str | None,
    session_id: str | None = None,
    url: str | None = None,
    key: str | None = None,
    database_url: str,
    now: datetime | None = None,
) -> Decision:
    """Whether the `kind` (agent or skill) named `name` may start in `project_id`: asked of the
    server at `url` (with the API `key`) when given, else of the database at `database_url`.
    A session the executor ran counts under the project it registered.

    Raises when neither can be reached; a database never upgraded to hold budgets has none.
    """
    if url:
        return _ask_server(url, key, kind, name, project_id, session_id)
    connection = dbapi.connect(database_url, timeout=CONNECT_SECONDS)
    try:
        project = registered_project(connection, session_id) or project_id
        decision, _ = check_call(
            connection, kind=kind, name=name, project_id=project, now=now or datetime.now(UTC)
        )
        return decision
    except dbapi.NoBudgetsTable:
        return Decision(ALLOW)  # the database predates budgets: none is set
    finally:
        connection.close()


def registered_project(connection: dbapi.Connection, session_id: str | None) -> str | None:
    """The project the executor registered the session under, if it ran it as a task."""
    if not session_id:
        return None
    mark = ":s" if connection.dialect == "sqlite" else "%(s)s"
    try:
        rows = connection.rows(
            f"SELECT project_id FROM task_sessions WHERE session_id = {mark}", {"s": session_id}
        )
    except dbapi.NoBudgetsTable:
        return None
    return rows[0][0] if rows else None


def _ask_server(
    url: str,
    key: str | None,
    kind: str,
    name: str,
    project_id: str | None,
    session_id: str | None,
) -> Decision:
    import http.client
    from urllib.parse import quote, urlencode, urlsplit

    parts = urlsplit(url.rstrip("/").removesuffix("/graphql"))
    query = {"project_id": project_id, "session_id": session_id}
    path = f"{parts.path}/v1/{kind}s/{quote(name, safe='')}/budgets?" + urlencode(
        {field: value for field, value in query.items() if value}
    )
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.netloc, timeout=CONNECT_SECONDS)
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"the server at {url} answered HTTP {response.status}: {body[:200]!r}")
    answer = json.loads(body)
    return Decision(answer.get("decision", ALLOW), tuple(answer.get("reasons") or ()))
