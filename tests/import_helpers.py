"""Helpers of the import tests: run an import, read the rows back, compare with the ledger or
with the truth counted from the transcript files alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from claude_api.importer import ImportOptions, ImportSummary, import_transcripts
from claude_api.importer.settlement import IMPORT_NAMESPACE
from claude_api.models.tables import AgentUsage, SkillUsage
from claude_api.pricing import request_cost
from claude_api.tracking import Tracker
from tests.transcripts import Ledger

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def run_import(
    engine: Engine,
    tracker: Tracker,
    *paths: Path,
    idle: timedelta = timedelta(0),
    now: datetime | None = None,
    workers: int = 1,
) -> ImportSummary:
    options = ImportOptions(idle=idle, now=now, workers=workers)
    summary = import_transcripts(list(paths), engine=engine, tracker=tracker, options=options)
    assert summary.ok
    return summary


def agents(engine: Engine) -> list[AgentUsage]:
    with Session(engine) as session:
        return list(session.exec(select(AgentUsage).order_by(AgentUsage.timestamp)))


def skills(engine: Engine) -> list[SkillUsage]:
    with Session(engine) as session:
        return list(session.exec(select(SkillUsage).order_by(SkillUsage.timestamp)))


def one(rows: list[Any], name: str) -> Any:
    found = [
        row
        for row in rows
        if getattr(row, "agent_name", None) == name or getattr(row, "skill_name", None) == name
    ]
    assert len(found) == 1, f"{name}: {len(found)} rows"
    return found[0]


def event_id(session_id: str, key: str) -> uuid.UUID:
    return uuid.uuid5(uuid.uuid5(IMPORT_NAMESPACE, session_id), key)


def assert_spend(row: Any, ledger: Ledger, owner: str, *, until: datetime | None = None) -> None:
    """The row holds exactly what the ledger booked to `owner` (the responses written by
    `until`: what a running invocation spent so far), priced at published prices."""
    expected_tokens = ledger.tokens(owner, until=until)
    assert {name: getattr(row, name) for name in TOKEN_FIELDS} == expected_tokens, owner
    expected = ledger.cost(owner, until=until)
    if expected is None:
        assert row.cost_usd is None and row.cost_source == "unpriced", owner
    else:
        assert row.cost_usd == pytest.approx(expected, rel=1e-9, abs=1e-12), owner


def tokens_of(rows: list[Any]) -> int:
    return sum(sum(getattr(row, name) or 0 for name in TOKEN_FIELDS) for row in rows)


def day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


@dataclass
class Truth:
    """What some transcripts spent, counted as ccusage counts."""

    tokens: dict[str, int]
    cost: float
    responses: int


def truth_of(root: Path) -> Truth:
    """Tokens and cost of the transcripts under `root`, from the files alone: one count per
    API response (its lines deduplicated by message and request id, keeping the largest output
    count), `<synthetic>` replies left out, each response priced on its day by the pricing
    module."""
    kept: dict[tuple[str, str | None], dict] = {}
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or entry.get("type") != "assistant":
                continue
            message = entry.get("message")
            if not isinstance(message, dict):
                continue
            usage = message.get("usage")
            if message.get("model") == "<synthetic>" or not isinstance(usage, dict):
                continue
            key = (message["id"], entry.get("requestId"))
            before = kept.get(key)
            if before is None or usage["output_tokens"] > before["usage"]["output_tokens"]:
                kept[key] = {"usage": usage, "model": message["model"], "at": entry["timestamp"]}
    tokens = dict.fromkeys(TOKEN_FIELDS, 0)
    cost = 0.0
    for response in kept.values():
        usage = response["usage"]
        counts = {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cache_read_tokens": usage.get("cache_read_input_tokens", 0),
            "cache_creation_tokens": usage.get("cache_creation_input_tokens", 0),
        }
        for name, value in counts.items():
            tokens[name] += value
        price = request_cost(response["model"], **counts, at=datetime.fromisoformat(response["at"]))
        assert price is not None, response["model"]
        cost += price
    return Truth(tokens, cost, len(kept))
