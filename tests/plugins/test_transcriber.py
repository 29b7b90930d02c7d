"""The ``whisper`` transcriber and the word error rate it is judged by."""

from __future__ import annotations

import numpy as np
import pytest

from voiceseal.components import Components
from voiceseal.contracts import ComponentContext, Transcriber
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal.plugins import get_plugin_manager
from voiceseal_plugins import whisper_transcriber
from voiceseal_plugins.reference_engine.samples import SampleClip, SampleKit
from voiceseal_plugins.whisper_transcriber import normalise_words, word_error_rate


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> Components:
    pm = get_plugin_manager(load_entry_points=False, extra=[whisper_transcriber])
    return Components(pm, ComponentContext(data_dir=tmp_path_factory.mktemp("whisper")))


@pytest.fixture(scope="module")
def transcriber(components: Components) -> Transcriber:
    model = components.get("transcribers", "whisper")
    assert isinstance(model, Transcriber)
    return model


@pytest.fixture(scope="module")
def joe(tmp_path_factory: pytest.TempPathFactory) -> SampleClip:
    return SampleKit(tmp_path_factory.mktemp("samples")).clip("joe", take=1)


class TestWhisper:
    def test_registered_as_english_only(self, components: Components) -> None:
        spec = components.spec("transcribers", "whisper")
        assert spec.unavailable is None and "tiny.en" in spec.version
        assert components.spec("transcribers", "faster-whisper").name == "whisper"

    def test_recovers_a_known_sentence(self, transcriber: Transcriber, joe: SampleClip) -> None:
        result = transcriber.transcribe(joe.audio, joe.sample_rate, "en")
        assert word_error_rate(joe.transcript, result.text) <= 0.15
        assert result.language == "en"
        assert 0.3 < result.confidence <= 1.0

    def test_language_may_be_left_out(self, transcriber: Transcriber, joe: SampleClip) -> None:
        assert transcriber.transcribe(joe.audio, joe.sample_rate, None).text

    @pytest.mark.parametrize("language", ["fr", "ja", "de-DE"])
    def test_other_languages_are_refused(
        self, transcriber: Transcriber, joe: SampleClip, language: str
    ) -> None:
        with pytest.raises(InvalidInput, match="English only"):
            transcriber.transcribe(joe.audio, joe.sample_rate, language)

    @pytest.mark.parametrize(
        ("audio", "message"),
        [
            (np.zeros(0, dtype=np.float32), "empty"),
            (np.zeros(16000, dtype=np.float32), "silent"),
            (np.full(16000, np.inf, dtype=np.float32), "NaN or infinite"),
            (np.zeros((2, 16000), dtype=np.float32), "mono"),
        ],
    )
    def test_bad_audio_is_refused(
        self, transcriber: Transcriber, audio: np.ndarray, message: str
    ) -> None:
        with pytest.raises(InvalidAudio, match=message):
            transcriber.transcribe(audio, 16000, "en")

    def test_overlong_audio_is_refused(self, transcriber: Transcriber) -> None:
        too_long = np.full(16000 * 601, 0.1, dtype=np.float32)
        with pytest.raises(InvalidAudio, match="at most 600 s"):
            transcriber.transcribe(too_long, 16000, "en")


class TestWordErrorRate:
    def test_punctuation_case_and_hyphens_do_not_count(self) -> None:
        assert word_error_rate("Sea-shells, by the SEA!", "sea shells by the sea") == 0.0
        assert normalise_words("Café-au-lait's fine.") == ["cafe", "au", "lait's", "fine"]

    def test_counts_substitutions_insertions_and_deletions(self) -> None:
        assert word_error_rate("a b c d", "a x c d") == pytest.approx(0.25)
        assert word_error_rate("a b c d", "a b c d e") == pytest.approx(0.25)
        assert word_error_rate("a b c d", "a c d") == pytest.approx(0.25)
        assert word_error_rate("a b", "") == pytest.approx(1.0)

    def test_empty_reference(self) -> None:
        assert word_error_rate("", "") == 0.0
        assert word_error_rate("...", "words") == 1.0
