"""The platform's main job through the API, with real models, on SQLite and PostgreSQL:
consent → voice → speech (whole, streamed, SSE) → audit trace → revocation → refusal."""

from __future__ import annotations

import base64
import io
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.api.idempotency import STALE_AFTER
from voiceseal.kit import audio as audio_io
from voiceseal.kit.db import transaction
from voiceseal.registry.models import (
    AuditEvent,
    Consent,
    FingerprintHash,
    Generation,
    IdempotencyRecord,
    Tenant,
)

from .conftest import Flow, bearer


def _speech(
    client: TestClient,
    key: str,
    voice: str,
    text: str = "Hello from the test suite.",
    **extra: object,
):
    return client.post(
        "/v1/audio/speech", headers=bearer(key), json={"input": text, "voice": voice, **extra}
    )


class TestHappyPath:
    def test_consent_voice_speech_trace_revoke(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        auditor_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        consent, voice = flow.registered_voice([tenant.id])
        checks = consent["verification"]["accepted"]
        assert checks["transcript"]["nonce_found"] is True
        assert checks["watermark"]["detected"] is False

        r = _speech(
            client,
            tenant_key,
            voice["id"],
            "The quick brown fox jumps over the lazy dog. It was 3 p.m.",
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/wav"
        gen_id = r.headers["x-generation-id"]
        audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
        assert sr == 24000 and len(audio) / sr > 2.0
        # Loudness-normalised to the EBU R128 target; true peak under the ceiling.
        assert abs(audio_io.loudness_lufs(audio, sr) - (-23.0)) < 1.5

        # The auditor traces an MP3 copy of the clip to its generation, voice, consent, tenant, key.
        mp3 = audio_io.encode(audio, sr, "mp3")
        found = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("found.mp3", mp3, "audio/mpeg")},
        ).json()
        assert found["detected"] is True
        assert found["generation"]["id"] == gen_id
        assert found["voice"]["id"] == voice["id"]
        assert found["consent"]["id"] == consent["id"]
        assert found["tenant"]["id"] == tenant.id
        assert found["api_key"]["role"] == "tenant"

        with transaction(session_factory) as s:
            gen = s.get(Generation, gen_id)
            assert gen is not None and gen.status == "delivered"
            assert gen.watermark_payload is not None and gen.similarity_to_voice is not None
            assert (
                s.scalar(
                    select(func.count())
                    .select_from(FingerprintHash)
                    .where(FingerprintHash.generation_id == gen_id)
                )
                > 20
            )
            assert s.scalar(
                select(AuditEvent.seq).where(
                    AuditEvent.subject_id == gen_id, AuditEvent.action == "generation.delivered"
                )
            )

        revoked = client.post(
            f"/v1/audio/voice_consents/{consent['id']}/revoke",
            headers=flow.admin,
            json={"reason": "withdrawn"},
        )
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        refused = _speech(client, tenant_key, voice["id"])
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "policy_refused"  # OpenAI error shape
        history = client.get(f"/v1/audio/voices/{voice['id']}/consents", headers=flow.admin).json()
        assert [e["event"] for e in history[0]["events"]] == ["issued", "verified", "revoked"]
        with transaction(session_factory) as s:
            refusal = s.scalar(select(Generation).where(Generation.status == "refused"))
            assert refusal is not None and refusal.refusal_code == "consent_revoked"
        chain = client.post("/v1/audit/verify", headers=bearer(auditor_key)).json()
        assert chain["ok"] is True

    def test_streamed_wav_and_sse_are_watermarked_and_recorded(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        auditor_key: str,
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        text = "First sentence of a stream. Second sentence follows it. And a third one."
        with client.stream(
            "POST",
            "/v1/audio/speech",
            headers=bearer(tenant_key),
            json={
                "input": text,
                "voice": voice["id"],
                "response_format": "wav",
                "stream_format": "audio",
            },
        ) as r:
            assert r.status_code == 200
            chunks = [c for c in r.iter_bytes() if c]
        body = b"".join(chunks)
        assert body[:4] == b"RIFF"
        pcm = np.frombuffer(body[44:], "<i2").astype(np.float32) / 32767
        found = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("s.wav", audio_io.encode(pcm, 24000, "wav"), "audio/wav")},
        ).json()
        assert found["detected"] is True and found["voice"]["id"] == voice["id"]

        sse = client.post(
            "/v1/audio/speech",
            headers=bearer(tenant_key),
            json={
                "input": "Short streamed reply.",
                "voice": voice["id"],
                "response_format": "pcm",
                "stream_format": "sse",
            },
        )
        events = [
            json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")
        ]
        assert events[-1]["type"] == "speech.audio.done"
        audio = b"".join(
            base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta"
        )
        samples = np.frombuffer(audio, "<i2").astype(np.float32) / 32767
        traced = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("s.wav", audio_io.encode(samples, 24000, "wav"), "audio/wav")},
        ).json()
        assert traced["generation"]["id"] == events[-1]["generation_id"]

    def test_stream_dropped_after_audio_left_stays_traceable(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        auditor_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        text = (
            "This first sentence of the stream is long enough to carry its own watermark. "
            "The client hangs up before this second sentence. Nor does it hear a third one."
        )
        with client.stream(
            "POST",
            "/v1/audio/speech",
            headers=bearer(tenant_key),
            json={
                "input": text,
                "voice": voice["id"],
                "response_format": "pcm",
                "stream_format": "audio",
            },
        ) as r:
            assert r.status_code == 200
            first = next(c for c in r.iter_raw() if c)
        # Leaving the block closed the response mid-stream: the pipeline is closed and what had
        # already left is on record with its payload (the close runs after the response ends).
        deadline = time.monotonic() + 60
        while True:
            with transaction(session_factory) as s:
                row = s.scalar(
                    select(Generation).where(
                        Generation.voice_id == voice["id"], Generation.status == "interrupted"
                    )
                )
                if row is not None:
                    gen_id, payload, code = row.id, row.watermark_payload, row.refusal_code
                    n_hashes = s.scalar(
                        select(func.count()).where(FingerprintHash.generation_id == row.id)
                    )
                    break
            assert time.monotonic() < deadline, "the interrupted stream was never recorded"
            time.sleep(0.05)
        assert payload is not None and code == "client_disconnected" and n_hashes
        samples = np.frombuffer(first, "<i2").astype(np.float32) / 32767
        traced = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("s.wav", audio_io.encode(samples, 24000, "wav"), "audio/wav")},
        ).json()
        assert traced["detected"] is True
        assert traced["generation"]["id"] == gen_id
        assert traced["generation"]["status"] == "interrupted"

    def test_every_response_format(
        self, flow: Flow, client: TestClient, tenant: Tenant, tenant_key: str
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        media = {
            "flac": "audio/flac",
            "mp3": "audio/mpeg",
            "opus": "audio/ogg; codecs=opus",
            "aac": "audio/aac",
            "pcm": "audio/pcm",
        }
        for fmt, ctype in media.items():
            r = _speech(
                client,
                tenant_key,
                voice["id"],
                "Checking this response format end to end.",
                response_format=fmt,
            )
            assert r.status_code == 200, (fmt, r.text)
            assert r.headers["content-type"] == ctype and len(r.content) > 500


class TestPolicy:
    def test_other_tenant_is_refused_and_does_not_see_the_voice(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        make_tenant,
        make_key,  # type: ignore[no-untyped-def]
        session_factory: sessionmaker[Session],
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        other = make_tenant("other")
        other_key = make_key("tenant", tenant_id=other.id)
        r = _speech(client, other_key, voice["id"])
        assert r.status_code == 403 and "does not cover this tenant" in r.json()["error"]["message"]
        listed = client.get("/v1/voices", headers=bearer(other_key)).json()["data"]
        assert voice["id"] not in [v["id"] for v in listed]
        with transaction(session_factory) as s:
            row = s.scalar(select(Generation).where(Generation.tenant_id == other.id))
            assert row is not None and row.refusal_code == "consent_scope_tenant"

    def test_expired_consent_and_uncovered_purpose(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        consent, voice = flow.registered_voice([tenant.id], expires_at=soon)
        assert _speech(client, tenant_key, voice["id"], purpose="ads").status_code == 403
        with transaction(session_factory) as s:  # time passes
            s.execute(
                update(Consent)
                .where(Consent.id == consent["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        r = _speech(client, tenant_key, voice["id"])
        assert r.status_code == 403 and "expired" in r.json()["error"]["message"]

    def test_protected_voice_match_blocks_generation_as_violation(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        text = "This exact sentence becomes a protected voice."
        first = _speech(client, tenant_key, voice["id"], text)
        assert first.status_code == 200
        # An admin protects the voice heard in that output (say, it turned out to be a celebrity).
        pv = client.post(
            "/v1/protected_voices",
            headers=flow.admin,
            data={"name": "celebrity"},
            files={"audio": ("p.wav", first.content, "audio/wav")},
        )
        assert pv.status_code == 201, pv.text
        again = _speech(client, tenant_key, voice["id"], text)
        assert again.status_code == 403 and "protected voice" in again.json()["error"]["message"]
        with transaction(session_factory) as s:
            v = s.scalar(select(Generation).where(Generation.status == "violation"))
            assert v is not None and v.protected_voice_id == pv.json()["id"]

    def test_enrolment_refused_for_protected_or_foreign_voices(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
    ) -> None:
        from .conftest import OTHER_SPEAKER, SPEAKER, sample_wav

        _, voice = flow.registered_voice([tenant.id])
        # The same person's voice again, under a consent of another "speaker": refused.
        c2 = flow.verified_consent([tenant.id], SPEAKER, speaker_name="Impostor")
        wav, transcript = sample_wav(SPEAKER, take=1)
        clash = flow.voice(c2["id"], wav, transcript, name="again")
        assert clash.status_code == 409 and voice["id"] in clash.json()["detail"]
        # Reference clips from someone other than the consenting speaker: refused.
        c3 = flow.verified_consent([tenant.id], OTHER_SPEAKER, speaker_name="Someone")
        wav, transcript = sample_wav(SPEAKER, take=2)
        mismatch = flow.voice(c3["id"], wav, transcript)
        assert (
            mismatch.status_code == 403
            and "does not match the consent" in mismatch.json()["detail"]
        )
        # A protected voice can never be enrolled.
        pwav, _ = sample_wav(OTHER_SPEAKER, take=1)
        assert (
            client.post(
                "/v1/protected_voices",
                headers=flow.admin,
                data={"name": "vip"},
                files={"audio": ("p.wav", pwav, "audio/wav")},
            ).status_code
            == 201
        )
        owav, transcript = sample_wav(OTHER_SPEAKER, take=2)
        blocked = flow.voice(c3["id"], owav, transcript)
        assert blocked.status_code == 403 and "protected voice" in blocked.json()["detail"]


class TestConsentRecording:
    def test_wrong_nonce_replay_synthetic_and_reuse_are_refused(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        from .conftest import SPEAKER, speak

        c2 = flow.consent([tenant.id])
        # Until the recogniser hears a reading right (see Flow.verified_consent); every try
        # leaves one refused attempt on c2, so the count below depends on how many it took.
        refused = 0
        for _ in range(3):
            c1 = flow.consent([tenant.id])
            old = speak(SPEAKER, c1["statement"])
            wrong = flow.record(c2["id"], old)  # an old recording: another statement's nonce
            assert wrong.status_code == 422 and wrong.json()["code"] == "consent_nonce_mismatch"
            refused += 1
            if flow.record(c1["id"], old).status_code == 200:
                break
        else:
            raise AssertionError("no reading of a fresh statement was verified")
        again = flow.record(c1["id"], old)  # single use
        assert again.status_code == 409
        replay = flow.record(c2["id"], old)  # the accepted recording, replayed
        assert replay.status_code == 422 and replay.json()["code"] in (
            "consent_replay",
            "consent_nonce_mismatch",
        )
        with transaction(session_factory) as s:
            row = s.get(Consent, c2["id"])
            assert row is not None and len(row.verification["attempts"]) == refused + 1
        # Our own synthetic speech reading the right statement is refused: it carries the watermark.
        _, voice = flow.registered_voice([tenant.id])
        c4 = flow.consent([tenant.id])
        fake = _speech(client, tenant_key, voice["id"], c4["statement"])
        synthetic = flow.record(c4["id"], fake.content)
        assert synthetic.status_code == 422 and synthetic.json()["code"] == "consent_synthetic"

    def test_bad_recordings(self, flow: Flow, tenant: Tenant) -> None:
        c = flow.consent([tenant.id])
        silent = audio_io.encode(np.zeros(16000 * 4, np.float32), 16000, "wav")
        r = flow.record(c["id"], silent)
        assert r.status_code == 422 and "silence" in r.json()["detail"]
        r = flow.record(c["id"], b"this is not audio" * 100)
        assert r.status_code == 422 and r.json()["code"] == "invalid_audio"
        tone = audio_io.encode(
            np.sin(np.arange(16000 * 3) / 5).astype(np.float32) * 0.3, 16000, "wav"
        )
        r = flow.record(c["id"], tone[: len(tone) // 2])
        assert r.status_code == 422 and "truncated" in r.json()["detail"]

    def test_stereo_48k_recording_is_converted(self, flow: Flow, tenant: Tenant) -> None:
        from .conftest import SPEAKER, speak

        for _ in range(3):  # until the recogniser hears a reading right (see Flow.verified_consent)
            c = flow.consent([tenant.id])
            mono, sr = sf.read(io.BytesIO(speak(SPEAKER, c["statement"])), dtype="float32")
            up = audio_io.resample(mono, sr, 48000)
            buf = io.BytesIO()
            sf.write(buf, np.stack([up, up], axis=1), 48000, format="WAV", subtype="PCM_16")
            r = flow.record(c["id"], buf.getvalue())
            if r.status_code == 200:
                break
            assert r.json()["code"] == "consent_nonce_mismatch", r.text
        assert r.status_code == 200, r.text

    def test_unknown_tenant_in_scope(self, flow: Flow, client: TestClient) -> None:
        r = client.post(
            "/v1/audio/voice_consents",
            headers=flow.admin,
            json={"speaker_name": "X", "tenants": ["no-such-tenant"], "purposes": ["tts"]},
        )
        assert r.status_code == 422 and "unknown tenant" in r.json()["detail"]


class TestSpeechInput:
    def test_bad_requests(
        self, flow: Flow, client: TestClient, tenant: Tenant, tenant_key: str, admin_key: str
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        assert _speech(client, tenant_key, "voice_nope").status_code == 404
        r = _speech(client, tenant_key, voice["id"], "")
        assert r.status_code == 422 and "empty" in r.json()["error"]["message"]
        r = _speech(client, tenant_key, voice["id"], "x" * 4097)
        assert r.status_code == 422 and "4096" in r.json()["error"]["message"]
        r = _speech(client, tenant_key, voice["id"], "?!... ---")
        assert r.status_code == 422 and "nothing to speak" in r.json()["error"]["message"]
        assert _speech(client, admin_key, voice["id"]).status_code == 403
        r = _speech(client, tenant_key, voice["id"], response_format="mp3", stream_format="audio")
        assert r.status_code == 422


class TestSpeechIdempotency:
    def _post(
        self, client: TestClient, key: str, idem: str, body: dict[str, object]
    ) -> httpx.Response:
        return client.post(
            "/v1/audio/speech", headers={**bearer(key), "Idempotency-Key": idem}, json=body
        )

    def test_a_retry_replays_the_clip_without_making_another(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        body = {"input": "Said once, heard twice.", "voice": voice["id"], "seed": 5}
        first = self._post(client, tenant_key, "retry-1", body)
        assert first.status_code == 200, first.text
        # Key order does not matter: the body is compared by content.
        again = self._post(client, tenant_key, "retry-1", dict(reversed(body.items())))
        assert again.status_code == 200
        assert again.content == first.content
        assert again.headers["x-generation-id"] == first.headers["x-generation-id"]
        assert again.headers["x-watermark-payload"] == first.headers["x-watermark-payload"]
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        with transaction(session_factory) as s:
            assert s.scalar(select(func.count()).select_from(Generation)) == 1
        # The same key for another request is refused; a new key makes a new clip.
        reused = self._post(client, tenant_key, "retry-1", body | {"seed": 6})
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        other = self._post(client, tenant_key, "retry-2", body | {"seed": 6})
        assert other.headers["x-generation-id"] != first.headers["x-generation-id"]

    def test_failed_first_try_streams_and_abandoned_reservations(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        session_factory: sessionmaker[Session],
    ) -> None:
        _, voice = flow.registered_voice([tenant.id])
        body = {"input": "Only after the fix.", "voice": "voice_nope"}
        assert self._post(client, tenant_key, "k-fail", body).status_code == 404
        with transaction(session_factory) as s:  # the failed try left no reservation behind
            assert s.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
        fixed = self._post(client, tenant_key, "k-fail", body | {"voice": voice["id"]})
        assert fixed.status_code == 200, fixed.text

        streamed = self._post(client, tenant_key, "k-stream", body | {"stream_format": "sse"})
        assert streamed.status_code == 422 and "Idempotency-Key" in streamed.text

        # A reservation still open: a retry is told the first is in progress; once the
        # reservation is older than STALE_AFTER (its process died), the retry does the work.
        ok = body | {"voice": voice["id"], "seed": 9}
        first = self._post(client, tenant_key, "k-open", ok)
        with transaction(session_factory) as s:
            s.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.key == "k-open")
                .values(status_code=0, body=b"", headers=None)
            )
        assert self._post(client, tenant_key, "k-open", ok).status_code == 409
        with transaction(session_factory) as s:
            s.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.key == "k-open")
                .values(created_at=datetime.now(UTC) - STALE_AFTER - timedelta(seconds=1))
            )
        taken_over = self._post(client, tenant_key, "k-open", ok)
        assert taken_over.status_code == 200 and "idempotent-replayed" not in taken_over.headers
        assert taken_over.headers["x-generation-id"] != first.headers["x-generation-id"]
        assert self._post(client, tenant_key, "k-open", ok).content == taken_over.content
