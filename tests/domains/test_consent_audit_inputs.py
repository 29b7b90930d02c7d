"""Issue 4's bad inputs: consent recordings that must be refused, audit uploads that must be
bounded, and watermarks that must not resolve to a record unless made with our key."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.contracts import ComponentContext
from voiceseal.kit import audio as audio_io
from voiceseal.kit.db import transaction
from voiceseal.registry.models import Consent, Tenant

from .conftest import SAMPLE_CACHE, SPEAKER, Flow, bearer, sample_wav, speak


def _wav(x: np.ndarray, sr: int) -> bytes:
    return audio_io.encode(x.astype(np.float32), sr, "wav")


class TestConsentRecordingRefusals:
    def test_language_the_recogniser_cannot_verify(self, flow: Flow, tenant: Tenant) -> None:
        c = flow.consent([tenant.id], languages=["de"])
        r = flow.record(c["id"], speak(SPEAKER, c["statement"]))
        assert r.status_code == 422
        assert "de" in r.json()["detail"] or "language" in r.json()["detail"]

    def test_too_short_and_too_long(self, flow: Flow, tenant: Tenant) -> None:
        c = flow.consent([tenant.id])
        clip, sr = sf.read(io.BytesIO(speak(SPEAKER, c["statement"])), dtype="float32")
        short = flow.record(c["id"], _wav(clip[: int(1.0 * sr)], sr))
        assert short.status_code == 422 and "below 2.0 s" in short.json()["detail"]
        long = flow.record(c["id"], _wav(np.tile(clip, 8)[: int(70 * sr)], sr))
        assert long.status_code == 422 and "above 60.0 s" in long.json()["detail"]

    def test_music_is_not_a_consent(self, flow: Flow, tenant: Tenant) -> None:
        c = flow.consent([tenant.id])
        sr = 22050
        t = np.arange(int(8 * sr)) / sr
        notes = 220 * 2 ** (np.floor(t * 2) % 8 / 12)  # a rising scale, two notes a second
        music = sum(np.sin(2 * np.pi * k * notes * t) / k for k in (1, 2, 3))
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2
        r = flow.record(c["id"], _wav(0.2 * music * env, sr))
        assert r.status_code == 422
        assert r.json()["code"] in (
            "consent_nonce_mismatch",
            "consent_statement_mismatch",
            "consent_quality",
        )

    def test_expired_nonce(
        self, flow: Flow, tenant: Tenant, session_factory: sessionmaker[Session]
    ) -> None:
        c = flow.consent([tenant.id])
        with transaction(session_factory) as s:
            s.execute(
                update(Consent)
                .where(Consent.id == c["id"])
                .values(nonce_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        r = flow.record(c["id"], speak(SPEAKER, c["statement"]))
        assert r.status_code == 422 and r.json()["code"] == "consent_nonce_expired"
        with transaction(session_factory) as s:
            row = s.get(Consent, c["id"])
            assert row is not None and row.status == "refused"


class TestAuditUploads:
    def test_not_audio_and_hours_long(self, client: TestClient, auditor_key: str) -> None:
        r = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("x.bin", b"\x00\x01garbage" * 500, "application/octet-stream")},
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_audio"
        # Eleven minutes of 8 kHz audio: bounded by the configured limit before any decoding work.
        long = _wav(np.zeros(11 * 60 * 8000, np.float32), 8000)
        r = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("long.wav", long, "audio/wav")},
        )
        assert r.status_code == 413 and "limit is 600 s" in r.json()["detail"]

    def test_forged_and_unknown_payloads_do_not_resolve(
        self,
        flow: Flow,
        client: TestClient,
        tenant: Tenant,
        tenant_key: str,
        auditor_key: str,
    ) -> None:
        from voiceseal_plugins.watermark.plugin import _build

        _, voice = flow.registered_voice([tenant.id])
        r = client.post(
            "/v1/audio/speech",
            headers=bearer(tenant_key),
            json={"input": "A real generation to impersonate.", "voice": voice["id"]},
        )
        payload = bytes.fromhex(r.headers["x-watermark-payload"])
        clip, _ = sample_wav(SPEAKER, take=3)
        host = audio_io.decode(clip, max_seconds=60)
        # The right payload under another key: a forger who knows an id but not our key.
        forger = _build(
            ComponentContext(data_dir=SAMPLE_CACHE, watermark_key=b"not-our-key-0123456789")
        )
        forged = forger.embed(host.audio, host.sample_rate, payload)
        found = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("f.wav", _wav(forged, host.sample_rate), "audio/wav")},
        ).json()
        assert found["detected"] is False and found["generation"] is None
        # Our key, but a payload no generation carries: found, and honestly unresolved.
        from ..conftest import TEST_WATERMARK_KEY  # the key the app under test uses

        genuine = _build(
            ComponentContext(data_dir=SAMPLE_CACHE, watermark_key=TEST_WATERMARK_KEY.encode())
        )
        unknown = bytes(b ^ 0xFF for b in payload)
        marked = genuine.embed(host.audio, host.sample_rate, unknown)
        found = client.post(
            "/v1/audit/detect",
            headers=bearer(auditor_key),
            files={"file": ("u.wav", _wav(marked, host.sample_rate), "audio/wav")},
        ).json()
        assert found["detected"] is True and found["generation"] is None
        assert found["watermark"]["resolved"] is False
