"""`claude-api login URL` and `claude-api logout`: the team's server this machine's producers
report to."""

from __future__ import annotations

import httpx
import typer

from claude_api.client import output
from claude_api.login import forget_login, login_path, save_login
from claude_api.sender import BULK_POLICY, Sender

_REFUSED = {
    401: "the server does not know this API key",
    403: "this API key may not write events (make one with `claude-api keys create --scope write`)",
}


def login(
    url: str = typer.Argument(..., help="The server, e.g. https://claude-api.example.com."),
    key: str | None = typer.Option(
        None,
        "--key",
        help="A write API key (`claude-api keys create --scope write` on the server); asked "
        "for when not given. Empty for a server that needs no key.",
        show_default=False,
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Report this machine's agents and skills to a team's server: checks the server and that
    the key may write there, then keeps both (readable by you only) in your config directory.

    From then on `claude-api hook`, `import` and `run` send their events to the server (kept
    in a local spool while it cannot be reached), and the other commands ask it.
    CLAUDE_API_URL and CLAUDE_API_KEY, when set, win over the login.

    Example: claude-api login https://claude-api.example.com && claude-api hook install
    """
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        output.error(f"{url!r} is not an http:// or https:// URL")
        raise typer.Exit(code=2)
    if key is None:
        key = typer.prompt("API key", default="", hide_input=True, show_default=False)
    key = key.strip() or None
    sender = Sender(url, key, BULK_POLICY)
    try:
        status, answer = sender.check()
    except httpx.HTTPError as error:
        output.error(f"cannot reach {url}: {error}; nothing was saved")
        raise typer.Exit(code=1) from None
    finally:
        sender.close()
    if status != 200:
        reason = _REFUSED.get(status) or (
            answer.get("message") if isinstance(answer, dict) else str(answer)
        )
        output.error(f"{url} refused the check (HTTP {status}): {reason}; nothing was saved")
        raise typer.Exit(code=1)
    path = save_login(url, key)
    if json_output:
        output.print_json({"url": url, "path": str(path), "key": key is not None})
        return
    output.info(f"logged in to {url}; saved in {path}")
    output.info("run `claude-api hook install` to record every Claude Code session there")


def logout() -> None:
    """Forget the server of `claude-api login`: the producers write the local database again."""
    if forget_login():
        output.info(f"removed {login_path()}")
    else:
        output.info("not logged in")
