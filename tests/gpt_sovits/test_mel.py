"""Spectrogram front ends against the official `mel_processing` outputs (fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.sovits.mel import (
    REFERENCE_STFT,
    V3_MEL,
    V4_MEL,
    MelParams,
    STFTParams,
    linear_spectrogram,
    mel_filterbank,
    mel_spectrogram,
    reference_spectrogram,
)


@pytest.fixture(scope="module")
def s2_io(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = torch.load(fixtures_dir / "s2_v2_tiny_io.pt", weights_only=True)
    return data


@pytest.fixture(scope="module")
def mel_io(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = torch.load(fixtures_dir / "mel_helpers_io.pt", weights_only=True)
    return data


class TestLinearSpectrogram:
    @pytest.mark.parametrize(("wav", "spec"), [("ref_wav_32k", "spec"), ("ref_wav2_32k", "spec2")])
    def test_matches_official(self, s2_io: dict[str, Any], wav: str, spec: str) -> None:
        expected = s2_io["spectrogram"][spec]
        got = linear_spectrogram(s2_io["inputs"][wav])
        assert got.shape == expected.shape
        # Values reach ~170; 1e-4 absolute is a few float32 ulps there.
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)

    def test_frame_count_is_samples_over_hop(self) -> None:
        audio = torch.randn(32000)
        assert linear_spectrogram(audio).shape == (1, 1025, 32000 // REFERENCE_STFT.hop_length)

    def test_batch_equals_items(self) -> None:
        audio = torch.randn(2, 9000, generator=torch.Generator().manual_seed(0))
        batch = linear_spectrogram(audio)
        for item in range(2):
            torch.testing.assert_close(batch[item : item + 1], linear_spectrogram(audio[item]))

    def test_silence_sits_at_the_floor(self) -> None:
        spec = linear_spectrogram(torch.zeros(6400))
        torch.testing.assert_close(spec, torch.full_like(spec, 1e-4))

    @pytest.mark.parametrize(
        ("audio", "message"),
        [
            (torch.zeros(10, dtype=torch.int16), "float"),
            (torch.zeros(1, 1, 4000), r"\[N\] or \[B, N\]"),
            (torch.zeros(700), "too short"),
        ],
    )
    def test_rejects_bad_audio(self, audio: torch.Tensor, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            linear_spectrogram(audio)


class TestReferenceSpectrogram:
    def test_quiet_audio_is_not_rescaled(self, s2_io: dict[str, Any]) -> None:
        wav = s2_io["inputs"]["ref_wav_32k"]  # peak 0.6
        torch.testing.assert_close(
            reference_spectrogram(wav), s2_io["spectrogram"]["spec"], atol=1e-4, rtol=1e-5
        )

    @pytest.mark.parametrize(("gain", "divisor"), [(2.5, 1.5), (5.0, 2.0)])
    def test_loud_audio_is_divided_by_min_of_two_and_peak(
        self, s2_io: dict[str, Any], gain: float, divisor: float
    ) -> None:
        wav = s2_io["inputs"]["ref_wav_32k"]
        loud = wav * gain  # peak 0.6 * gain
        torch.testing.assert_close(
            reference_spectrogram(loud), linear_spectrogram(loud / divisor), rtol=1e-5, atol=1e-5
        )

    def test_requires_mono(self) -> None:
        with pytest.raises(ValueError, match="mono"):
            reference_spectrogram(torch.zeros(2, 32000))


class TestMelSpectrogram:
    def test_v4_matches_official(self, s2_io: dict[str, Any], mel_io: dict[str, Any]) -> None:
        got = mel_spectrogram(s2_io["inputs"]["ref_wav_32k"], V4_MEL)
        assert got.shape == mel_io["mel_v4"].shape == (1, 100, 300)
        torch.testing.assert_close(got, mel_io["mel_v4"], atol=1e-4, rtol=1e-5)

    def test_v3_matches_official(self, mel_io: dict[str, Any]) -> None:
        got = mel_spectrogram(mel_io["ref_wav_24k"], V3_MEL)
        assert got.shape == mel_io["mel_v3"].shape == (1, 100, 281)
        torch.testing.assert_close(got, mel_io["mel_v3"], atol=1e-4, rtol=1e-5)

    def test_fixture_parameters_are_ours(self, mel_io: dict[str, Any]) -> None:
        for params, args in ((V4_MEL, mel_io["mel_v4_args"]), (V3_MEL, mel_io["mel_v3_args"])):
            assert (params.stft.n_fft, params.stft.hop_length, params.stft.win_length) == (
                args["n_fft"],
                args["hop_size"],
                args["win_size"],
            )
            assert (params.sampling_rate, params.n_mels, params.fmin, params.fmax) == (
                args["sampling_rate"],
                args["num_mels"],
                args["fmin"],
                args["fmax"],
            )

    def test_log_floor(self) -> None:
        mel = mel_spectrogram(torch.zeros(4000), V4_MEL)
        assert torch.all(mel >= torch.log(torch.tensor(1e-5)) - 1e-6)


class TestFilterbank:
    @pytest.mark.parametrize(
        ("sr", "n_fft", "n_mels", "fmin", "fmax"),
        [
            (32000, 1280, 100, 0.0, None),
            (24000, 1024, 100, 0.0, None),
            (16000, 513, 40, 50.0, 7000.0),  # odd n_fft, band-limited
        ],
    )
    def test_equals_librosa(
        self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
    ) -> None:
        librosa = pytest.importorskip("librosa")
        expected = torch.from_numpy(
            librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        )
        got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
        assert got.shape == expected.shape == (n_mels, n_fft // 2 + 1)
        torch.testing.assert_close(got, expected, atol=1e-7, rtol=1e-5)

    def test_custom_params_run_end_to_end(self) -> None:
        params = MelParams(STFTParams(512, 128, 400), sampling_rate=16000, n_mels=40)
        assert mel_spectrogram(torch.randn(16000), params).shape == (1, 40, 16000 // 128)

    def test_invalid_stft_params(self) -> None:
        with pytest.raises(ValueError, match="invalid STFT"):
            STFTParams(n_fft=256, hop_length=512, win_length=256)
