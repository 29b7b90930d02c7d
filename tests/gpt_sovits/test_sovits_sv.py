"""v2Pro speaker embedding: Kaldi fbank parity and the ERes2NetV2 encoder's structure."""

from __future__ import annotations

import pytest
import torch

from voiceseal_models.gpt_sovits.sovits.sv import (
    ERes2NetV2,
    SpeakerEmbedder,
    kaldi_fbank,
)


def _voice(seconds: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    tone = sum(0.2 / k * torch.sin(2 * torch.pi * 140 * k * t) for k in range(1, 6))
    return tone + 0.02 * torch.randn(t.shape, generator=gen)


class TestKaldiFbank:
    def test_matches_kaldi(self) -> None:
        knf = pytest.importorskip("kaldi_native_fbank")
        wav = _voice(1.0)
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0
        opts.mel_opts.num_bins = 80
        online = knf.OnlineFbank(opts)
        online.accept_waveform(16000, wav.tolist())
        online.input_finished()
        expected = torch.stack(
            [torch.as_tensor(online.get_frame(i)) for i in range(online.num_frames_ready)]
        )
        got = kaldi_fbank(wav)
        assert got.shape == (1, 98, 80) == (1, *expected.shape)
        # Log energies up to ~16; float32 FFTs differ in the last bits.
        torch.testing.assert_close(got[0], expected, atol=1e-3, rtol=1e-4)

    def test_frame_count_and_batch(self) -> None:
        wav = torch.stack([_voice(0.5, 1), _voice(0.5, 2)])
        batch = kaldi_fbank(wav)
        assert batch.shape == (2, 1 + (8000 - 400) // 160, 80)
        torch.testing.assert_close(batch[1:], kaldi_fbank(wav[1]))

    def test_silence_is_floored(self) -> None:
        floor = torch.log(torch.tensor(torch.finfo(torch.float32).eps))
        torch.testing.assert_close(kaldi_fbank(torch.zeros(800)), floor.expand(1, 3, 80))

    @pytest.mark.parametrize(
        ("wav", "message"),
        [
            (torch.zeros(399), "shorter than one 25 ms frame"),
            (torch.zeros(1, 1, 800), r"\[N\] or \[B, N\]"),
            (torch.zeros(800, dtype=torch.int16), "float"),
        ],
    )
    def test_rejects_bad_input(self, wav: torch.Tensor, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            kaldi_fbank(wav)


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    torch.manual_seed(0)
    encoder = ERes2NetV2()
    # Non-trivial BatchNorm statistics so that eval-mode normalisation is exercised.
    gen = torch.Generator().manual_seed(1)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.normal_(0, 0.1, generator=gen)
            module.running_var.uniform_(0.5, 1.5, generator=gen)
    return SpeakerEmbedder(encoder).eval().requires_grad_(False)


class TestERes2NetV2:
    def test_official_layout(self, embedder: SpeakerEmbedder) -> None:
        shapes = {k: tuple(v.shape) for k, v in embedder.encoder.state_dict().items()}
        # Names/shapes implied by GPT-SoVITS's ERes2NetV2(baseWidth=24, scale=4, expansion=4).
        assert shapes["conv1.weight"] == (64, 1, 3, 3)
        assert shapes["layer1.0.conv1.weight"] == (96, 64, 1, 1)  # width 24 x scale 4
        assert shapes["layer1.0.shortcut.0.weight"] == (256, 64, 1, 1)
        assert shapes["layer2.0.convs.3.weight"] == (48, 48, 3, 3)
        assert shapes["layer3.5.fuse_models.2.local_att.0.weight"] == (24, 192, 1, 1)
        assert shapes["layer4.2.bn3.running_var"] == (2048,)
        assert shapes["layer3_ds.weight"] == (2048, 1024, 3, 3)
        assert shapes["fuse34.local_att.3.weight"] == (2048, 512, 1, 1)
        assert shapes["seg_1.weight"] == (192, 40960)
        assert "layer1.0.fuse_models.0.local_att.0.weight" not in shapes  # AFF only in 3/4
        assert sum(1 for k in shapes if k.endswith("num_batches_tracked")) == sum(
            1 for m in embedder.modules() if isinstance(m, torch.nn.BatchNorm2d)
        )

    def test_embedding_shape_and_determinism(self, embedder: SpeakerEmbedder) -> None:
        wav = _voice(0.3)
        first = embedder(wav)
        assert first.shape == (1, 20480)
        assert torch.isfinite(first).all()
        assert torch.equal(first, embedder(wav))
        assert not torch.allclose(first, embedder(_voice(0.3, seed=5)))

    def test_batch_equals_items(self, embedder: SpeakerEmbedder) -> None:
        wavs = torch.stack([_voice(0.3, 3), _voice(0.3, 4)])
        batch = embedder(wavs)
        torch.testing.assert_close(batch[1:], embedder(wavs[1]), atol=1e-5, rtol=1e-4)

    def test_192d_head(self, embedder: SpeakerEmbedder) -> None:
        with torch.inference_mode():
            out = embedder.encoder.embedding(kaldi_fbank(_voice(0.3)))
        assert out.shape == (1, 192)

    def test_state_dict_round_trip(self, embedder: SpeakerEmbedder) -> None:
        state = embedder.encoder.state_dict()
        again = SpeakerEmbedder.from_state_dict(state)
        wav = _voice(0.3, 6)
        assert torch.equal(again(wav), embedder(wav))

    def test_rejects_foreign_state(self) -> None:
        with pytest.raises(ValueError, match="not an ERes2NetV2 w24s4 state dict"):
            SpeakerEmbedder.from_state_dict({"conv1.weight": torch.zeros(32, 1, 3, 3)})
