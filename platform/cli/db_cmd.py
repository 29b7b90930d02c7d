"""``voiceseal db``: make and check the registry schema (Alembic is the only way it is made)."""

from __future__ import annotations

import typer
from alembic.util.exc import CommandError

from voiceseal.cli.context import get_context
from voiceseal.cli.output import fail
from voiceseal.kit import migrate

app = typer.Typer(
    name="db", help="Create or check the registry database schema.", no_args_is_help=True
)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")
) -> None:
    """Migrate the configured database to the latest schema (creates it if empty)."""
    url = get_context(ctx).database_url
    try:
        migrate.upgrade(url, revision)
    except CommandError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"database at revision {migrate.current(url)}")


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Fail unless the database is at the latest revision and matches the models exactly."""
    url = get_context(ctx).database_url
    try:
        migrate.check(url)
    except CommandError as exc:
        raise fail(" ".join(str(exc).split())) from None
    typer.echo(f"database schema is up to date (revision {migrate.current(url)})")
