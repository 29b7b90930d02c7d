"""The admin flow for a GPT-SoVITS voice, end to end through the HTTP API.

An admin issues a consent statement, uploads the speaker reading it (transcribed by Whisper,
nonce and speaker checked), registers the voice with its reference clip and its two model files
(uploaded as ``gpt_model``/``sovits_model``, or named from the configured model folder), and a
tenant app then synthesizes through the full pipeline: policy, text, the ``gpt-sovits`` engine,
post-processing, watermark, verification and the generation record with its audit event.

The speaker is the reference engine's bundled Piper voice ("joe"), which reads the statement
and provides the reference clip. The checkpoints are the tiny random fixtures, so the output is
noise that cannot resemble the voice; that one check is switched off through its real setting
(``output_match_threshold``), everything else runs for real on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.kit import audio as audio_io
from voiceseal.kit.db import transaction
from voiceseal.registry.models import AuditEvent, Generation, Tenant, Voice, VoiceSample
from voiceseal.runtime import Runtime, build_runtime
from voiceseal.settings import Settings
from voiceseal_plugins import resemblyzer_encoder, whisper_transcriber
from voiceseal_plugins.gpt_sovits import plugin as gpt_sovits_plugin
from voiceseal_plugins.watermark import plugin as watermark_plugin

# The engine reads HuBERT through transformers (the gpt-sovits extra; `make test` installs it).
pytest.importorskip("transformers", reason="transformers is not installed (gpt-sovits extra)")
pytest.importorskip("piper")
pytest.importorskip("faster_whisper")
pytest.importorskip("resemblyzer")

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpt_sovits"
GPT, SOVITS = FIXTURES / "t2s_tiny.ckpt", FIXTURES / "s2_v2_tiny.pth"
SPEAKER = "joe"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Four sentences: each gives at least 10 tokens (0.4 s), so with the 0.25 s gaps the output
# always exceeds the 1 s the watermark detector reads (shorter outputs would be padded).
SENTENCES = (
    "Good morning. This voice was registered with its consent. "
    "Every clip is watermarked. Every request is recorded."
)


def _missing_from_entry_points(*modules: ModuleType) -> list[ModuleType]:
    """The built-in plugin modules this flow needs that no entry point registers (yet)."""
    registered = {ep.value for ep in entry_points(group="voiceseal")}
    return [m for m in modules if m.__name__ not in registered]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gsv-models")
    shutil.copyfile(GPT, folder / "voice.ckpt")
    shutil.copyfile(SOVITS, folder / "voice.pth")
    return folder


@pytest.fixture(scope="module")
def speaker_audio(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``read(text) -> wav bytes`` in the speaker's voice, and the speaker's reference clip."""
    from voiceseal_plugins.reference_engine.piper_voice import PiperSpeaker
    from voiceseal_plugins.reference_engine.samples import sample_voice

    piper = PiperSpeaker(threads=1)
    clip = sample_voice(SPEAKER, tmp_path_factory.mktemp("samples"))

    def read(text: str) -> bytes:
        # Read a little slowly, as people do when reading a statement aloud, saying each digit
        # of the confirmation number as a word (Piper's own reading of "4 7 2 9" is lost on
        # Whisper tiny.en).
        spoken = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text)
        speech = piper.speak(" ".join(spoken.split()), length_scale=1.15)
        # A microphone recording starts and ends with a moment of room noise (about -60 dBFS);
        # Whisper tends to drop a last sentence that runs into the very end of a clip.
        room = np.random.default_rng(len(text))
        pause = (0.001 * room.standard_normal(piper.sample_rate)).astype(np.float32)
        return audio_io.encode(np.concatenate([pause, speech, pause]), piper.sample_rate, "wav")

    return read, clip


@pytest.fixture
def settings(
    settings: Settings,
    hubert_dir: Path,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    # The engine reads its own settings from the environment, as in production.
    monkeypatch.setenv("VOICESEAL_GPT_SOVITS_HUBERT_DIR", str(hubert_dir))
    monkeypatch.setenv("VOICESEAL_GPT_SOVITS_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("VOICESEAL_GPT_SOVITS_MAX_TOKENS", "120")  # random GPTs ramble
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Random-weight checkpoints produce noise, which cannot resemble the registered voice: the
    # minimum similarity of an output to its own voice is disabled for this test only.
    return settings.model_copy(update={"output_match_threshold": -1.0})


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    extra = _missing_from_entry_points(
        gpt_sovits_plugin, watermark_plugin, whisper_transcriber, resemblyzer_encoder
    )
    return build_runtime(settings, extra_plugins=extra)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _consent(client: TestClient, admin: dict[str, str], tenant: Tenant, read: Any) -> str:
    """An active consent: a statement issued, then read by the speaker and verified.

    Whisper tiny.en occasionally mishears a part of the confirmation number in synthetic speech;
    as a person would, the speaker then reads a freshly issued statement (at most three times).
    """
    refusals = []
    for _ in range(3):
        issued = client.post(
            "/v1/audio/voice_consents",
            headers=admin,
            json={
                "speaker_name": "Joe Sample",
                "tenants": [tenant.id],
                "purposes": ["tts"],
                "languages": ["en"],
            },
        )
        assert issued.status_code == 201, issued.text
        consent = issued.json()
        verified = client.post(
            f"/v1/audio/voice_consents/{consent['id']}/recording",
            headers=admin,
            files={"recording": ("consent.wav", read(consent["statement"]), "audio/wav")},
        )
        if verified.status_code == 200:
            assert verified.json()["status"] == "active"
            return str(consent["id"])
        assert verified.json()["code"] == "consent_nonce_mismatch", verified.text
        refusals.append(verified.json()["checks"]["transcript"]["transcript"])
    raise AssertionError(f"the speaker's reading was never verified: {refusals}")


@pytest.mark.parametrize("files_from", ["upload", "model_dir"])
def test_register_and_synthesize_a_gpt_sovits_voice(
    client: TestClient,
    admin_key: str,
    tenant_key: str,
    tenant: Tenant,
    session_factory: sessionmaker[Session],
    runtime: Runtime,
    speaker_audio: Any,
    files_from: str,
) -> None:
    read, (clip, clip_rate, transcript) = speaker_audio
    admin = _bearer(admin_key)
    consent_id = _consent(client, admin, tenant, read)

    form: dict[str, str] = {
        "name": "joe-gsv",
        "consent": consent_id,
        "transcript": transcript,
        "language": "en",
        "engine": "gpt-sovits",
    }
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("audio_sample", ("reference.wav", audio_io.encode(clip, clip_rate, "wav"), "audio/wav"))
    ]
    if files_from == "upload":
        files += [
            ("gpt_model", ("joe-e15.ckpt", GPT.read_bytes(), "application/octet-stream")),
            ("sovits_model", ("joe_e8_s96.pth", SOVITS.read_bytes(), "application/octet-stream")),
        ]
    else:
        form["engine_options"] = json.dumps({"gpt": "voice.ckpt", "sovits": "voice.pth"})
    registered = client.post("/v1/audio/voices", headers=admin, data=form, files=files)
    assert registered.status_code == 201, registered.text
    voice_id = registered.json()["id"]
    assert registered.json()["engine"] == "gpt-sovits"

    # Whole-file request. The random GPT's output is noise, on which the patchwork watermark is
    # often not verifiable: the pipeline must then deliver nothing and record the failure.
    whole = client.post(
        "/v1/audio/speech",
        headers=_bearer(tenant_key),
        json={"input": SENTENCES, "voice": voice_id, "response_format": "wav", "seed": 1},
    )
    if whole.status_code == 200:
        decoded = audio_io.decode(whole.content, max_seconds=600)
        found = runtime.watermarker().detect(decoded.audio, decoded.sample_rate)
        payload = int(whole.headers["x-watermark-payload"], 16)
        assert found is not None and int.from_bytes(found.payload, "big") == payload
    else:
        assert whole.status_code == 500, whole.text
        assert whole.json()["error"]["code"] == "watermark_error"

    # Streamed request: audio leaves chunk by chunk, watermarked as it goes, and the generation
    # is recorded when the stream ends, whatever the verification found.
    with client.stream(
        "POST",
        "/v1/audio/speech",
        headers=_bearer(tenant_key),
        json={
            "input": SENTENCES,
            "voice": voice_id,
            "response_format": "pcm",
            "stream_format": "audio",
            "seed": 2,
        },
    ) as streamed:
        assert streamed.status_code == 200
        pcm = b"".join(streamed.iter_bytes())
    rate = runtime.settings.output_sample_rate
    seconds = len(pcm) / 2 / rate
    assert seconds > 4 * 0.4 + 3 * 0.25  # four sentences of >= 10 tokens, three gaps

    with transaction(session_factory) as session:
        voice = session.get(Voice, voice_id)
        assert voice is not None and voice.engine == "gpt-sovits"
        # The prompt was computed once at registration and stored with the voice.
        state = voice.engine_state or {}
        assert state["sovits_version"] == "v2" and len(state["prompt_semantic"]) > 0
        if files_from == "upload":
            assert set(voice.model_files) == {"gpt", "sovits"}
            assert voice.model_files["sovits"] == state["sovits_sha256"]
        else:
            assert voice.model_files == {} and voice.engine_options["gpt"] == "voice.ckpt"
        samples = session.scalars(select(VoiceSample).where(VoiceSample.voice_id == voice_id))
        assert [(s.kind, s.transcript) for s in samples] == [("reference", transcript)]

        gens = session.scalars(
            select(Generation)
            .where(Generation.voice_id == voice_id)
            .order_by(Generation.created_at)
        ).all()
        assert len(gens) == 2
        first, stream_gen = gens
        if whole.status_code == 200:
            assert first.id == whole.headers["x-generation-id"]
            assert (first.status, first.engine) == ("delivered", "gpt-sovits")
        else:
            assert (first.status, first.refusal_code) == ("failed", "watermark_error")
        assert stream_gen.streamed and stream_gen.engine == "gpt-sovits"
        assert stream_gen.engine_version == runtime.engine("gpt-sovits").version
        assert stream_gen.status in ("delivered", "failed")  # failed = mark not verifiable
        assert stream_gen.consent_id == consent_id and stream_gen.tenant_id == tenant.id
        assert stream_gen.watermark_payload is not None and stream_gen.speaker_vector is not None
        assert stream_gen.duration_s == pytest.approx(seconds, abs=0.01)
        assert stream_gen.audio_sha256 == hashlib.sha256(pcm).hexdigest()

        actions = {
            (e.action, e.subject_id)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        }
    assert ("voice.registered", voice_id) in actions
    assert (f"generation.{stream_gen.status}", stream_gen.id) in actions
    assert (f"generation.{first.status}", first.id) in actions


def test_bad_model_files_leave_nothing_behind(
    client: TestClient,
    admin_key: str,
    tenant: Tenant,
    session_factory: sessionmaker[Session],
    speaker_audio: Any,
    tmp_path: Path,
) -> None:
    read, (clip, clip_rate, transcript) = speaker_audio
    admin = _bearer(admin_key)
    consent_id = _consent(client, admin, tenant, read)
    refused = client.post(
        "/v1/audio/voices",
        headers=admin,
        data={
            "name": "joe-gsv",
            "consent": consent_id,
            "transcript": transcript,
            "engine": "gpt-sovits",
        },
        files=[
            ("audio_sample", ("r.wav", audio_io.encode(clip, clip_rate, "wav"), "audio/wav")),
            ("gpt_model", ("swapped.ckpt", SOVITS.read_bytes(), "application/octet-stream")),
            ("sovits_model", ("swapped.pth", GPT.read_bytes(), "application/octet-stream")),
        ],
    )
    assert refused.status_code == 422, refused.text
    assert "SoVITS file where a GPT file is expected" in refused.json()["detail"]
    outside = client.post(
        "/v1/audio/voices",
        headers=admin,
        data={
            "name": "joe-gsv",
            "consent": consent_id,
            "transcript": transcript,
            "engine": "gpt-sovits",
            "engine_options": json.dumps({"gpt": "../voice.ckpt", "sovits": "voice.pth"}),
        },
        files=[("audio_sample", ("r.wav", audio_io.encode(clip, clip_rate, "wav"), "audio/wav"))],
    )
    assert outside.status_code == 422 and "relative to the model folder" in outside.json()["detail"]
    with transaction(session_factory) as session:
        assert session.scalars(select(Voice)).first() is None
