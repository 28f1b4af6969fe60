"""The numbers of SQL results as the answers hold them: the drivers return integer sums as
NUMERIC (PostgreSQL), empty sums as NULL, and dollar sums with the noise of their summation
order."""

from __future__ import annotations

from decimal import Decimal


def as_int(value: int | Decimal | None) -> int:
    """An integer sum as int; PostgreSQL sums BIGINT as NUMERIC, and an empty sum is NULL."""
    return 0 if value is None else int(value)


def as_known_int(value: int | Decimal | None) -> int | None:
    """A sum of reported values as int; None (unknown) stays None."""
    return None if value is None else int(value)


# Dollars to this many decimal places: prices are per million tokens, so a cost has at most a
# few more decimals than a millionth of a dollar; finer digits of a sum are the noise of adding
# binary floats in whichever order the database read the rows, which differs between plans.
USD_DECIMALS = 10


def as_usd(value: float | Decimal | None) -> float | None:
    """A sum or average of costs in dollars, free of the float noise of its summation order:
    the same invocations give the same figure whichever way they were read."""
    return None if value is None else round(float(value), USD_DECIMALS)


def as_float(value: float | Decimal | None) -> float | None:
    """An average or ratio as float (PostgreSQL averages integers as NUMERIC)."""
    return None if value is None else float(value)
