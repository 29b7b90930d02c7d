"""The ``resemblyzer`` speaker encoder: registration, embedding contract, speaker separation, bad input."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soxr

from voiceseal.components import Components
from voiceseal.contracts import ComponentContext, SpeakerEncoder
from voiceseal.errors import InvalidAudio
from voiceseal.plugins import get_plugin_manager
from voiceseal_plugins import resemblyzer_encoder
from voiceseal_plugins.reference_engine.samples import SampleClip, SampleKit


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> Components:
    pm = get_plugin_manager(load_entry_points=False, extra=[resemblyzer_encoder])
    return Components(pm, ComponentContext(data_dir=tmp_path_factory.mktemp("encoder")))


@pytest.fixture(scope="module")
def encoder(components: Components) -> SpeakerEncoder:
    enc = components.get("speaker_encoders", "resemblyzer")
    assert isinstance(enc, SpeakerEncoder)
    return enc


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> SampleKit:
    return SampleKit(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def joe(kit: SampleKit) -> SampleClip:
    return kit.clip("joe", take=0)


def test_registered_with_library_version(components: Components) -> None:
    spec = components.spec("speaker_encoders", "resemblyzer")
    assert spec.unavailable is None
    assert spec.version.startswith("resemblyzer 0.")


def test_embedding_is_a_unit_float32_vector(encoder: SpeakerEncoder, joe: SampleClip) -> None:
    vector = encoder.embed(joe.audio, joe.sample_rate)
    assert vector.shape == (encoder.dim,) == (256,)
    assert vector.dtype == np.float32
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_input_rate_does_not_matter(encoder: SpeakerEncoder, joe: SampleClip) -> None:
    at_48k = soxr.resample(joe.audio, joe.sample_rate, 48000).astype(np.float32)
    native = encoder.embed(joe.audio, joe.sample_rate)
    assert float(encoder.embed(at_48k, 48000) @ native) > 0.98


def test_same_voice_is_closer_than_a_shifted_voice(
    encoder: SpeakerEncoder, kit: SampleKit, joe: SampleClip
) -> None:
    other_take = kit.clip("joe", take=1)
    shifted = kit.clip("joe-high", take=1)
    anchor = encoder.embed(joe.audio, joe.sample_rate)
    same = float(anchor @ encoder.embed(other_take.audio, other_take.sample_rate))
    different = float(anchor @ encoder.embed(shifted.audio, shifted.sample_rate))
    assert same > 0.85
    assert same > different + 0.1


def test_concurrent_calls_give_the_sequential_result(
    encoder: SpeakerEncoder, joe: SampleClip
) -> None:
    expected = encoder.embed(joe.audio, joe.sample_rate)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: encoder.embed(joe.audio, joe.sample_rate), range(3)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("audio", "rate", "message"),
    [
        (np.zeros(0, dtype=np.float32), 16000, "empty"),
        (np.zeros(16000, dtype=np.float32), 16000, "silent"),
        (np.full(16000, np.nan, dtype=np.float32), 16000, "NaN"),
        (np.zeros((16000, 2), dtype=np.float32), 16000, "mono"),
        (np.ones(16000, dtype=np.float32), -1, "sample rate"),
    ],
)
def test_bad_audio_is_refused(
    encoder: SpeakerEncoder, audio: np.ndarray, rate: int, message: str
) -> None:
    with pytest.raises(InvalidAudio, match=message):
        encoder.embed(audio, rate)


def test_too_little_speech_is_refused(encoder: SpeakerEncoder, joe: SampleClip) -> None:
    snippet = joe.audio[int(0.5 * joe.sample_rate) : int(0.7 * joe.sample_rate)]
    with pytest.raises(InvalidAudio, match="of speech found"):
        encoder.embed(snippet, joe.sample_rate)


def test_registration_loads_no_model_library(tmp_path: Path) -> None:
    # Listing plugins must stay cheap: the three plugins register without importing their models.
    code = (
        "import sys\n"
        "from voiceseal_plugins import resemblyzer_encoder, whisper_transcriber\n"
        "from voiceseal_plugins.reference_engine import plugin\n"
        "seen = []\n"
        "def register(name, factory, **kw):\n"
        "    seen.append(name)\n"
        "resemblyzer_encoder.register_speaker_encoders(register)\n"
        "whisper_transcriber.register_transcribers(register)\n"
        "plugin.register_engines(register)\n"
        "heavy = ('torch', 'resemblyzer', 'faster_whisper', 'ctranslate2', 'piper', 'onnxruntime', 'pyworld')\n"
        "print(','.join(seen), '|', ','.join(m for m in heavy if m in sys.modules))\n"
    )
    # Run outside the repository root, where the `platform/` folder would shadow the stdlib.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    ).stdout.strip()
    assert out == "resemblyzer,whisper,reference |"
