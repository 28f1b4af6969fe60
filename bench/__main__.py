"""Run the scale benchmarks one after the other, on SQLite and optionally PostgreSQL.

Recording against raw `executemany`, query latency against a raw `GROUP BY`, and HTTP
throughput against a bare route.

    python -m bench [--postgres URL] [--sizes 10000,1000000,10000000] [--keep DIR]

Each benchmark runs as its own process (`python -m bench.<name>`), so one run's memory and
caches do not carry into the next, and prints its own figures and ratios. `--sizes` and
`--keep` go to `bench_queries`; the transcript import and export benchmarks run on their own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def commands(postgres: str | None, sizes: str, keep: str | None) -> list[list[str]]:
    """The benchmark command lines, SQLite first, then PostgreSQL when a URL is given."""
    queries = ["bench_queries", "--sizes", sizes, *(["--keep", keep] if keep else [])]
    lines = []
    for url in (None, postgres) if postgres else (None,):
        database = ["--database-url", url] if url else []
        for benchmark in (["bench_tracking"], queries, ["bench_http"]):
            lines.append([sys.executable, "-m", f"bench.{benchmark[0]}", *benchmark[1:], *database])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL database")
    parser.add_argument("--sizes", default="10000,1000000,10000000", help="query benchmark sizes")
    parser.add_argument("--keep", metavar="DIR", help="keep and reuse the query benchmark's data")
    args = parser.parse_args()
    failed = []
    for line in commands(args.postgres, args.sizes, args.keep):
        print(f"\n$ {' '.join(line[1:])}", flush=True)
        if subprocess.run(line, check=False).returncode != 0:
            failed.append(" ".join(line[2:]))
    if failed:
        sys.exit(f"failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
