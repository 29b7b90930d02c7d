"""The ``reference`` engine: determinism, sane output, per-voice caching, timbre transfer, bad input.

Models load once per module (the engine through the plugin manager, like the platform builds it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voiceseal.components import Components
from voiceseal.contracts import (
    ComponentContext,
    ReferenceClip,
    SynthesisOptions,
    VoiceAssets,
    VoiceHandle,
)
from voiceseal.errors import InvalidAudio, InvalidInput
from voiceseal.plugins import get_plugin_manager
from voiceseal_plugins import resemblyzer_encoder
from voiceseal_plugins.reference_engine import bands, plugin, timbre, world
from voiceseal_plugins.reference_engine.engine import ReferenceEngine
from voiceseal_plugins.reference_engine.samples import (
    SAMPLE_VOICES,
    TAKES,
    SampleKit,
    sample_voice,
    speak_as,
)
from voiceseal_plugins.reference_engine.sentences import split_sentences

SR = 22050
TEXT = "The salt breeze came across from the sea. Help the woman get back to her feet."


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference-engine")


@pytest.fixture(scope="module")
def components(data_dir: Path) -> Components:
    pm = get_plugin_manager(load_entry_points=False, extra=[plugin, resemblyzer_encoder])
    return Components(pm, ComponentContext(data_dir=data_dir))


@pytest.fixture(scope="module")
def ref_engine(components: Components) -> ReferenceEngine:
    engine = components.get("engines", "reference")
    assert isinstance(engine, ReferenceEngine)
    return engine


@pytest.fixture(scope="module")
def kit(data_dir: Path) -> SampleKit:
    return SampleKit(data_dir)


def _assets(kit: SampleKit, name: str, takes: tuple[int, ...]) -> VoiceAssets:
    clips = [kit.clip(name, take=t) for t in takes]
    return VoiceAssets(
        voice_id=name,
        references=tuple(ReferenceClip(c.audio, c.sample_rate, c.transcript) for c in clips),
    )


@pytest.fixture(scope="module")
def high_voice(ref_engine: ReferenceEngine, kit: SampleKit) -> VoiceHandle:
    return ref_engine.prepare_voice(_assets(kit, "joe-high", takes=(0,)))


def _speak(engine: ReferenceEngine, text: str, voice: VoiceHandle, **options: object) -> np.ndarray:
    chunks = list(engine.synthesize(text, voice, SynthesisOptions(**options)))  # type: ignore[arg-type]
    return np.concatenate([c.samples for c in chunks])


class TestRegistration:
    def test_listed_with_versions_and_capabilities(
        self, components: Components, ref_engine: ReferenceEngine
    ) -> None:
        spec = components.spec("engines", "reference")
        assert spec.unavailable is None
        assert "piper-tts" in spec.version and "pyworld" in spec.version
        caps = ref_engine.capabilities
        assert caps.languages == ("en",)
        assert caps.sample_rates == (SR,)
        assert caps.streaming is True and caps.device == "cpu"


class TestSynthesis:
    def test_same_request_gives_identical_samples(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle
    ) -> None:
        first = _speak(ref_engine, TEXT, high_voice, seed=7)
        second = _speak(ref_engine, TEXT, high_voice, seed=7)
        assert first.dtype == np.float32
        np.testing.assert_array_equal(first, second)

    def test_one_chunk_per_sentence_with_sane_audio(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle
    ) -> None:
        chunks = list(ref_engine.synthesize(TEXT, high_voice, SynthesisOptions()))
        assert [c.segment for c in chunks] == [0, 1]
        assert [c.final for c in chunks] == [False, True]
        audio = np.concatenate([c.samples for c in chunks])
        assert all(c.sample_rate == SR for c in chunks)
        assert np.all(np.isfinite(audio))
        assert 0.1 < float(np.max(np.abs(audio))) <= 1.0
        words = len(TEXT.split())
        # Conversational English runs at 2-4 words per second.
        assert words / 5.0 < audio.size / SR < words / 1.5

    def test_speed_shortens_speech(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle
    ) -> None:
        sentence = "Four hours of steady work faced us."
        normal = _speak(ref_engine, sentence, high_voice)
        fast = _speak(ref_engine, sentence, high_voice, speed=2.0)
        assert 0.4 < fast.size / normal.size < 0.65

    def test_punctuation_only_sentence_becomes_a_pause(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle
    ) -> None:
        chunks = list(ref_engine.synthesize("Rice is good. ...", high_voice, SynthesisOptions()))
        assert len(chunks) == 2
        assert float(np.max(np.abs(chunks[1].samples))) == 0.0

    @pytest.mark.parametrize("text", ["", "   ", "?!...", "—"])
    def test_text_with_nothing_to_say_is_refused(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle, text: str
    ) -> None:
        with pytest.raises(InvalidInput, match="nothing to pronounce"):
            ref_engine.synthesize(text, high_voice, SynthesisOptions())  # before any audio

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (SynthesisOptions(speed=0.0), "speed must be between"),
            (SynthesisOptions(speed=9.0), "speed must be between"),
            (SynthesisOptions(language="fr"), "English only"),
        ],
    )
    def test_bad_options_are_refused(
        self,
        ref_engine: ReferenceEngine,
        high_voice: VoiceHandle,
        options: SynthesisOptions,
        message: str,
    ) -> None:
        with pytest.raises(InvalidInput, match=message):
            list(ref_engine.synthesize("Hello there.", high_voice, options))

    def test_handle_of_another_engine_is_refused(self, ref_engine: ReferenceEngine) -> None:
        foreign = VoiceHandle(voice_id="v", engine="gpt-sovits", state=object())
        with pytest.raises(InvalidInput, match="prepared by engine 'gpt-sovits'"):
            list(ref_engine.synthesize("Hello there.", foreign, SynthesisOptions()))


class TestVoicePreparation:
    def test_cached_analysis_is_reused_not_recomputed(
        self, ref_engine: ReferenceEngine, kit: SampleKit
    ) -> None:
        assets = _assets(kit, "joe-deep", takes=(0, 1))
        before = ref_engine.analysed_clips
        handle = ref_engine.prepare_voice(assets)
        assert ref_engine.analysed_clips == before + 2
        stored = json.loads(json.dumps(handle.persist))  # what the registry keeps
        again = ref_engine.prepare_voice(
            VoiceAssets(assets.voice_id, assets.references, cached=stored)
        )
        assert ref_engine.analysed_clips == before + 2
        assert again.persist == handle.persist
        np.testing.assert_allclose(again.state.eq_db, handle.state.eq_db, atol=1e-3)

    def test_cache_from_another_algorithm_is_recomputed(
        self, ref_engine: ReferenceEngine, kit: SampleKit
    ) -> None:
        assets = _assets(kit, "joe-bright", takes=(2,))
        handle = ref_engine.prepare_voice(assets)
        stale = {**handle.persist, "algorithm": "world-timbre/0"}
        before = ref_engine.analysed_clips
        ref_engine.prepare_voice(VoiceAssets(assets.voice_id, assets.references, cached=stale))
        assert ref_engine.analysed_clips == before + 1

    def test_plan_follows_the_target_voice(
        self, ref_engine: ReferenceEngine, kit: SampleKit, high_voice: VoiceHandle
    ) -> None:
        deep = ref_engine.prepare_voice(_assets(kit, "joe-deep", takes=(3,)))
        source_f0 = ref_engine.source_profile.f0_median_hz
        assert np.exp(high_voice.state.target_logf0[0]) > 1.5 * source_f0
        assert high_voice.state.warp > 1.1
        assert deep.state.warp < 1.0

    def test_transfer_moves_the_speaker_embedding_toward_the_target(
        self,
        components: Components,
        ref_engine: ReferenceEngine,
        kit: SampleKit,
        high_voice: VoiceHandle,
    ) -> None:
        encoder = components.get("speaker_encoders", "resemblyzer")
        clip = kit.clip("joe-high", take=0)
        target = encoder.embed(clip.audio, clip.sample_rate)
        sentences = [
            "The birch canoe slid on the smooth planks.",
            "Smoky fires lack flame and heat.",
        ]
        bare = [ref_engine.speak(s) for s in sentences]
        moved = [ref_engine.transfer(a, high_voice.state) for a in bare]
        before = np.mean([encoder.embed(a, SR) @ target for a in bare])
        after = np.mean([encoder.embed(a, SR) @ target for a in moved])
        assert after > before + 0.1

    def test_no_reference_clips_is_refused(self, ref_engine: ReferenceEngine) -> None:
        with pytest.raises(InvalidAudio, match="no reference clips"):
            ref_engine.prepare_voice(VoiceAssets(voice_id="v", references=()))

    @pytest.mark.parametrize(
        ("audio", "rate", "message"),
        [
            (np.full(SR, np.nan, dtype=np.float32), SR, "NaN or infinite"),
            (np.zeros((SR, 2), dtype=np.float32), SR, "mono audio"),
            (np.zeros(0, dtype=np.float32), SR, "mono audio"),
            (np.zeros(SR * 3, dtype=np.float32), SR, "voiced speech"),
            (np.ones(100, dtype=np.float32), 0, "sample rate 0"),
        ],
    )
    def test_unusable_reference_is_refused(
        self, ref_engine: ReferenceEngine, audio: np.ndarray, rate: int, message: str
    ) -> None:
        clip = ReferenceClip(audio=audio, sample_rate=rate)
        with pytest.raises(InvalidAudio, match=message):
            ref_engine.prepare_voice(VoiceAssets(voice_id="v", references=(clip,)))


class TestTimbre:
    def test_warp_moves_a_formant_by_the_factor(self) -> None:
        freqs = world.bin_frequencies(SR)
        envelope = -(((freqs - 1000.0) / 150.0) ** 2)  # one peak at 1 kHz
        same = timbre.warp_envelope(envelope[np.newaxis, :], 1.0, SR)[0]
        np.testing.assert_allclose(same, envelope, atol=1e-9)
        moved = timbre.warp_envelope(envelope[np.newaxis, :], 1.1, SR)[0]
        assert abs(freqs[int(np.argmax(moved))] - 1100.0) < freqs[1]

    def test_pitch_level_moves_at_most_the_limit(self) -> None:
        frames = 200
        f0 = np.full(frames, 100.0)
        bins = world.FFT_SIZE // 2 + 1
        features = world.WorldFeatures(
            f0=f0, sp=np.ones((frames, bins)), ap=np.zeros((frames, bins)), sample_rate=SR
        )

        def moved_to(target_hz: float) -> float:
            plan = timbre.TransferPlan(
                source_logf0=(float(np.log(100.0)), 0.2),
                target_logf0=(float(np.log(target_hz)), 0.2),
                warp=1.0,
                eq_db=np.zeros(bins),
                sample_rate=SR,
            )
            return float(np.median(timbre.apply_transfer(features, plan).f0))

        assert moved_to(180.0) == pytest.approx(180.0)
        assert moved_to(400.0) == pytest.approx(100.0 * timbre.MAX_F0_SHIFT)
        assert moved_to(20.0) == pytest.approx(100.0 / timbre.MAX_F0_SHIFT)

    def test_profile_round_trips_through_json(self, ref_engine: ReferenceEngine) -> None:
        profile = ref_engine.source_profile
        restored = timbre.VoiceProfile.from_json(json.loads(json.dumps(profile.to_json())))
        assert restored.logf0_mean == pytest.approx(profile.logf0_mean)
        np.testing.assert_allclose(restored.envelope_db, profile.envelope_db, atol=1e-3)


class TestWorldPath:
    def test_octave_folding_finds_the_weak_fundamental_of_the_bundled_voice(
        self, ref_engine: ReferenceEngine
    ) -> None:
        audio = ref_engine.speak("The juice of lemons makes fine punch.")
        low, high = 55.0, 150.0
        tight = world.analyse(audio, SR, accurate=False, f0_range=(low, high))
        folded = world.analyse(audio, SR, accurate=False, f0_range=(low, high), fold_octave=True)
        assert folded.voiced.mean() > 1.5 * tight.voiced.mean()
        assert low * 0.9 < float(np.median(folded.f0[folded.voiced])) < high

    def test_octave_folding_is_refused_for_harvest(self) -> None:
        with pytest.raises(ValueError, match="DIO option"):
            world.analyse(np.zeros(SR, dtype=np.float32), SR, accurate=True, fold_octave=True)

    def test_transfer_keeps_length_and_the_source_above_the_crossover(
        self, ref_engine: ReferenceEngine, high_voice: VoiceHandle
    ) -> None:
        audio = ref_engine.speak("Smoky fires lack flame and heat.")
        moved = ref_engine.transfer(audio, high_voice.state)
        assert moved.size == audio.size and moved.dtype == np.float32
        freqs = np.fft.rfftfreq(audio.size, 1.0 / SR)
        top = freqs > bands.CROSSOVER_HZ + bands.CROSSOVER_WIDTH_HZ
        # Above the crossover only the level changes (loudness match, peak limit).
        a, b = np.fft.rfft(audio)[top], np.fft.rfft(moved)[top]
        gain = float(np.vdot(a, b).real / np.vdot(a, a).real)
        residual = float(np.sum(np.abs(b - gain * a) ** 2) / np.sum(np.abs(a) ** 2))
        assert residual < 0.01
        assert 0.3 < gain < 3.0


class TestBands:
    def test_each_band_comes_from_its_own_signal(self) -> None:
        t = np.arange(SR) / SR
        low_tone = np.sin(2 * np.pi * 500.0 * t)
        high_tone = np.sin(2 * np.pi * 7000.0 * t)
        out = bands.keep_high_band(low_tone + 0.5 * high_tone, 0.5 * low_tone + high_tone, SR)
        inner = slice(SR // 10, -SR // 10)  # away from the clip's abrupt ends
        np.testing.assert_allclose(out[inner], (low_tone + high_tone)[inner], atol=1e-2)

    def test_identical_signals_pass_unchanged(self) -> None:
        noise = np.random.default_rng(0).standard_normal(5000)
        np.testing.assert_allclose(bands.keep_high_band(noise, noise, SR), noise, atol=1e-9)

    def test_output_has_the_length_of_the_original(self) -> None:
        out = bands.keep_high_band(np.ones(90), np.zeros(100), SR)
        assert out.shape == (100,)

    def test_crossover_above_nyquist_is_refused(self) -> None:
        with pytest.raises(ValueError, match="Nyquist"):
            bands.keep_high_band(np.zeros(10), np.zeros(10), 8000, crossover_hz=4000.0)


class TestSentences:
    def test_splits_sentences_but_not_titles(self) -> None:
        text = 'Dr. Smith arrived. "Is it late?" she asked! Then silence'
        assert split_sentences(text) == [
            "Dr. Smith arrived.",
            '"Is it late?"',
            "she asked!",
            "Then silence",
        ]

    def test_cuts_overlong_sentences_at_clauses(self) -> None:
        text = ", ".join(["the quick brown fox jumps over the lazy dog"] * 20) + "."
        pieces = split_sentences(text, max_chars=120)
        assert all(len(p) <= 120 for p in pieces)
        assert " ".join(pieces).split() == text.split()


class TestSamples:
    @pytest.mark.parametrize(
        "name", ["joe", "joe-high", pytest.param("kokoro-kumo", marks=pytest.mark.slow)]
    )
    def test_clips_are_clean_mono_and_five_to_eight_seconds(
        self, data_dir: Path, name: str
    ) -> None:
        audio, rate, transcript = sample_voice(name, data_dir)
        assert audio.ndim == 1 and audio.dtype == np.float32
        assert 5.0 <= audio.size / rate <= 8.0
        assert np.all(np.isfinite(audio)) and float(np.max(np.abs(audio))) <= 1.0
        assert transcript.split()[0] == "A"
        again = sample_voice(name, data_dir)
        np.testing.assert_array_equal(again.audio, audio)

    def test_speak_as_reads_new_text_in_the_sample_voice(self, data_dir: Path) -> None:
        audio, rate = speak_as("joe-high", "I agree. The code is four nine two.", data_dir)
        assert rate == SR and audio.dtype == np.float32
        assert 1.0 < audio.size / rate < 5.0
        with pytest.raises(ValueError, match="nothing to pronounce"):
            speak_as("joe-high", " ... ", data_dir)

    def test_kit_lists_enough_distinct_voices(self) -> None:
        assert len(SAMPLE_VOICES) >= 5 and TAKES >= 2

    def test_unknown_voice_and_take_are_refused(self, data_dir: Path) -> None:
        with pytest.raises(KeyError, match="no sample voice 'nobody'"):
            sample_voice("nobody", data_dir)
        with pytest.raises(ValueError, match="take must be in"):
            sample_voice("joe", data_dir, take=TAKES)
