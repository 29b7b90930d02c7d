"""Domain commands: ``voices add|list``, ``consents revoke|show``, ``say``, ``audit detect``.

They call the same services as the API, in one transaction each, so the CLI and the API can
never disagree about a rule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from voiceseal.api import ratelimit
from voiceseal.audit import trace
from voiceseal.cli import audit_cmd
from voiceseal.cli.context import JsonOption, get_context
from voiceseal.cli.output import print_json, print_table
from voiceseal.consents import service as consents
from voiceseal.consents.schemas import ConsentPublic
from voiceseal.errors import InvalidInput
from voiceseal.orchestrator import Orchestrator, SpeechRequest
from voiceseal.registry.models import Tenant, Voice
from voiceseal.tenants import service as tenants
from voiceseal.voices import service as voices
from voiceseal.voices.schemas import VoicePublic

voices_app = typer.Typer(name="voices", help="Register and list voices.", no_args_is_help=True)
consents_app = typer.Typer(
    name="consents", help="Inspect and revoke consents.", no_args_is_help=True
)


@voices_app.command("add")
def voices_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="display name of the voice")],
    consent: Annotated[str, typer.Option(help="id of an active, verified consent")],
    clips: Annotated[
        list[Path], typer.Argument(help="reference clip(s)", exists=True, dir_okay=False)
    ],
    transcript: Annotated[str, typer.Option(help="what the clip says")] = "",
    language: Annotated[str, typer.Option()] = "en",
    engine: Annotated[str | None, typer.Option(help="engine (default: settings)")] = None,
    gpt_model: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    sovits_model: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a voice from reference clip(s) under a verified consent."""
    cli = get_context(ctx)
    files = {k: p.read_bytes() for k, p in (("gpt", gpt_model), ("sovits", sovits_model)) if p}
    uploads = [voices.ClipUpload(p.read_bytes(), transcript, language) for p in clips]
    with cli.transaction() as session:
        voice = voices.register(
            session,
            cli.runtime,
            cli.blobs,
            name=name,
            consent_id=consent,
            clips=uploads,
            engine=engine,
            model_files=files,
            actor_key_id=None,
        )
        public = VoicePublic.of(voice)
    if as_json:
        print_json(public.model_dump(mode="json"))
    else:
        typer.echo(f"voice {public.id} registered ({public.engine})")


@voices_app.command("list")
def voices_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every registered voice."""
    with get_context(ctx).transaction() as session:
        rows = [
            VoicePublic.of(v).model_dump(mode="json")
            for v in session.scalars(select(Voice).order_by(Voice.created_at))
        ]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "engine", "status", "languages", "created_at"])


@consents_app.command("revoke")
def consents_revoke(
    ctx: typer.Context,
    consent_id: str,
    reason: Annotated[str, typer.Option(help="why (kept in the record)")] = "",
    as_json: JsonOption = False,
) -> None:
    """Revoke a consent (appended as an event; the next synthesis request is refused)."""
    with get_context(ctx).transaction() as session:
        public = ConsentPublic.of(
            consents.revoke(session, consent_id, reason=reason, actor_key_id=None)
        )
    if as_json:
        print_json(public.model_dump(mode="json"))
    else:
        typer.echo(f"consent {public.id} revoked")


@consents_app.command("show")
def consents_show(ctx: typer.Context, consent_id: str, as_json: JsonOption = False) -> None:
    """A consent with its full event history."""
    with get_context(ctx).transaction() as session:
        c = consents.get(session, consent_id)
        events = dict(consents.history(session, c.speaker_id)).get(c)
        public = ConsentPublic.of(c, events or [])
    if as_json:
        print_json(public.model_dump(mode="json"))
        return
    typer.echo(f"{public.id} v{public.version} {public.status}: {public.statement}")
    for e in public.events or []:
        typer.echo(f"  {e.created_at.isoformat()} {e.event} {e.reason}")


def say(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="what to say ('-' reads standard input)")],
    voice: Annotated[str, typer.Option(help="voice id or name")],
    tenant: Annotated[str, typer.Option(help="tenant name or id the request is made for")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="output file; the extension picks the format")
    ] = Path("speech.wav"),
    purpose: Annotated[str, typer.Option()] = "tts",
    speed: Annotated[float, typer.Option(min=0.25, max=4.0)] = 1.0,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """Synthesize through the full pipeline (policy, watermark, verification, record)."""
    cli = get_context(ctx)
    if text == "-":
        text = sys.stdin.read()
    fmt = out.suffix.lstrip(".").lower() or "wav"
    if fmt not in ("wav", "flac", "mp3", "opus", "aac", "pcm"):
        raise InvalidInput(f"cannot write {out.name}: use .wav, .flac, .mp3, .opus, .aac or .pcm")
    with cli.transaction() as session:
        tenant_id = tenants.resolve(session, tenant).id
    settings = cli.settings

    def charge(session: Session, t: Tenant, chars: int) -> None:
        ratelimit.charge(session, t, settings, requests=1, chars=chars)

    orch = Orchestrator(cli.runtime, cli.sessionmaker, cli.blobs, charge=charge)
    result = orch.synthesize(
        orch.plan(
            SpeechRequest(
                tenant_id=tenant_id,
                api_key_id=None,
                voice=voice,
                text=text,
                response_format=fmt,
                speed=speed,
                purpose=purpose,
                seed=seed,
            )
        )
    )
    # Written whole or not at all: a temporary file renamed into place.
    tmp = out.with_name(f".{out.name}.part")
    tmp.write_bytes(result.audio)
    tmp.replace(out)
    info = {
        "file": str(out),
        "generation_id": result.generation_id,
        "watermark_payload": f"{result.watermark_payload:08x}",
        "duration_s": round(result.duration_s, 3),
    }
    if as_json:
        print_json(info)
    else:
        typer.echo(f"wrote {out} ({info['duration_s']} s, generation {result.generation_id})")


@audit_cmd.app.command("detect")
def audit_detect(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="clips to trace", exists=True, dir_okay=False)
    ],
    as_json: JsonOption = False,
) -> None:
    """Trace clips: watermark → generation → voice → consent → tenant and key."""
    cli = get_context(ctx)
    for path in files:
        with cli.transaction() as session:
            result = trace.detect(
                session, cli.runtime, path.read_bytes(), actor_key_id=None
            ).as_dict()
        if as_json:
            print_json({"file": str(path), **result})
            continue
        g, v, c, t, k = (
            result.get(x) or {} for x in ("generation", "voice", "consent", "tenant", "api_key")
        )
        if g:
            typer.echo(
                f"{path}: generation {g['id']} at {g['created_at']} → voice {v.get('id')} "
                f"→ consent {c.get('id')} v{c.get('version')} ({c.get('status')}) → tenant "
                f"{t.get('name')} → key {k.get('prefix')}"
            )
        else:
            near = (
                ", ".join(
                    f"{n.get('voice_id') or n.get('protected_voice_id')} {n['similarity']:.2f}"
                    for n in result["nearest_voices"][:3]
                )
                or "none"
            )
            dup = (
                ", ".join(
                    f"{d['generation_id']} ({d['votes']} votes)" for d in result["near_duplicates"]
                )
                or "none"
            )
            typer.echo(f"{path}: no watermark; nearest voices: {near}; near-duplicates: {dup}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(voices_app)
    cli.add_typer(consents_app)
    cli.command("say")(say)
