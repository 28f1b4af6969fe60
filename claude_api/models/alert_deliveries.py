"""The webhook deliveries of alert events: claimed by one server process at a time, and
finished as delivered or failed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.models.alerts import (
    MAX_MESSAGE_LENGTH,
    AlertEvent,
    AlertEventRow,
    Delivery,
    event_of,
)

_EVENTS = AlertEventRow.__table__


def claim_deliveries(session: Session, *, limit: int = 100) -> list[AlertEvent]:
    """Events whose webhook delivery is pending, claimed for this process (marked `sending`
    one by one, so two server processes never deliver the same event); the caller commits."""
    pending = session.execute(
        sa.select(_EVENTS.c.id)
        .where(_EVENTS.c.delivery == Delivery.PENDING.value)
        .order_by(_EVENTS.c.id)
        .limit(limit)
    ).scalars()
    claimed = []
    for event_id in list(pending):
        taken = session.execute(
            sa.update(_EVENTS)
            .where(_EVENTS.c.id == event_id, _EVENTS.c.delivery == Delivery.PENDING.value)
            .values(delivery=Delivery.SENDING.value)
        )
        if taken.rowcount == 1:
            row = session.execute(sa.select(_EVENTS).where(_EVENTS.c.id == event_id)).one()
            claimed.append(event_of(row))
    return claimed


def finish_delivery(
    session: Session,
    event_id: int,
    *,
    delivered: bool,
    attempts: int,
    error: str | None,
    now: datetime,
) -> None:
    """Record how the delivery of a claimed event ended; the caller commits."""
    session.execute(
        sa.update(_EVENTS)
        .where(_EVENTS.c.id == event_id)
        .values(
            delivery=(Delivery.DELIVERED if delivered else Delivery.FAILED).value,
            attempts=attempts,
            delivered_at=now if delivered else None,
            last_error=error[:MAX_MESSAGE_LENGTH] if error else None,
        )
    )
