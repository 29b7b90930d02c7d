"""The ``voiceseal`` command: the root typer app and its command groups.

Command groups from modules that may not exist in every installation are listed in
:data:`OPTIONAL_COMMANDS` and attached when importable; plugins add theirs through the
``register_commands`` hook. Errors print as one ``error: …`` line on stderr with exit code 1
(2 for usage errors), never a traceback, unless ``--debug`` is given.
"""

from __future__ import annotations

import importlib
import logging
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup

from voiceseal.cli import audit_cmd, db_cmd, keys_cmd, tenants_cmd
from voiceseal.cli.context import CliContext, JsonOption, get_context
from voiceseal.cli.output import fail, print_json, print_table
from voiceseal.errors import VoiceSealError
from voiceseal.kit import migrate

log = logging.getLogger(__name__)

#: ``(target, group name)``: a ``typer.Typer`` target is added as the group ``name``; a callable
#: target (``name`` None) is called with the root app and adds what it wants (commands, or
#: commands on existing groups such as ``voiceseal.cli.audit_cmd.app``). Missing modules are
#: skipped, so each can land on its own.
OPTIONAL_COMMANDS: tuple[tuple[str, str | None], ...] = (
    ("voiceseal.cli.watermark_cmd:app", "watermark"),
    ("voiceseal.cli.domain_cmds:register", None),
)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, VoiceSealError):
        return exc.message
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"invalid configuration or input: {where + ': ' if where else ''}{first['msg']}"
    if isinstance(exc, DBAPIError):
        return f"the registry database failed: {' '.join(str(exc.orig).split())[:300]}"
    return " ".join(str(exc).split()) or type(exc).__name__


class VoiceSealGroup(TyperGroup):
    """Turns the platform's errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (VoiceSealError, ValidationError, DBAPIError, OSError) as exc:
            if isinstance(ctx.obj, CliContext) and ctx.obj.debug:
                raise
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    name="voiceseal",
    cls=VoiceSealGroup,
    help="VoiceSeal: consented voice cloning with a watermark registry.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More logging (-v info, -vv debug).")
    ] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """VoiceSeal: consented voice cloning with a watermark registry."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    cli = get_context(ctx)
    cli.debug = debug


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP API (loopback only unless --host says otherwise)."""
    import uvicorn

    from voiceseal.api.app import create_app

    cli = get_context(ctx)
    # Refuse early and clearly rather than answer 503 to every request.
    if (found := migrate.current(cli.database_url)) != (wanted := migrate.head()):
        raise fail(
            f"the database is at revision {found or 'none'}, not {wanted}: "
            "run `voiceseal db upgrade` first"
        )
    if workers == 1:
        uvicorn.run(
            create_app(cli.settings), host=host, port=port, log_level=cli.settings.log_level.lower()
        )
    else:
        # Each worker builds its own app (and engine) from the environment's settings.
        uvicorn.run(
            "voiceseal.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=cli.settings.log_level.lower(),
        )


@app.command()
def plugins(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List plugins (hooks, versions, status) and the components they register."""
    from voiceseal.api.system import describe_plugins

    described = describe_plugins(get_context(ctx).runtime)
    if as_json:
        print_json(described.model_dump(mode="json"))
        return
    typer.echo("PLUGINS")
    print_table(
        [p.model_dump() for p in described.plugins], ("name", "version", "status", "hooks", "error")
    )
    typer.echo("\nCOMPONENTS")
    print_table(
        [c.model_dump() for c in described.components],
        ("kind", "name", "plugin", "version", "available", "unavailable_reason"),
    )


app.add_typer(db_cmd.app)
app.add_typer(keys_cmd.app)
app.add_typer(tenants_cmd.app)
app.add_typer(audit_cmd.app)


def attach_optional(
    cli: typer.Typer, targets: tuple[tuple[str, str | None], ...] = OPTIONAL_COMMANDS
) -> list[str]:
    """Attach the importable command modules of ``targets``; returns the targets attached."""
    attached: list[str] = []
    for target, name in targets:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            log.debug("optional commands %s not installed: %s", target, exc)
            continue
        found = getattr(module, attr)
        if isinstance(found, typer.Typer):
            cli.add_typer(found, name=name)
        else:
            found(cli)
        attached.append(target)
    return attached


def _attach_plugin_commands(cli: typer.Typer) -> None:
    from voiceseal.plugins import get_plugin_manager

    pm = get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a broken plugin must not break the CLI
            log.error("plugin %s failed in register_commands: %s", pm.get_name(impl.plugin), exc)


attach_optional(app)
_attach_plugin_commands(app)
