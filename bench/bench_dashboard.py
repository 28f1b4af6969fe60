"""What each dashboard page asks, timed: the GraphQL requests the page sends for its data (the
documents of its queries.js), executed in-process against the server's schema on a large
database, median and p95 of each page over several runs.

    python -m bench.bench_dashboard [--database-url URL] [--size 1000000] [--repeat 10]
                                    [--keep DIR] [--tz America/New_York] [--kept-answers]
                                    [--live | --first-load [--warmed]] [--only overview]

The database is filled with `claude-api demo` data as `bench_queries` fills it (and, with
`--keep DIR`, kept and reused: the same files, so a database kept by either serves both; "now"
is then the last stored event). A few budgets and alert rules are set on it, so the overview's
budgets and open alerts have something to compute. Each page runs its requests in order as the
browser's time zone `--tz` makes them (its periods end at local midnight, or at the end of the
hour for the last 24 hours): the overview's analytics, its budgets and alerts, then the trend
lines of its leaderboards' shown rows; an agent's page (its analytics, then the budgets and
alerts covering it); the task list (plain, of an agent, of failed invocations, its next page); a
task. Every answer is computed afresh (the query layer's
kept answers are not used: a page redrawn after a write computes too), after one warm-up run;
with `--kept-answers` they are, which leaves GraphQL's execution of the answers; with `--live`
an invocation is recorded before each load, as while sessions run, so the kept answers are out
of date but what is kept across such writes (the parts of answers that have settled) serves;
with `--first-load` each page's first load is timed instead, the pages in turn in a new process,
`--repeat` such processes one after the other; with `--warmed` too, after the warm-up of the
dashboard's first views that `claude-api serve` runs once started (`server/warming.py`).
The target: each page under 100 ms (the sum of its requests; the browser sends some at once).
"cpu ms" is the process's CPU time for a load of the page, every thread's (the fields of a
request run in worker threads at once): the figure a busy machine moves least.
Unless `--utc-days-only`, the days of `--tz` are kept as daily rollups first, as the server
started in that zone keeps them (the first run on a kept database fills them from the hours).
The baseline, measured in the same run, is bench_queries' plain `SELECT agent_name, count(*),
sum(cost_usd), avg(duration_seconds) FROM agent_usage GROUP BY agent_name` over the whole table,
run once after each timed load of a page: each page's ratio is its median over the median of the
baselines run beside it, so a machine busy with other work moves both.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import pkgutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from bench.bench_queries import LIVE_SOURCE, analyze, baseline, fill_demo, kept_database, stored
from bench.bench_tracking import fresh_database
from claude_api.client.transport import LocalContext
from claude_api.dashboard.pages import Request, overview, page_range, task, tasks, usage
from claude_api.events import Kind, Status, UsageEvent
from claude_api.graph.schema import build_schema
from claude_api.models import data_version, queries
from claude_api.models.alerts import Metric, add_rule
from claude_api.models.budgets import set_budget
from claude_api.models.local_days import day_starts, keep_days, start_hours
from claude_api.models.queries.alerts import list_rules
from claude_api.models.write import store_events
from claude_api.server.app import freeze_startup_objects
from claude_api.server.warming import ViewWarmer, freeze_warmed_objects

TARGET_MS = 100.0
LIVE_TASK = "live-session"  # the task of what --live records: not the task page's task


@dataclass
class Page:
    """A page: its requests, the later ones made from the answers of the earlier ones."""

    label: str
    requests: Callable[[Callable[[Request], dict[str, Any]]], None]
    times: dict[str, list[float]] = field(default_factory=dict)
    totals: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)


class Runner:
    """The server's schema run in-process on the database, as the CLI's local transport does;
    what exists once it is built is frozen out of the garbage collector's reach, as the server
    does once it has started (`freeze_startup_objects`): otherwise a full collection walking
    the filled database's objects would pause a load now and then for 60-110 ms."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schema = build_schema()
        self.context = LocalContext(engine)
        self.loop = asyncio.new_event_loop()
        freeze_startup_objects()

    def ask(self, request: Request) -> dict[str, Any]:
        _, document, variables = request
        result = self.loop.run_until_complete(
            self.schema.execute(document, variable_values=variables, context_value=self.context)
        )
        if result.errors:
            raise SystemExit(f"{request[0]}: {result.errors[0].message}")
        return result.data

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


def run_page(
    runner: Runner,
    page: Page,
    timed: bool,
    kept_answers: bool = False,
    live: datetime | None = None,
) -> None:
    """One load of the page: each request timed, and their sum; every answer computed afresh,
    unless `kept_answers` (then the query layer's answers of the warm-up load serve) or `live`
    (then an invocation that started at `live` is recorded first, untimed, as a running
    session records them: the kept answers are out of date, what is kept across writes is not)."""
    total = 0.0
    if live is not None:
        with Session(runner.engine) as session:
            store_events(session, [live_event(live)])
            session.commit()

    def ask(request: Request) -> dict[str, Any]:
        nonlocal total
        with nullcontext() if kept_answers or live else afresh():
            started = time.perf_counter()
            answer = runner.ask(request)
            spent = time.perf_counter() - started
        total += spent
        if timed:
            page.times.setdefault(request[0], []).append(spent)
        return answer

    cpu_started = time.process_time()
    page.requests(ask)
    if timed:
        page.totals.append(total)
        page.cpu.append(time.process_time() - cpu_started)


RESULT_MARK = "first loads: "
WARM_UP_MARK = "warm-up: "


def first_loads_in_new_processes(args: argparse.Namespace) -> list[Page]:
    """`--first-load` `--repeat` times, each time in a new process on the kept database (filled
    first, here), as a server started anew: the pages' timings of every process together."""
    with database(args.database_url, args.size, args.keep):
        pass
    command = [sys.executable, "-m", "bench.bench_dashboard", *sys.argv[1:], "--one-process"]
    pages: dict[str, Page] = {}
    warm_ups: list[float] = []
    for _ in range(args.repeat):
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        if run.returncode:
            raise SystemExit(f"a first-load process failed:\n{run.stderr}")
        lines = run.stdout.splitlines()
        found = next(line for line in lines if line.startswith(RESULT_MARK))
        warm_ups += [float(line.split()[1]) for line in lines if line.startswith(WARM_UP_MARK)]
        for timed in json.loads(found.removeprefix(RESULT_MARK)):
            page = pages.setdefault(timed["label"], Page(timed["label"], requests=lambda _: None))
            for label, times in timed["times"].items():
                page.times.setdefault(label, []).extend(times)
            page.totals += timed["totals"]
            page.cpu += timed["cpu"]
            page.baselines += timed["baselines"]
    if warm_ups:
        print(
            f"{WARM_UP_MARK}median {statistics.median(warm_ups):.0f} ms, "
            f"longest {max(warm_ups):.0f} ms ({len(warm_ups)} processes)"
        )
    return list(pages.values())


def live_event(at: datetime) -> UsageEvent:
    """A finished run of the busiest agent, as a running session records one."""
    return UsageEvent(
        event_id=uuid.uuid4(),
        kind=Kind.AGENT,
        name="Explore",
        task_id=LIVE_TASK,
        timestamp=at,
        status=Status.COMPLETED,
        duration_seconds=12.5,
        cost_usd=0.25,
        source=LIVE_SOURCE,
    )


def run_baseline(engine: Engine, page: Page) -> None:
    """The plain GROUP BY of the whole table, timed beside the page's loads."""
    started = time.perf_counter()
    with Session(engine) as session:
        baseline(session)
    page.baselines.append(time.perf_counter() - started)


def afresh() -> Any:
    """Answers computed, not taken from the query layer's kept answers."""
    computing = getattr(queries, "computing_afresh", None)
    return computing() if computing is not None else nullcontext()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def with_guardrails(engine: Engine) -> None:
    """Budgets of each kind of scope and alert rules, as a team would set them (once)."""
    with Session(engine) as session:
        for scope in (
            {"kind": "agent", "name": "Explore"},
            {"kind": "skill", "name": "commit"},
            {"project_id": "web"},
            {},
        ):
            for period in ("day", "month"):
                set_budget(session, period=period, usd=50.0, action="warn", tz="UTC", **scope)
        if not list_rules(session):
            add_rule(session, metric=Metric.FAILURE_RATE, threshold=0.05, window_seconds=3600)
            add_rule(
                session,
                metric=Metric.COST,
                threshold=1.0,
                window_seconds=86400,
                kind="agent",
                name="Explore",
            )
            add_rule(
                session, metric=Metric.P95_DURATION, threshold=60.0, window_seconds=86400,
                project_id="web",
            )  # fmt: skip
        session.commit()


def without_kept_statements() -> int:
    """Turn off what the query layer keeps once built (its statements per shape and their
    pieces, `functools` caches): every question then builds its statement, and SQLAlchemy's
    compiled cache, keyed by the statement's structure, is the only reuse. Returns how many
    functions were unwrapped."""
    unwrapped = 0
    for info in pkgutil.iter_modules(queries.__path__):
        module = importlib.import_module(f"{queries.__name__}.{info.name}")
        for name, value in list(vars(module).items()):
            inner = getattr(value, "__wrapped__", None)
            if hasattr(value, "cache_info") and getattr(inner, "__module__", "").startswith(
                queries.__name__
            ):
                setattr(module, name, inner)
                unwrapped += 1
    return unwrapped


def pages(engine: Engine, now: datetime, tz: str) -> list[Page]:
    zone = ZoneInfo(tz)
    ranges = {period: page_range(period, now, zone) for period in ("24h", "7d", "30d", "90d")}
    week = ranges["7d"]
    with Session(engine) as session:
        listed = queries.list_tasks(session, limit=2).items
        recent = next(t.task_id for t in listed if t.task_id != LIVE_TASK)
    found = [Page(f"overview, {period}", overview(ranges[period], tz)) for period in ranges]
    found += [
        Page("agent Explore, 24h", usage(ranges["24h"], tz, "AGENT", "Explore")),
        Page("agent Explore, 7d", usage(week, tz, "AGENT", "Explore")),
        Page("agent Explore, 90d", usage(ranges["90d"], tz, "AGENT", "Explore")),
        Page("agent statusline-setup, 90d", usage(ranges["90d"], tz, "AGENT", "statusline-setup")),
        Page("skill commit, 7d", usage(week, tz, "SKILL", "commit")),
        Page("tasks, 7d", tasks(week, tz)),
        Page("tasks, 7d, and the next page", tasks(week, tz, next_page=True)),
        Page("tasks, 90d", tasks(ranges["90d"], tz)),
        Page("tasks, 7d, using Explore", tasks(week, tz, kind="AGENT", name="Explore")),
        Page("tasks, 90d, using deploy-preview", tasks(ranges["90d"], tz, name="deploy-preview")),
        Page("tasks, 7d, with failures", tasks(week, tz, status="FAILED")),
        Page(f"task {recent}", task(recent)),
    ]  # fmt: skip
    return found


@contextmanager
def database(url: str | None, size: int, keep: Path | None) -> Iterator[tuple[Engine, datetime]]:
    now = datetime.now(UTC)
    opened = fresh_database(url) if keep is None else kept_database(url, keep, size)
    with opened as engine:
        count, last = stored(engine)
        if count == size and last is not None:
            now = last + timedelta(seconds=1)
            print(f"{engine.dialect.name}, {size:,} events: kept from an earlier run, last {last}")
        else:
            if count > size:
                raise SystemExit(f"the kept database holds {count:,} events, not {size:,}")
            filled = fill_demo(engine, size, end=now, skip=count)
            analyze(engine)
            print(
                f"{engine.dialect.name}, {size:,} events: stored {filled.events:,} in "
                f"{filled.seconds:,.1f} s ({filled.events / filled.seconds:,.0f} events/s)"
            )
        yield engine, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite temp file)")
    parser.add_argument("--size", type=int, default=1_000_000, help="events (default: 10^6)")
    parser.add_argument("--repeat", type=int, default=10, help="timed loads of each page")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the filled database in DIR and reuse it"
    )
    parser.add_argument("--tz", default="America/New_York", help="the browser's time zone")
    parser.add_argument(
        "--no-kept-statements",
        action="store_true",
        help="build every statement anew, leaving its reuse to SQLAlchemy's compiled cache "
        "(what the query layer's kept statements save)",
    )
    parser.add_argument(
        "--kept-answers",
        action="store_true",
        help="let the query layer's kept answers serve, as for a page loaded again before the "
        "next write: what is left is GraphQL's execution of the answers",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="record an invocation at the last stored event's time before each load, as a "
        "running session does: the kept answers are out of date, what the query layer keeps "
        "across writes (the parts of answers that have settled, `now` taken as that time) is not",
    )
    parser.add_argument(
        "--first-load",
        action="store_true",
        help="time each page's first load instead, after an invocation is recorded as with "
        "--live: no warm-up load, the pages in order in a new process, --repeat processes one "
        "after the other (with --only naming one page, the first load of a server just "
        "started); needs --keep when --repeat is above 1",
    )
    parser.add_argument(
        "--warmed",
        action="store_true",
        help="with --first-load: let the server's warm-up of the dashboard's first views (in "
        "--tz) run first, untimed, as `claude-api serve` does once it has started (its time "
        "is reported)",
    )
    parser.add_argument("--one-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--utc-days-only",
        action="store_true",
        help="do not keep the days of --tz as daily rollups, as the server started in that "
        "zone does (for a database that does not keep them yet: a kept grain stays)",
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="time only the pages whose label starts with TEXT"
    )
    args = parser.parse_args()
    if args.warmed and not args.first_load:
        raise SystemExit("--warmed goes with --first-load")
    if args.first_load and args.repeat > 1 and not args.one_process:
        if args.keep is None:
            raise SystemExit("--first-load with --repeat above 1 needs --keep DIR")
        report(first_loads_in_new_processes(args), args)
        return
    if args.no_kept_statements:
        print(f"kept statements turned off: {without_kept_statements()} functions")

    with database(args.database_url, args.size, args.keep) as (engine, now):
        with_guardrails(engine)
        if not args.utc_days_only:
            started = time.perf_counter()
            added = keep_days(engine, start_hours([args.tz]))
            if added:
                print(
                    f"kept the days of {args.tz} ({', '.join(added)}): "
                    f"{time.perf_counter() - started:.1f} s"
                )
        with Session(engine) as session:
            print(f"day grains kept besides UTC days: {list(day_starts(session)) or 'none'}")
        runner = Runner(engine)
        try:
            measured = [
                page
                for page in pages(engine, now, args.tz)
                if page.label.startswith(args.only or "")
            ]
            live = now if args.live or args.first_load else None
            # The query layer's clock is the pages' "now" in every mode: it tells which buckets
            # have settled and which are still to come (a kept database's "now" is its last
            # stored event, however long ago it was filled).
            data_version.utc_now = lambda: now  # type: ignore[assignment]
            if args.warmed:
                warmer = ViewWarmer(runner.context.gateway, runner.schema, [args.tz])
                warmer.warm(now=now)
                freeze_warmed_objects()  # as the server does after its first warm-up
                print(f"{WARM_UP_MARK}{warmer.last_seconds * 1000:.0f} ms")
            for page in measured:
                if args.first_load:
                    run_page(runner, page, timed=True, live=live)
                    run_baseline(engine, page)
                    continue
                run_page(runner, page, timed=False, kept_answers=args.kept_answers, live=live)
                for _ in range(args.repeat):
                    run_page(runner, page, timed=True, kept_answers=args.kept_answers, live=live)
                    run_baseline(engine, page)
        finally:
            runner.close()

    if args.one_process and args.first_load:
        print(RESULT_MARK + json.dumps([asdict(page) | {"requests": None} for page in measured]))
        return
    report(measured, args)


def report(measured: list[Page], args: argparse.Namespace) -> None:
    """The table: each page's median and p95, its ratio to the baseline, its CPU time."""
    print(
        f"\n{'page and its requests':44} {'median ms':>10} {'p95 ms':>10} {'x baseline':>11}"
        f" {'cpu ms':>8}"
    )
    for page in measured:
        median = statistics.median(page.totals) * 1000
        ratio = median / (statistics.median(page.baselines) * 1000)
        cpu = statistics.median(page.cpu) * 1000
        verdict = "" if median < TARGET_MS else "  SLOW"
        print(
            f"{page.label:44} {median:10.1f} {p95(page.totals) * 1000:10.1f} {ratio:11.2f}"
            f" {cpu:8.1f}{verdict}"
        )
        if len(page.times) > 1:
            for label, times in page.times.items():
                print(
                    f"  {label:42} {statistics.median(times) * 1000:10.1f} "
                    f"{p95(times) * 1000:10.1f}"
                )
    every = [seconds * 1000 for page in measured for seconds in page.baselines]
    print(
        f"{'baseline GROUP BY agent_name':44} {statistics.median(every):10.1f} "
        f"{p95(every):10.1f} {1:11.2f}"
    )
    loads = f"{args.repeat} timed loads of each page"
    if args.first_load:
        processes = f"{args.repeat} new process{'es' if args.repeat > 1 else ''}"
        loads = f"each page's first load, in {processes}"
    print(f"\n{loads}; target: under {TARGET_MS:.0f} ms each")


if __name__ == "__main__":
    main()
