"""The only place that prints: data to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    stdout.out(json.dumps(data, indent=2, default=str), highlight=False)


def error(message: str) -> None:
    """A one-sentence error on stderr."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def info(message: str) -> None:
    """A diagnostic on stderr."""
    stderr.print(escape(message), highlight=False)
