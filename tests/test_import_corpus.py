"""A corpus of copied transcripts (months-old lines, fresh file times) imports with every token
and dollar of the truth, one row per call made, and no session left running.

The truth is counted from the files alone (`truth_of`), the way ccusage counts: one count per
API response (its lines deduplicated by message id, keeping the largest output count),
`<synthetic>` replies left out, each response priced on its day by the pricing module.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from claude_api.tracking import Tracker
from tests.import_helpers import TOKEN_FIELDS, agents, run_import, skills, truth_of
from tests.transcripts import (
    HAIKU,
    SONNET,
    Ledger,
    Transcript,
    agent_call,
    other_call,
    skill_call,
    text_block,
    write_meta,
)

SESSIONS = 50
SUBAGENT_TYPES = ["general-purpose", "Explore", "Plan", "code-reviewer", "debugger"]
SKILL_NAMES = ["lint-fix", "review-pr", "commit", "deploy"]
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Corpus:
    """What was composed: the calls made, as (kind, name, status), and the transcripts."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    files: list[tuple[Transcript, Path, dict | None]] = field(default_factory=list)

    def write(self, until: datetime | None = None) -> None:
        """Write every transcript (as it stood at `until`: its lines dated until then)."""
        for transcript, path, meta in self.files:
            count = None if until is None else sum(1 for at in transcript.times if at <= until)
            if count == 0:
                continue
            transcript.write(path, upto=count)
            if meta is not None:
                write_meta(path, **meta)

    def moments(self) -> list[datetime]:
        """Every line's time, in order."""
        return sorted({at for transcript, _, _ in self.files for at in transcript.times})


class _Session:
    """One composed session: its main transcript, its subagents' and where they go."""

    def __init__(self, corpus: Corpus, rng: random.Random, project: Path, index: int) -> None:
        self.corpus = corpus
        self.rng = rng
        self.newer = rng.random() < 0.6  # 2.1.x, nested layout with sidecars; else 2.0.x flat
        self.version = "2.1.100" if self.newer else "2.0.76"
        self.session_id = f"5e55{index:04d}-0000-4000-8000-{rng.getrandbits(48):012x}"
        self.project = project
        self.ledger = Ledger()  # not the truth: only the helpers' bookkeeping
        start = BASE + timedelta(days=rng.randrange(40), minutes=rng.randrange(600))
        self.main = Transcript(
            self.ledger,
            session_id=self.session_id,
            cwd="/home/dev/corpus",
            start=start,
            version=self.version,
        )
        corpus.files.append((self.main, project / f"{self.session_id}.jsonl", None))
        self.pending: list[tuple[str, str, str, str]] = []  # background: id, agent, type, status
        self.finished: list[tuple[Transcript, str]] = []  # subagents a later call may resume

    def usage(self) -> tuple[int, int, int, int]:
        rng = self.rng
        return (
            rng.randrange(1, 60),
            rng.randrange(20, 2500),
            rng.randrange(2_000, 120_000),
            rng.choice([0, 0, rng.randrange(100, 8_000)]),
        )

    def compose(self) -> None:
        main, rng = self.main, self.rng
        self.corpus.calls[("agent", "main", "completed")] += 1
        for turn in range(rng.randrange(1, 4)):
            main.prompt(f"turn {turn}: {rng.getrandbits(32):x}")
            for _ in range(rng.randrange(1, 6)):
                roll = rng.random()
                if roll < 0.35:
                    self.subagent()
                elif roll < 0.5:
                    self.skill()
                elif roll < 0.55:
                    main.synthetic()
                else:
                    self.exchange(main)
            for tool_use_id, agent_id, _, status in self.pending:
                main.notification(tool_use_id, agent_id, status)
            self.pending = []
            main.respond(text_block("Done."), usage=self.usage())
            main.turn_duration()
            if self.newer and rng.random() < 0.3:
                name = rng.choice(SKILL_NAMES)
                main.typed_command(name)
                self.corpus.calls[("skill", name, "completed")] += 1
                main.respond(text_block("Ran it."), usage=self.usage())
                main.turn_duration()
        if rng.random() < 0.1:
            main.raw('{"type":"assistant","message":{"id":"msg_trunc')  # a torn line

    def exchange(self, transcript: Transcript, **extra: object) -> None:
        call = other_call(self.rng.choice(["Read", "Bash", "Grep"]))
        model = self.rng.choice([SONNET, SONNET, HAIKU])
        transcript.respond(
            text_block("Let me look."), call, model=model, usage=self.usage(), **extra
        )
        transcript.tool_result(call["id"], content="some output", seconds=1)

    def subagent(self) -> None:
        main, rng = self.main, self.rng
        if self.finished and rng.random() < 0.2:
            self.resume(*rng.choice(self.finished))
            return
        agent_type = rng.choice(SUBAGENT_TYPES)
        named = agent_type != "general-purpose" or rng.random() < 0.5
        call = agent_call(agent_type if named else None, tool="Agent" if self.newer else "Task")
        # Calls share a prompt now and then (the join by prompt goes by time order then).
        if rng.random() < 0.7:
            call["input"]["prompt"] = f"Part {rng.getrandbits(40):x} of the work"
        background = self.newer and rng.random() < 0.25
        if background:
            call["input"]["run_in_background"] = True
        main.respond(call, usage=self.usage())
        agent_id = f"{rng.getrandbits(68):017x}" if self.newer else f"{rng.getrandbits(28):07x}"
        sub = Transcript(
            self.ledger,
            session_id=self.session_id,
            cwd=main.cwd,
            start=main.clock,
            owner=agent_id,
            agent_id=agent_id,
            version=self.version,
        )
        sub.prompt(call["input"]["prompt"])
        for _ in range(rng.randrange(1, 5)):
            self.exchange(sub)
        sub.respond(text_block("Finished my part."), model=HAIKU, usage=self.usage())
        if self.newer:
            path = self.project / self.session_id / "subagents" / f"agent-{agent_id}.jsonl"
            meta = {"agentType": agent_type, "toolUseId": call["id"], "spawnDepth": 1}
        else:
            path, meta = self.project / f"agent-{agent_id}.jsonl", None
        self.corpus.files.append((sub, path, meta))
        if background:
            main.agent_launched(call["id"], agent_id)
            status = "completed" if rng.random() < 0.8 else "failed"
            self.pending.append((call["id"], agent_id, agent_type, status))
            main.clock = max(main.clock, sub.clock)
        else:
            main.clock = sub.clock
            if rng.random() < 0.25:
                status = "failed"
                main.agent_error(call["id"], "Agent terminated early due to an API error")
            else:
                status = "completed"
                main.agent_result(call["id"], agent_id, agent_type=agent_type)
                self.finished.append((sub, agent_type))
        self.corpus.calls[("agent", agent_type, status)] += 1

    def resume(self, sub: Transcript, agent_type: str) -> None:
        """A later call that resumes a finished subagent: its transcript goes on."""
        main = self.main
        call = agent_call(agent_type, tool="Agent" if self.newer else "Task")
        call["input"]["prompt"] = "Go on where you stopped"
        main.respond(call, usage=self.usage())
        sub.clock = main.clock
        sub.prompt(call["input"]["prompt"])
        self.exchange(sub)
        main.clock = sub.clock
        main.agent_result(call["id"], str(sub.agent_id), agent_type=agent_type)
        self.corpus.calls[("agent", agent_type, "completed")] += 1

    def skill(self) -> None:
        main, rng = self.main, self.rng
        name = rng.choice(SKILL_NAMES)
        call = skill_call(name, style="skill" if self.newer else "command")
        main.respond(call, usage=self.usage())
        main.skill_result(call["id"], name)
        self.corpus.calls[("skill", name, "completed")] += 1
        if self.newer and rng.random() < 0.5:  # newer CLIs attribute the skill's own responses
            self.exchange(main, attributionSkill=name)


def compose_corpus(root: Path, *, seed: int, sessions: int = SESSIONS) -> Corpus:
    """Compose `sessions` sessions under `root` (not written yet: `Corpus.write`)."""
    rng = random.Random(seed)
    corpus = Corpus()
    for index in range(sessions):
        _Session(corpus, rng, root / f"-home-dev-project{index % 4}", index).compose()
    return corpus


def calls_of(rows: list[Any]) -> Counter[tuple[str, str, str]]:
    """The rows as calls: (kind, name, status)."""
    return Counter(
        ("agent", row.agent_name, row.status) if hasattr(row, "agent_name") else
        ("skill", row.skill_name, row.status)
        for row in rows
    )  # fmt: skip


def test_a_copied_corpus_imports_the_whole_truth(
    engine: Engine, tracker: Tracker, tmp_path: Path
) -> None:
    original = tmp_path / "original" / "projects"
    corpus = compose_corpus(original, seed=12)
    corpus.write()
    copy = tmp_path / "restored" / "projects"
    shutil.copytree(original, copy, copy_function=shutil.copy)  # fresh modification times
    recent = datetime.now(UTC).timestamp() - 3600
    assert all(path.stat().st_mtime > recent for path in copy.rglob("*.jsonl"))
    truth = truth_of(copy)
    assert truth.responses > 500

    summary = run_import(engine, tracker, copy, idle=timedelta(minutes=30))
    assert (summary.sessions, summary.sessions_closed, summary.sessions_live) == (
        SESSIONS, SESSIONS, 0,
    )  # fmt: skip
    assert summary.transcripts_skipped == {}

    rows = agents(engine) + skills(engine)
    assert calls_of(rows) == corpus.calls
    assert not [row for row in rows if row.status == "running"]
    for name in TOKEN_FIELDS:
        assert sum(getattr(row, name) or 0 for row in rows) == truth.tokens[name], name
    assert sum(row.cost_usd or 0.0 for row in rows) == pytest.approx(truth.cost, rel=1e-9)
