"""Domain tests run the real plugins (reference engine, resemblyzer, Whisper, the watermark).

Loading those models takes seconds, so one set of components is shared by the whole session
(``build_runtime(settings, components=...)``); every test still gets its own database, settings
and app. Sample speech is cached under ``data/.test-cache`` between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from voiceseal.components import Components
from voiceseal.kit import audio as audio_io
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings

from ..conftest import TEST_KEY_PEPPER, TEST_WATERMARK_KEY

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CACHE = REPO / "data" / ".test-cache"
SPEAKER = "joe-deep"
OTHER_SPEAKER = "kokoro-kumo"


@pytest.fixture(scope="session")
def shared_components(tmp_path_factory: pytest.TempPathFactory) -> Components:
    settings = Settings(
        environment="test",
        data_dir=SAMPLE_CACHE,
        watermark_key=SecretStr(TEST_WATERMARK_KEY),
        key_pepper=SecretStr(TEST_KEY_PEPPER),
    )
    return build_runtime(settings).components


@pytest.fixture
def runtime(settings: Settings, shared_components: Components) -> Runtime:
    return build_runtime(settings, components=shared_components)


def speak(speaker: str, text: str) -> bytes:
    """WAV bytes of a sample speaker reading ``text`` (what a microphone would capture)."""
    from voiceseal_plugins.reference_engine import samples

    clip = samples.speak_as(speaker, text, SAMPLE_CACHE)
    return audio_io.encode(clip.audio, clip.sample_rate, "wav")


def sample_wav(speaker: str, take: int = 0) -> tuple[bytes, str]:
    from voiceseal_plugins.reference_engine import samples

    clip = samples.sample_voice(speaker, SAMPLE_CACHE, take=take)
    return audio_io.encode(clip.audio, clip.sample_rate, "wav"), clip.transcript


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


#: Refusals that come from the recogniser mishearing a correct reading.
_MISHEARD = ("consent_nonce_mismatch", "consent_statement_mismatch")


@dataclass
class Flow:
    client: TestClient
    admin: dict[str, str]

    def consent(
        self,
        tenants: list[str],
        *,
        speaker_name: str = "Alex Sample",
        purposes: list[str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        r = self.client.post(
            "/v1/audio/voice_consents",
            headers=self.admin,
            json={
                "speaker_name": speaker_name,
                "tenants": tenants,
                "purposes": purposes or ["tts"],
                "languages": ["en"],
                **extra,
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def record(self, consent_id: str, wav: bytes) -> Any:
        return self.client.post(
            f"/v1/audio/voice_consents/{consent_id}/recording",
            headers=self.admin,
            files={"recording": ("consent.wav", wav, "audio/wav")},
        )

    def voice(self, consent_id: str, wav: bytes, transcript: str, name: str = "alex") -> Any:
        return self.client.post(
            "/v1/audio/voices",
            headers=self.admin,
            data={"name": name, "consent": consent_id, "transcript": transcript},
            files={"audio_sample": ("ref.wav", wav, "audio/wav")},
        )

    def verified_consent(
        self, tenants: list[str], speaker: str = SPEAKER, **consent_extra: Any
    ) -> dict[str, Any]:
        """A consent read aloud by ``speaker`` and accepted.

        The bundled recogniser (Whisper tiny.en) sometimes mishears the digit run, or a name in
        the statement ("Alex Sample" heard as "no example"), as the synthetic sample voices read
        it, and the platform then refuses, as it must. Like a person asked to read a fresh
        statement again, this retries with a new statement (four at most); any other refusal
        fails at once.
        """
        heard = []
        for _ in range(4):
            consent = self.consent(tenants, **consent_extra)
            r = self.record(consent["id"], speak(speaker, consent["statement"]))
            if r.status_code == 200:
                return dict(r.json())
            assert r.json().get("code") in _MISHEARD, r.text
            heard.append(r.json()["checks"]["transcript"]["transcript"])
        raise AssertionError(f"the speaker's reading was never verified: {heard}")

    def registered_voice(
        self, tenants: list[str], speaker: str = SPEAKER, **consent_extra: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        consent = self.verified_consent(tenants, speaker, **consent_extra)
        wav, transcript = sample_wav(speaker)
        v = self.voice(consent["id"], wav, transcript)
        assert v.status_code == 201, v.text
        return consent, v.json()


@pytest.fixture
def flow(client: TestClient, admin_key: str) -> Flow:
    return Flow(client, bearer(admin_key))


Speak = Callable[[str, str], bytes]
