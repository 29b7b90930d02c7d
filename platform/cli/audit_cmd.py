"""``voiceseal audit``: audit-log commands (``verify`` here; ``detect`` joins from the audit domain)."""

from __future__ import annotations

import typer

from voiceseal.audit import chain
from voiceseal.cli.context import JsonOption, get_context
from voiceseal.cli.output import print_json

app = typer.Typer(name="audit", help="Verify the audit log and trace clips.", no_args_is_help=True)


@app.command("verify")
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Walk the hash chain; exit 1 and name the first bad event if anything was altered."""
    with get_context(ctx).transaction() as session:
        report = chain.verify(session)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "first_bad_seq": report.first_bad_seq,
                "problem": report.problem,
            }
        )
    elif report.ok:
        typer.echo(f"audit chain ok: {report.checked} events verified")
    else:
        typer.echo(f"audit chain BROKEN at event {report.first_bad_seq}: {report.problem}")
    if not report.ok:
        raise typer.Exit(1)
