"""`claude-api spool`: what waits in this machine's spool for the team's server, and delivering
it now."""

from __future__ import annotations

import typer

from claude_api.client import output
from claude_api.config import Settings
from claude_api.producers import sink_of, spool_of

spool_app = typer.Typer(
    help="Events kept on this machine while the team's server could not take them.",
    no_args_is_help=True,
)


@spool_app.command("status")
def spool_status(
    json_output: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """What waits in the spool, what the server refused (dead letters) and what did not fit.

    Example: claude-api spool status
    """
    settings = Settings()
    status = spool_of(settings).status()
    if json_output:
        output.print_json({"server": settings.url, **status.to_dict()})
        return
    fields = [
        ("server", settings.url or "- (none configured: `claude-api login URL`)"),
        ("spool", str(status.directory)),
        ("waiting", f"{status.events:,} events in {status.records:,} records "
                    f"({status.bytes:,} bytes)"),
        ("dead letters", f"{status.dead_events:,} events the server refused"),
        ("did not fit", f"{status.overflowed_events:,} events "
                        f"({status.overflowed_records:,} records) refused: the spool was full"),
        ("torn lines", f"{status.corrupt_lines:,} skipped"),
    ]  # fmt: skip
    if status.held_until is not None:
        fields.append(("held off until", f"{status.held_until:%Y-%m-%d %H:%M:%S}Z: "
                                         f"{status.held_because}"))  # fmt: skip
    output.print_fields(fields, title="spool")


@spool_app.command("flush")
def spool_flush(
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Deliver what waits in the spool to the server now, in order. Exits 1 when some of it
    is still waiting (the server cannot be reached, or is slow) or no server is configured.

    Example: claude-api spool flush
    """
    settings = Settings()
    sink = sink_of(settings)
    try:
        result = sink.flush(force=True)
    finally:
        sink.close()
    left = sink.spool.status()
    if json_output:
        output.print_json(
            {
                "delivered": result.delivered,
                "dead": result.dead,
                "busy": result.busy,
                "stopped": result.stopped,
                "waiting": left.events,
            }
        )
    elif result.busy:
        output.info("another process is delivering the spool now")
    else:
        output.info(
            f"delivered {result.delivered:,} events"
            + (f", {result.dead:,} refused by the server (dead letters)" if result.dead else "")
            + f"; {left.events:,} waiting"
        )
    if result.stopped:
        output.error(f"stopped: {result.stopped}")
    if left.events and not result.busy:
        raise typer.Exit(code=1)


@spool_app.command("requeue")
def spool_requeue() -> None:
    """Put the events the server refused (dead letters) back into the spool, e.g. after a
    revoked key was replaced with `claude-api login`; `claude-api spool flush` then sends them.
    Events refused because their ids belong to other invocations are refused again.

    Example: claude-api spool requeue && claude-api spool flush
    """
    from claude_api.spool import SpoolFull

    try:
        moved = spool_of(Settings()).requeue()
    except SpoolFull as error:
        output.error(str(error))
        raise typer.Exit(code=1) from None
    output.info(f"moved {moved:,} events from the dead letters back into the spool")
