"""``voiceseal demo``: the platform's main job, end to end, on the embedded defaults.

It drives the real HTTP API in-process (so authentication, roles, problem documents and the
orchestrator all run exactly as they do under ``voiceseal serve``):

1. a tenant, an admin, a tenant and an auditor key;
2. a consent statement with a nonce, read aloud by the sample speaker and verified
   (transcript + nonce + not-synthetic), then the voice registered from the speaker's sample clip;
3. two sentences synthesized through the full pipeline, one of them streamed; WAVs written;
4. one output sent through an MP3 round trip and traced by the auditor back to its generation,
   voice, consent, tenant and key;
5. the consent revoked, and the next request shown refused; the audit chain verified.

The sample speaker is one of the reference engine's deterministic sample voices (Piper speech
re-voiced with WORLD); "reading the statement" is that same speaker rendered from the statement's
text, which is what a microphone would capture from a real person.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from voiceseal import hookimpl

SAMPLE_SPEAKER = "alto"
SPEAKER_NAME = "Alex Sample"
SENTENCES = (
    "Welcome to VoiceSeal. Every clip we make carries a watermark that leads back to its request.",
    "This second sentence is streamed, and it is watermarked chunk by chunk as it is produced.",
)


def _say(msg: str) -> None:
    typer.echo(msg)


def _check(resp: Any, expected: int, what: str) -> Any:
    if resp.status_code != expected:
        detail = resp.text[:500]
        raise typer.Exit(_fail(f"{what} failed: HTTP {resp.status_code}: {detail}"))
    return resp


def _fail(msg: str) -> int:
    typer.echo(f"error: {msg}", err=True)
    return 1


def run_demo(out_dir: Path | None = None) -> dict[str, Any]:
    """Run the demo against the configured data folder; returns what it printed, as data."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from voiceseal.api.app import create_app
    from voiceseal.keys import service as keys_service
    from voiceseal.kit import audio as audio_io
    from voiceseal.kit.db import make_engine, make_sessionmaker, transaction
    from voiceseal.kit.migrate import upgrade
    from voiceseal.registry.models import Speaker
    from voiceseal.settings import Settings
    from voiceseal_plugins.reference_engine import samples

    t_start = time.perf_counter()
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir or settings.data_dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as session:
        # A second run in the same data folder is the same person giving consent again (a new
        # consent version), not a new speaker whose voice would clash with the first one.
        speaker_id = session.scalar(select(Speaker.id).where(Speaker.name == SPEAKER_NAME).limit(1))
        _, admin_secret = keys_service.create(
            session,
            pepper=settings.key_pepper_bytes,
            role="admin",
            tenant_id=None,
            name="demo admin",
            actor_key_id=None,
        )
    engine.dispose()
    summary: dict[str, Any] = {}
    with TestClient(create_app(settings)) as client:
        h_admin = {"Authorization": f"Bearer {admin_secret}"}
        tenant_name = f"demo-tenant-{int(time.time())}"
        tenant = _check(
            client.post("/v1/tenants", json={"name": tenant_name}, headers=h_admin),
            201,
            "creating the tenant",
        ).json()
        tkey = _check(
            client.post(
                "/v1/keys",
                json={"role": "tenant", "tenant_id": tenant["id"], "name": "demo app"},
                headers=h_admin,
            ),
            201,
            "creating the tenant key",
        ).json()
        akey = _check(
            client.post(
                "/v1/keys", json={"role": "auditor", "name": "demo auditor"}, headers=h_admin
            ),
            201,
            "creating the auditor key",
        ).json()
        h_tenant = {"Authorization": f"Bearer {tkey['key']}"}
        h_auditor = {"Authorization": f"Bearer {akey['key']}"}
        _say(
            f"1. tenant {tenant['name']} ({tenant['id']}); keys: admin, tenant {tkey['prefix']}…, "
            f"auditor {akey['prefix']}… (secrets shown once, stored hashed)"
        )

        cache = settings.data_dir / "samples"
        who = {"speaker_id": speaker_id} if speaker_id else {"speaker_name": SPEAKER_NAME}
        consent = _check(
            client.post(
                "/v1/audio/voice_consents",
                headers=h_admin,
                json={
                    **who,
                    "tenants": [tenant["id"]],
                    "purposes": ["tts"],
                    "languages": ["en"],
                },
            ),
            201,
            "issuing the consent statement",
        ).json()
        _say(f'2. consent {consent["id"]} issued; the speaker reads:\n   "{consent["statement"]}"')
        spoken, sr = samples.speak_as(SAMPLE_SPEAKER, consent["statement"], cache)
        rec = audio_io.encode(spoken, sr, "wav")
        verified = _check(
            client.post(
                f"/v1/audio/voice_consents/{consent['id']}/recording",
                headers=h_admin,
                files={"recording": ("consent.wav", rec, "audio/wav")},
            ),
            200,
            "verifying the consent recording",
        ).json()
        t = verified["verification"]["accepted"]["transcript"]
        _say(
            f"   verified: nonce heard={t['nonce_found']}, statement match={t['statement_ratio']:.0%}, "
            f"no watermark (not synthetic)"
        )
        clip, clip_sr, transcript = samples.sample_voice(SAMPLE_SPEAKER, cache)
        voice = _check(
            client.post(
                "/v1/audio/voices",
                headers=h_admin,
                data={"name": "alex", "consent": consent["id"], "transcript": transcript},
                files={
                    "audio_sample": (
                        "sample.wav",
                        audio_io.encode(clip, clip_sr, "wav"),
                        "audio/wav",
                    )
                },
            ),
            201,
            "registering the voice",
        ).json()
        ver = client.get(f"/v1/audio/voice_consents/{consent['id']}", headers=h_admin).json()
        sim = ver["verification"].get("speaker_match", {}).get("similarity")
        _say(
            f"   voice {voice['id']} registered (engine {voice['engine']}; consent speaker match {sim})"
        )

        r1 = _check(
            client.post(
                "/v1/audio/speech",
                headers=h_tenant,
                json={"input": SENTENCES[0], "voice": voice["id"], "response_format": "wav"},
            ),
            200,
            "speech",
        )
        (out / "demo-1.wav").write_bytes(r1.content)
        gen1 = r1.headers["x-generation-id"]
        with client.stream(
            "POST",
            "/v1/audio/speech",
            headers=h_tenant,
            json={
                "input": SENTENCES[1],
                "voice": voice["id"],
                "response_format": "wav",
                "stream_format": "audio",
            },
        ) as r2:
            if r2.status_code != 200:
                raise typer.Exit(
                    _fail(f"streamed speech failed: HTTP {r2.status_code}: {r2.read()[:300]!r}")
                )
            chunks = [c for c in r2.iter_bytes() if c]
        streamed = b"".join(chunks)
        pcm = streamed[44:]
        (out / "demo-2-streamed.wav").write_bytes(
            audio_io.encode(
                (audio_io.np.frombuffer(pcm, "<i2") / 32767.0).astype("float32"),
                settings.output_sample_rate,
                "wav",
            )
        )
        _say(
            f"3. wrote {out / 'demo-1.wav'} (generation {gen1}) and {out / 'demo-2-streamed.wav'} "
            f"({len(chunks)} streamed chunks)"
        )

        decoded = audio_io.decode(r1.content, max_seconds=600)
        mp3 = audio_io.encode(decoded.audio, decoded.sample_rate, "mp3")
        (out / "demo-1.mp3").write_bytes(mp3)
        found = _check(
            client.post(
                "/v1/audit/detect",
                headers=h_auditor,
                files={"file": ("found.mp3", mp3, "audio/mpeg")},
            ),
            200,
            "audit",
        ).json()
        g = found.get("generation") or {}
        _say("4. auditor traced demo-1.mp3 (after an MP3 round trip):")
        _say(
            f"   watermark {found['watermark']['payload'] if found['watermark'] else None} "
            f"(confidence {found['watermark']['confidence']:.3f})"
            if found["watermark"]
            else "   no watermark found"
        )
        _say(
            f"   generation {g.get('id')} at {g.get('created_at')} → voice {(found.get('voice') or {}).get('id')} "
            f"→ consent {(found.get('consent') or {}).get('id')} v{(found.get('consent') or {}).get('version')} "
            f"→ tenant {(found.get('tenant') or {}).get('name')} → key {(found.get('api_key') or {}).get('prefix')}…"
        )
        if g.get("id") != gen1:
            raise typer.Exit(_fail(f"the trace found {g.get('id')}, expected {gen1}"))

        _check(
            client.post(
                f"/v1/audio/voice_consents/{consent['id']}/revoke",
                headers=h_admin,
                json={"reason": "speaker withdrew consent (demo)"},
            ),
            200,
            "revoking",
        )
        refused = client.post(
            "/v1/audio/speech",
            headers=h_tenant,
            json={"input": "One more sentence?", "voice": voice["id"]},
        )
        err = refused.json().get("error", {})
        _say(f"5. consent revoked; next request → HTTP {refused.status_code}: {err.get('message')}")
        if refused.status_code != 403:
            raise typer.Exit(_fail("the request after revocation was not refused"))
        chain = _check(
            client.post("/v1/audit/verify", headers=h_auditor), 200, "verifying the chain"
        ).json()
        _say(
            f"   audit chain: {'intact' if chain.get('ok') else 'BROKEN'} ({chain.get('checked')} events)"
        )
        summary = {
            "tenant": tenant["id"],
            "voice": voice["id"],
            "consent": consent["id"],
            "generation": gen1,
            "trace": found,
            "refused_status": refused.status_code,
            "chain": chain,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    _say(f"done in {summary['seconds']} s")
    return summary


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    @cli.command("demo")
    def demo(
        out: Annotated[
            Path | None,
            typer.Option("--out", help="where to write the WAVs (default: DATA_DIR/out)"),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="print the summary as JSON at the end")
        ] = False,
    ) -> None:
        """Register a consented voice, synthesize, watermark, trace and revoke — end to end."""
        summary = run_demo(out)
        if as_json:
            typer.echo(json.dumps(summary, default=str))
