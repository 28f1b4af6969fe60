"""The dashboard's first page from a server just started, over HTTP: `claude-api serve` on a
SQLite database kept by bench_dashboard (or bench_queries), and `--wait` seconds after it first
answers, the requests of the overview of `--period` timed as the browser sends them. Each round
starts a server with its warm-up of the dashboard's first views and one without it
(CLAUDE_API_DASHBOARD_WARM_UP=false), alternating, `--repeat` rounds; the server runs in the
browser's zone `--tz`, so that is the zone it prepares.

    python -m bench.bench_first_page --keep DIR [--size 1000000] [--repeat 5] [--wait 5]
                                     [--period 7d] [--tz America/New_York]

The baseline, run after each load as in bench_dashboard: a plain `GROUP BY` over the whole
agent table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.bench_dashboard import Page, database, p95, run_baseline
from claude_api.dashboard.pages import Request, overview, page_range

START_SECONDS = 60.0


@contextmanager
def server(database_url: str, tz: str, warm_up: bool) -> Iterator[str]:
    """`claude-api serve` on `database_url` in the zone `tz`, with an empty HOME; its URL once
    it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = Path(sys.executable).parent / "claude-api"
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "HOME": home,
            "TZ": tz,
            "CLAUDE_API_DATABASE_URL": database_url,
            "CLAUDE_API_DASHBOARD_WARM_UP": "true" if warm_up else "false",
        }
        process = subprocess.Popen(
            [str(command), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=5)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("claude-api serve did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(30)


def load(url: str, period: str, tz: str, page: Page) -> None:
    """The overview's requests, in order, each timed."""
    total = 0.0
    with httpx.Client(base_url=url, timeout=60) as client:

        def ask(request: Request) -> dict[str, Any]:
            nonlocal total
            label, document, variables = request
            started = time.perf_counter()
            answer = client.post("/graphql", json={"query": document, "variables": variables})
            spent = time.perf_counter() - started
            body = answer.json()
            if body.get("errors"):
                raise SystemExit(f"{label}: {body['errors'][0]['message']}")
            page.times.setdefault(label, []).append(spent)
            total += spent
            return body["data"]

        overview(page_range(period, datetime.now(UTC), ZoneInfo(tz)), tz)(ask)
    page.totals.append(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, required=True, metavar="DIR", help="kept database")
    parser.add_argument("--size", type=int, default=1_000_000, help="events (default: 10^6)")
    parser.add_argument("--repeat", type=int, default=5, help="servers started in each mode")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds before the first page")
    parser.add_argument("--period", default="7d", choices=["24h", "7d", "30d", "90d"])
    parser.add_argument("--tz", default="America/New_York", help="the browser's time zone")
    args = parser.parse_args()

    with database(None, args.size, args.keep) as (engine, _):
        url = engine.url.render_as_string(hide_password=False)
        modes = {
            True: Page(f"warmed, overview {args.period}", requests=lambda _: None),
            False: Page(f"not warmed, overview {args.period}", requests=lambda _: None),
        }
        for _ in range(args.repeat):
            for warm_up, page in modes.items():
                with server(url, args.tz, warm_up) as base:
                    time.sleep(args.wait)
                    load(base, args.period, args.tz, page)
                run_baseline(engine, page)

    print(f"\nfirst page {args.wait:g} s after the server answers, {args.repeat} servers each")
    print(f"{'page and its requests':44} {'median ms':>10} {'p95 ms':>10} {'x baseline':>11}")
    for page in modes.values():
        median = statistics.median(page.totals) * 1000
        ratio = median / (statistics.median(page.baselines) * 1000)
        print(f"{page.label:44} {median:10.1f} {p95(page.totals) * 1000:10.1f} {ratio:11.2f}")
        for label, times in page.times.items():
            print(f"  {label:42} {statistics.median(times) * 1000:10.1f} {p95(times) * 1000:10.1f}")
    baselines = [seconds * 1000 for page in modes.values() for seconds in page.baselines]
    print(f"{'baseline GROUP BY agent_name':44} {statistics.median(baselines):10.1f}")


if __name__ == "__main__":
    main()
