"""``voiceseal keys``: make the first admin key, list and revoke keys — directly on the database."""

from __future__ import annotations

from typing import Annotated

import typer

from voiceseal.cli.context import JsonOption, get_context
from voiceseal.cli.output import print_json, print_table
from voiceseal.keys import service
from voiceseal.keys.schemas import ApiKeyCreated, ApiKeyPublic
from voiceseal.registry.models import ROLES, ApiKey
from voiceseal.tenants import service as tenants_service

app = typer.Typer(name="keys", help="Create, list and revoke API keys.", no_args_is_help=True)

COLUMNS = ("id", "prefix", "role", "tenant_id", "name", "created_at", "last_used_at", "revoked_at")


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant id or name (tenant keys).")] = None,
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it once. Only its hash is kept: store it now."""
    cli = get_context(ctx)
    with cli.transaction() as session:
        tenant_id = tenants_service.resolve(session, tenant).id if tenant else None
        key, secret = service.create(
            session,
            pepper=cli.settings.key_pepper_bytes,
            role=role,
            tenant_id=tenant_id,
            name=name,
            actor_key_id=None,
        )
        created = ApiKeyCreated(**ApiKeyPublic.model_validate(key).model_dump(), key=secret)
    if as_json:
        print_json(created.model_dump(mode="json"))
        return
    # The key alone on stdout (KEY=$(voiceseal keys create ...)); the notice on stderr.
    typer.echo(f"created {created.role} key {created.id}; it is shown only this once:", err=True)
    typer.echo(secret)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's keys (id or name).")
    ] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List keys, newest first (never their secrets)."""
    from voiceseal.keys import repository

    with get_context(ctx).transaction() as session:
        tenant_id = tenants_service.resolve(session, tenant).id if tenant else None
        stmt = repository.listing(tenant_id=tenant_id, include_revoked=include_revoked)
        rows = session.scalars(stmt.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
        keys = [ApiKeyPublic.model_validate(k).model_dump() for k in rows]
    if as_json:
        print_json(keys)
    else:
        print_table(keys, COLUMNS)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a key; it is refused from its next request on."""
    with get_context(ctx).transaction() as session:
        key = ApiKeyPublic.model_validate(service.revoke(session, key_id, actor_key_id=None))
    if as_json:
        print_json(key.model_dump(mode="json"))
    else:
        typer.echo(f"revoked {key.id} ({key.role}, {key.prefix})")
