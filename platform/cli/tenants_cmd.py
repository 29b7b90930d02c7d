"""``voiceseal tenants``: create and list tenants directly on the database."""

from __future__ import annotations

from typing import Annotated

import typer

from voiceseal.cli.context import JsonOption, get_context
from voiceseal.cli.output import print_json, print_table
from voiceseal.registry.models import Tenant
from voiceseal.tenants import repository, service
from voiceseal.tenants.schemas import TenantCreate, TenantPublic

app = typer.Typer(name="tenants", help="Create and list tenants.", no_args_is_help=True)

COLUMNS = ("id", "name", "status", "rate_limit_per_minute", "char_quota_per_day", "created_at")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique tenant name.")],
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests per minute (default: settings).")
    ] = None,
    char_quota: Annotated[
        int | None, typer.Option(help="Characters per day (default: settings).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant."""
    data = TenantCreate(name=name, rate_limit_per_minute=rate_limit, char_quota_per_day=char_quota)
    with get_context(ctx).transaction() as session:
        tenant = TenantPublic.model_validate(service.create(session, data, actor_key_id=None))
    if as_json:
        print_json(tenant.model_dump(mode="json"))
    else:
        typer.echo(f"created tenant {tenant.name} ({tenant.id})")


@app.command("list")
def list_tenants(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List tenants, newest first."""
    with get_context(ctx).transaction() as session:
        stmt = repository.listing().order_by(Tenant.created_at.desc(), Tenant.id.desc())
        tenants = [TenantPublic.model_validate(t).model_dump() for t in session.scalars(stmt)]
    if as_json:
        print_json(tenants)
    else:
        print_table(tenants, COLUMNS)
