"""Reading the times people write: an ISO 8601 date or date-time without an offset is a local
time in the question's time zone (a date is its local midnight). REST parameters, GraphQL
filters and the CLI's options all read them here, so `since=2026-05-01` means the same
everywhere. Standard library only: the CLI imports it at start-up.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHOWN = 100  # characters of a bad value echoed back in an error message
UTC_ZONE = ZoneInfo("UTC")


def zone_of(tz: str | None) -> ZoneInfo:
    """The zone `tz` names, UTC for None; UTC too for an unknown one, which the filter that
    carries it reports."""
    if tz is None:
        return UTC_ZONE
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return UTC_ZONE


def in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` as it is; without an offset, the local time it names in `zone`."""
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=zone)


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """The instant `text` names (ISO 8601 date or date-time), in UTC; without an offset it is
    a local time in `zone`. Raises ValueError with a sentence for people."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # An unescaped + in a query string arrives as a space: 10:00+02:00 -> "10:00 02:00".
        hint = " (send a + in a URL as %2B)" if " " in text else ""
        raise ValueError(
            f"must be an ISO 8601 date or date-time such as 2026-05-01T09:30:00+02:00, "
            f"got {text[:SHOWN]!r}{hint}"
        ) from None
    try:
        return in_zone(moment, zone).astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the supported date range") from None


def parse_date(text: str) -> date:
    """The day `text` names (YYYY-MM-DD). Raises ValueError with a sentence for people."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date YYYY-MM-DD, got {text[:SHOWN]!r}") from None
