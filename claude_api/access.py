"""Who is asking and what they may do: the scope and project of an API key, applied to what a
request reads (filters, task and name lookups) and writes (events, tasks), on every surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from claude_api.errors import Forbidden
from claude_api.events import UsageEvent
from claude_api.models.filters import UsageFilter
from claude_api.models.keys import KeyInfo, Scope

_DOING = {Scope.READ: "read analytics", Scope.WRITE: "record events", Scope.ADMIN: "do this"}


@dataclass(frozen=True, kw_only=True)
class Principal:
    """The caller of one request. `project_id` set: it sees and writes that project only.

    `key_id` is the public id of its API key; None when authentication is off or the caller is
    the CLI in-process, who own the database and have full access.
    """

    scope: Scope
    project_id: str | None = None
    key_id: str | None = None

    @classmethod
    def of_key(cls, key: KeyInfo) -> Principal:
        """The caller presenting `key`."""
        return cls(scope=key.scope, project_id=key.project_id, key_id=key.key_id)

    def require(self, needed: Scope) -> None:
        """Raise Forbidden unless the scope allows what needs `needed`."""
        if not self.scope.allows(needed):
            allowed = " or ".join(s.value for s in Scope if s.allows(needed))
            raise Forbidden(
                f"this API key's scope is {self.scope.value}, which may not {_DOING[needed]}: "
                f"use a key with scope {allowed}"
            )

    def project(self, requested: str | None, *, field: str = "project_id") -> str | None:
        """The project a request is about: the one it names, which for a key bound to a
        project must be that project (Forbidden otherwise), and that project when it names none.
        """
        if self.project_id is None or requested == self.project_id:
            return requested
        if requested is None:
            return self.project_id
        raise Forbidden(
            f"this API key is bound to project {self.project_id!r}, not {requested!r}",
            field=field,
        )

    def restrict(self, filter: UsageFilter) -> UsageFilter:
        """`filter` narrowed to the key's project (Forbidden if it names another one)."""
        project = self.project(filter.project_id)
        return filter if project == filter.project_id else filter.replace(project_id=project)

    def claim(self, events: Sequence[UsageEvent], location: str = "events") -> list[UsageEvent]:
        """The events to store on this caller's behalf: one without a project gets the key's,
        and one for another project makes the whole batch Forbidden, each such event listed."""
        if self.project_id is None:
            return list(events)
        problems = [
            {
                "field": f"{location}[{index}].project_id" if location else "project_id",
                "message": f"this API key may only record events of project {self.project_id!r}",
            }
            for index, event in enumerate(events)
            if event.project_id not in (None, self.project_id)
        ]
        if problems:
            raise Forbidden(
                f"{len(problems)} events are for another project than the API key's "
                f"({self.project_id!r}); nothing was stored",
                field="project_id",
                problems=problems,
            )
        return [
            event if event.project_id else event.model_copy(update={"project_id": self.project_id})
            for event in events
        ]


FULL_ACCESS = Principal(scope=Scope.ADMIN)
