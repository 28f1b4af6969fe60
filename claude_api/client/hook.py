"""`claude-api hook`: the Claude Code hook command (for settings of earlier installs; new ones
run `claude-api-hook`), `claude-api hook install` and `claude-api hook drain`."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import typer

from claude_api.client import output

HOOK_SCRIPT = "claude-api-hook"

hook_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
)


@hook_app.callback(invoke_without_command=True)
def hook_run(
    ctx: typer.Context,
    timeout: float = typer.Option(
        10.0,
        "--timeout",
        min=0.1,
        help="When the payload must be recorded in the foreground (the hook inbox cannot be "
        "written), give up (and exit 0) after this many seconds.",
    ),
    remote: bool = typer.Option(
        False,
        "--remote",
        help="Send the events to the team's server (CLAUDE_API_URL or `claude-api login`), "
        "spooling them while it cannot be reached, never to a database; without it, that is "
        "what happens when a server is configured.",
    ),
) -> None:
    """Claude Code hook command, as `claude-api-hook` (which `hook install` installs, and which
    starts faster): reads the hook's JSON on stdin (SubagentStart, SubagentStop, PostToolUse
    and PostToolUseFailure for Agent/Task/Skill, SessionEnd), keeps it in the hook inbox and
    returns; a background worker imports the session's transcripts it points to and records
    the agents and skills with their tokens and cost, at the hook's arrival time.

    It always exits 0 and prints nothing, so it never disturbs the session: problems (database
    down, bad input) go to stderr and to hook.log in the data directory. `claude-api hook
    drain` waits for the worker. In team mode the events go to the server, else to the spool
    for the next hook call, import or `claude-api spool flush`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from claude_api import hook_script

    data = sys.stdin.buffer.read(hook_script.MAX_PAYLOAD_BYTES)
    arrived_ns = time.time_ns()
    payload = hook_script.parse(data, source="claude-api hook")
    if payload is not None:
        hook_script.record(
            data, payload, arrived_ns, remote=remote, timeout=timeout, source="claude-api hook"
        )


@hook_app.command("drain")
def hook_drain(
    timeout: float = typer.Option(
        300.0, "--timeout", min=0.0, help="Wait this long, at most, for a running worker."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Record what waits in the hook inbox now, after waiting for a worker that is recording
    it: every configuration's inbox (its own environment, `--remote` or not) of this data
    directory. Exits 1 when payloads are still waiting (the log and the output say why).

    Example: claude-api hook drain
    """
    from claude_api.hook_drain import drain_all

    reports = drain_all(timeout=timeout)
    if json_output:
        output.print_json({"inboxes": [report.to_dict() for report in reports]})
    elif not reports:
        output.info("nothing waits in the hook inbox")
    for report in reports if not json_output else ():
        line = f"hook inbox {report.inbox}: {report.recorded:,} recorded, "
        line += f"{report.waiting:,} waiting"
        if report.given_up:
            line += f", {report.given_up:,} given up"
        if report.dropped:
            line += f", {report.dropped:,} dropped so far (the inbox was full)"
        output.info(line + (f" ({report.problem})" if report.problem else ""))
    if any(report.waiting for report in reports):
        raise typer.Exit(code=1)


@hook_app.command("install")
def hook_install(
    project: Path | None = typer.Option(
        None, "--project", help="Install into DIR/.claude/settings.json (this project only)."
    ),
    user: bool = typer.Option(
        False, "--user", help="Install into the user's settings.json (the default)."
    ),
    command: str | None = typer.Option(
        None,
        "--command",
        help="The command Claude Code runs for the events it records (default: the "
        "claude-api-hook beside this claude-api).",
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
        help="Install `claude-api-hook --remote`, which sends the events to the team's server "
        "(the default when CLAUDE_API_URL is set or after `claude-api login`).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add `claude-api-hook` to a Claude Code settings.json: for SubagentStart, SubagentStop,
    PostToolUse, PostToolUseFailure and SessionEnd it records the agents and skills (it
    returns at once, a background worker records them), for PreToolUse on Agent, Task and
    Skill it checks the budgets. Every setting and hook already there is kept, with the file's
    permissions (a new file is private); an earlier install's `claude-api hook` entries run
    the new command instead; the file is backed up first. A link in a project's .claude is
    refused. Running it again adds nothing.

    Example: claude-api hook install --project .
    """
    # Imported here: `claude-api hook` itself, which earlier installs run, needs none of it.
    from claude_api.config import Settings
    from claude_api.importer.hook_settings import SettingsError, install_hooks, settings_path

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
                "replaced": installed.replaced,
            }
        )
        return
    if installed.added or installed.replaced:
        if installed.added:
            output.info(f"added {installed.added} hook entries to {installed.path}")
        if installed.replaced:
            output.info(
                f"{installed.replaced} hook entries of an earlier install in {installed.path} "
                "now run the new command"
            )
        if installed.backup:
            output.info(f"the previous file is saved as {installed.backup}")
    else:
        output.info(f"the hooks are already in {installed.path}")


def default_command(*, remote: bool = False) -> str:
    """The `claude-api-hook` installed beside this claude-api (or this Python's), by absolute
    path, with `--remote` when asked; else this Python running its module."""
    suffix = " --remote" if remote else ""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates = [Path(sys.executable).parent / HOOK_SCRIPT]
    if script is not None and script.name == "claude-api":
        candidates.insert(0, script.absolute().parent / HOOK_SCRIPT)
    found = shutil.which(HOOK_SCRIPT)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return shlex.quote(str(candidate.absolute())) + suffix
    return f"{shlex.quote(sys.executable)} -P -m claude_api.hook_script{suffix}"


def default_budget_command() -> str:
    """The PreToolUse budget check: the same script, which answers PreToolUse payloads."""
    return default_command(remote=False)
