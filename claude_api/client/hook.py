"""`claude-api hook`: the Claude Code hook command, and `claude-api hook install`."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import typer
from platformdirs import user_data_dir

from claude_api.client import output
from claude_api.config import APP_NAME, Settings
from claude_api.files import private_directory
from claude_api.importer.hook_settings import SettingsError, install_hooks, settings_path
from claude_api.tracking import describe

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
LOG_FILE = "hook.log"
BUDGET_SCRIPT = "claude-api-hook"

hook_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
)


@hook_app.callback(invoke_without_command=True)
def hook_run(
    ctx: typer.Context,
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, help="Give up (and exit 0) after this many seconds."
    ),
    remote: bool = typer.Option(
        False,
        "--remote",
        help="Send the events to the team's server (CLAUDE_API_URL or `claude-api login`), "
        "spooling them while it cannot be reached, never to a database; without it, that is "
        "what happens when a server is configured.",
    ),
) -> None:
    """Claude Code hook command: reads the hook's JSON on stdin (SubagentStart, SubagentStop,
    PostToolUse and PostToolUseFailure for Agent/Task/Skill, SessionEnd), imports the session's
    transcripts it points to, and records the agents and skills with their tokens and cost.

    It always exits 0 and prints nothing, so it never disturbs the session: problems (database
    down, bad input) go to stderr and to hook.log in the data directory. Install it with
    `claude-api hook install`. In team mode it sends the events to the server within a few
    seconds, else spools them for the next hook call, import or `claude-api spool flush`.
    """
    if ctx.invoked_subcommand is not None:
        return
    _log_to_file()
    try:
        payload = orjson.loads(sys.stdin.buffer.read(MAX_PAYLOAD_BYTES))
    except (OSError, ValueError) as error:
        logger.error("hook input is not JSON: %s", error)
        return
    if not isinstance(payload, dict):
        logger.error("hook input is not a JSON object")
        return
    done = threading.Event()
    worker = threading.Thread(
        target=_work, args=(payload, done, remote or None), name="hook", daemon=True
    )
    worker.start()
    if not done.wait(timeout):
        logger.error("hook gave up after %.1fs; the next hook or import will catch up", timeout)
        logging.shutdown()
        os._exit(0)  # the worker may be stuck in a connect: do not wait for it


def _work(payload: dict[str, Any], done: threading.Event, remote: bool | None) -> None:
    from claude_api.importer.hook import handle_hook
    from claude_api.producers import open_producer

    try:
        settings = Settings()
        url = settings.database_url
        options = {"connect_args": {"connect_timeout": 2}} if url.startswith("postgresql") else {}
        policy = None
        if remote or settings.url:  # team mode: short timeouts, a bounded delivery of the spool
            from claude_api.sender import HOOK_POLICY as policy
        producer = open_producer(
            settings, remote=remote, policy=policy, retry_delays=(), engine_options=options
        )
        try:
            producer.deliver_spool()
            outcome = handle_hook(payload, engine=producer.engine, tracker=producer.tracker)
            if outcome.skipped:
                logger.info("hook %s: nothing imported: %s", outcome.event, outcome.skipped)
        finally:
            producer.close(5.0)
    except Exception as error:
        logger.error("hook %s not recorded: %s", payload.get("hook_event_name"), describe(error))
    finally:
        done.set()


def _log_to_file() -> None:
    try:
        directory = Path(user_data_dir(APP_NAME))
        private_directory(directory)
        path = directory / LOG_FILE
        # The log names sessions and projects: created readable by its owner only.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


@hook_app.command("install")
def hook_install(
    project: Path | None = typer.Option(
        None, "--project", help="Install into DIR/.claude/settings.json (this project only)."
    ),
    user: bool = typer.Option(
        False, "--user", help="Install into the user's settings.json (the default)."
    ),
    command: str | None = typer.Option(
        None, "--command", help="The command Claude Code runs (default: this claude-api hook)."
    ),
    budget_command: str | None = typer.Option(
        None,
        "--budget-command",
        help="The PreToolUse budget check Claude Code runs before each subagent or skill "
        "(default: the claude-api-hook beside this claude-api).",
    ),
    remote: bool = typer.Option(
        False,
        "--remote",
        help="Install `claude-api hook --remote`, which sends the events to the team's server "
        "(the default when CLAUDE_API_URL is set or after `claude-api login`).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add `claude-api hook` to a Claude Code settings.json, and `claude-api-hook` (the budget
    check) as its PreToolUse hook for Agent, Task and Skill, keeping every setting and hook
    already there and the file's permissions (a new file is private); the file is backed up
    first. A link in a project's .claude is refused. Running it again adds nothing.

    Example: claude-api hook install --project .
    """
    if project is not None and user:
        output.error("give --project or --user, not both")
        raise typer.Exit(code=2)
    path = settings_path(project=project, user=project is None)
    try:
        # Only the user's own settings may be a link (into a dotfiles repository, say).
        installed = install_hooks(
            path,
            command or default_command(remote=remote or bool(Settings().url)),
            budget_command=budget_command or default_budget_command(),
            follow_link=project is None,
        )
    except SettingsError as error:
        output.error(str(error))
        raise typer.Exit(code=1) from error
    except OSError as error:
        output.error(f"cannot install the hooks into {path}: {error.strerror or error}")
        raise typer.Exit(code=1) from error
    if json_output:
        output.print_json(
            {
                "path": str(installed.path),
                "backup": str(installed.backup) if installed.backup else None,
                "added": installed.added,
            }
        )
        return
    if installed.added:
        output.info(f"added {installed.added} hook entries to {installed.path}")
        if installed.backup:
            output.info(f"the previous file is saved as {installed.backup}")
    else:
        output.info(f"the hooks are already in {installed.path}")


def default_command(*, remote: bool = False) -> str:
    """This very claude-api, by absolute path, with `hook` (and `--remote`)."""
    suffix = " --remote" if remote else ""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "claude-api" or not script.exists():
        found = shutil.which("claude-api")
        script = Path(found) if found else None
    if script is not None:
        return f"{shlex.quote(str(script.absolute()))} hook{suffix}"
    return f"{shlex.quote(sys.executable)} -m claude_api.client hook{suffix}"


def default_budget_command() -> str:
    """The `claude-api-hook` installed beside this claude-api (or this Python's), by absolute
    path; else this Python running its module."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates = [Path(sys.executable).parent / BUDGET_SCRIPT]
    if script is not None and script.name == "claude-api":
        candidates.insert(0, script.absolute().parent / BUDGET_SCRIPT)
    found = shutil.which(BUDGET_SCRIPT)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return shlex.quote(str(candidate.absolute()))
    return f"{shlex.quote(sys.executable)} -m claude_api.guardrails.pretool"
