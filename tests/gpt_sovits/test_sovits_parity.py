"""SoVITS synthesizer against the official implementation (tiny v2 checkpoint + recorded I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.checkpoint import load_sovits_checkpoint
from voiceseal_models.gpt_sovits.sovits import SoVITSInputError, SynthesizerTrn

ATOL = 1e-4  # fixture README: float32 re-implementations agree to ~2e-6 here
DECODE_CASES = [
    "decode_ns0_speed1",
    "decode_ns0_speed1p25",
    "decode_ns0_speed0p8",
    "decode_ns0p5_speed1_seed1234",
    "decode_ns0_two_refs",
]
# The fixture records intermediates for these (not for speed 0.8 or the noisy run).
INTERMEDIATE_CASES = ["decode_ns0_speed1", "decode_ns0_speed1p25", "decode_ns0_two_refs"]
INTERMEDIATES = ["ge", "enc_p_x", "m_p", "logs_p", "y_mask", "z_p", "z", "dec_in"]


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> SynthesizerTrn:
    return SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth")


@pytest.fixture(scope="module")
def io(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = torch.load(fixtures_dir / "s2_v2_tiny_io.pt", weights_only=True)
    return data


def _refs(io: dict[str, Any], case: str) -> list[torch.Tensor]:
    spec = io["spectrogram"]
    n_refs = int(io[case]["args"]["refer"].split()[2])  # "list of N spec(s)"
    return [spec["spec"], spec["spec2"]][:n_refs]


def _noise(io: dict[str, Any], case: str) -> torch.Tensor | None:
    draws = io[case].get("randn_like_draws") or []
    return draws[0] if io[case]["args"]["noise_scale"] > 0 else None


class TestLoading:
    def test_every_checkpoint_tensor_is_loaded(
        self, model: SynthesizerTrn, fixtures_dir: Path
    ) -> None:
        checkpoint = load_sovits_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        state = model.state_dict()
        assert set(state) == set(checkpoint.weights)  # the file has no enc_q, we build none
        for name, stored in checkpoint.weights.items():
            assert state[name].dtype == torch.float32
            assert torch.equal(state[name], stored.float()), name

    def test_inference_ready(self, model: SynthesizerTrn) -> None:
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
        assert model.config.version == "v2"
        assert model.sampling_rate == 32000
        assert model.config.samples_per_frame == 640

    def test_half_precision_load_keeps_token_path_float32(self, fixtures_dir: Path) -> None:
        half = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", dtype=torch.float16)
        for name, tensor in half.state_dict().items():
            token_path = name.startswith(("ssl_proj.", "quantizer."))
            assert tensor.dtype == (torch.float32 if token_path else torch.float16), name

    def test_accepts_loaded_checkpoint(self, fixtures_dir: Path, model: SynthesizerTrn) -> None:
        checkpoint = load_sovits_checkpoint(fixtures_dir / "s2_v2_tiny.pth")
        again = SynthesizerTrn.from_checkpoint(checkpoint)
        assert torch.equal(again.dec.conv_post.weight, model.dec.conv_post.weight)


class TestExtractLatent:
    def test_projection_and_codes(self, model: SynthesizerTrn, io: dict[str, Any]) -> None:
        case = io["extract_latent"]
        projected = model.ssl_proj(case["ssl_features"])
        torch.testing.assert_close(projected, case["ssl_proj_out"], atol=ATOL, rtol=ATOL)
        codes = model.extract_latent(case["ssl_features"])
        assert codes.dtype == torch.int64
        assert codes.shape == (1, 1, 82)
        assert torch.equal(codes, case["codes"])

    def test_odd_length_drops_last_frame(self, model: SynthesizerTrn, io: dict[str, Any]) -> None:
        case = io["extract_latent"]
        assert torch.equal(model.extract_latent(case["ssl_features_odd"]), case["codes_odd"])

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_codes_do_not_depend_on_model_dtype(
        self, fixtures_dir: Path, io: dict[str, Any], dtype: torch.dtype
    ) -> None:
        low = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth", dtype=dtype)
        case = io["extract_latent"]
        assert torch.equal(low.extract_latent(case["ssl_features"]), case["codes"])

    def test_batch_equals_items(self, model: SynthesizerTrn, io: dict[str, Any]) -> None:
        feats = io["extract_latent"]["ssl_features"]
        batch = torch.cat([feats, feats.flip(-1)])
        codes = model.extract_latent(batch)
        assert codes.shape == (2, 1, 82)
        assert torch.equal(codes[1:], model.extract_latent(feats.flip(-1)))

    @pytest.mark.parametrize("shape", [(768, 10), (1, 767, 10), (1, 768, 1)])
    def test_rejects_bad_features(self, model: SynthesizerTrn, shape: tuple[int, ...]) -> None:
        with pytest.raises(SoVITSInputError):
            model.extract_latent(torch.zeros(shape))


class TestDecode:
    @pytest.mark.parametrize("case", DECODE_CASES)
    def test_audio_matches_official(
        self, model: SynthesizerTrn, io: dict[str, Any], case: str
    ) -> None:
        inputs, args = io["decode_inputs"], io[case]["args"]
        audio = model.decode(
            inputs["codes"],
            inputs["phones"],
            _refs(io, case),
            noise_scale=args["noise_scale"],
            speed=args["speed"],
            noise=_noise(io, case),
        )
        expected = io[case]["audio"]
        assert audio.shape == expected.shape
        torch.testing.assert_close(audio, expected, atol=ATOL, rtol=0)

    @pytest.mark.parametrize("case", INTERMEDIATE_CASES)
    def test_intermediates_match_official(
        self, model: SynthesizerTrn, io: dict[str, Any], case: str
    ) -> None:
        inputs, args = io["decode_inputs"], io[case]["args"]
        result = model.decode_detailed(
            inputs["codes"],
            inputs["phones"],
            _refs(io, case),
            noise_scale=args["noise_scale"],
            speed=args["speed"],
        )
        expected = io[case]["intermediates"]
        ours = result.intermediates
        assert ours.ge_per_ref is not None
        assert len(ours.ge_per_ref) == len(expected["ge_per_ref"])
        for got, want in zip(ours.ge_per_ref, expected["ge_per_ref"], strict=True):
            torch.testing.assert_close(got, want, atol=ATOL, rtol=ATOL)
        for name in INTERMEDIATES:
            got = getattr(ours, name)
            assert got.shape == expected[name].shape, name
            torch.testing.assert_close(got, expected[name], atol=ATOL, rtol=ATOL, msg=name)
        if "enc_p_in_quantized_upsampled" in expected:
            torch.testing.assert_close(
                ours.quantized, expected["enc_p_in_quantized_upsampled"], atol=0, rtol=0
            )
        assert ours.ge_text is ours.ge  # v2: MRTE gets the style vector unchanged
        assert result.audio_lengths.tolist() == [io[case]["audio"].size(-1)]

    def test_noise_draw_enters_as_official(self, model: SynthesizerTrn, io: dict[str, Any]) -> None:
        case = "decode_ns0p5_speed1_seed1234"
        draw = io[case]["randn_like_draws"][0]
        inputs = io["decode_inputs"]
        result = model.decode_detailed(
            inputs["codes"], inputs["phones"], _refs(io, case), noise_scale=0.5, noise=draw
        )
        ours = result.intermediates
        torch.testing.assert_close(ours.z_p, ours.m_p + draw * torch.exp(ours.logs_p) * 0.5)

    def test_cached_reference_embedding_gives_same_audio(
        self, model: SynthesizerTrn, io: dict[str, Any]
    ) -> None:
        inputs, refs = io["decode_inputs"], _refs(io, "decode_ns0_two_refs")
        ge = model.reference_embedding(refs)
        assert ge.shape == (1, 512, 1)
        torch.testing.assert_close(
            ge, io["decode_ns0_two_refs"]["intermediates"]["ge"], atol=ATOL, rtol=ATOL
        )
        via_refs = model.decode(inputs["codes"], inputs["phones"], refs, noise_scale=0)
        via_ge = model.decode(inputs["codes"], inputs["phones"], ge=ge, noise_scale=0)
        assert torch.equal(via_refs, via_ge)

    def test_code_layouts_are_equivalent(self, model: SynthesizerTrn, io: dict[str, Any]) -> None:
        inputs = io["decode_inputs"]
        ge = model.reference_embedding(_refs(io, "decode_ns0_speed1"))
        official = model.decode(inputs["codes"], inputs["phones"], ge=ge, noise_scale=0)
        flat = model.decode(inputs["codes"][0, 0], inputs["phones"][0], ge=ge, noise_scale=0)
        batch_first = model.decode(inputs["codes"][0], inputs["phones"], ge=ge, noise_scale=0)
        assert torch.equal(official, flat)
        assert torch.equal(official, batch_first)

    def test_generator_makes_noise_reproducible(
        self, model: SynthesizerTrn, io: dict[str, Any]
    ) -> None:
        inputs = io["decode_inputs"]
        ge = model.reference_embedding(_refs(io, "decode_ns0_speed1"))

        def run(seed: int) -> torch.Tensor:
            gen = torch.Generator().manual_seed(seed)
            return model.decode(inputs["codes"], inputs["phones"], ge=ge, generator=gen)

        assert torch.equal(run(3), run(3))
        assert not torch.equal(run(3), run(4))


class TestBatchedDecode:
    @pytest.fixture(scope="class")
    def voice(self, model: SynthesizerTrn, io: dict[str, Any]) -> torch.Tensor:
        return model.reference_embedding(_refs(io, "decode_ns0_speed1"))

    def test_equal_lengths(
        self, model: SynthesizerTrn, io: dict[str, Any], voice: torch.Tensor
    ) -> None:
        codes, phones = io["decode_inputs"]["codes"][0, 0], io["decode_inputs"]["phones"][0]
        other_codes, other_phones = codes.flip(0), phones.roll(7)
        batch = model.decode(
            torch.stack([codes, other_codes]),
            torch.stack([phones, other_phones]),
            ge=voice,
            noise_scale=0,
        )
        assert batch.shape == (2, 1, 51200)
        torch.testing.assert_close(batch[:1], io["decode_ns0_speed1"]["audio"], atol=ATOL, rtol=0)
        solo = model.decode(other_codes, other_phones, ge=voice, noise_scale=0)
        torch.testing.assert_close(batch[1:], solo, atol=1e-5, rtol=0)

    @pytest.mark.parametrize("speed", [1.0, 1.25, 0.8])
    def test_padded_items_match_solo_decodes(
        self, model: SynthesizerTrn, io: dict[str, Any], voice: torch.Tensor, speed: float
    ) -> None:
        codes, phones = io["decode_inputs"]["codes"][0, 0], io["decode_inputs"]["phones"][0]
        short_codes, short_phones = codes[5:30], phones[4:22]  # 25 codes, 18 phones
        # A second voice for the second item: per-item style vectors.
        other_voice = model.reference_embedding([io["spectrogram"]["spec2"]])
        result = model.decode_detailed(
            torch.stack([codes, torch.nn.functional.pad(short_codes, (0, 15))]),
            torch.stack([phones, torch.nn.functional.pad(short_phones, (0, 12))]),
            ge=torch.cat([voice, other_voice]),
            noise_scale=0,
            speed=speed,
            code_lengths=torch.tensor([40, 25]),
            text_lengths=torch.tensor([30, 18]),
        )
        solos = [
            model.decode(codes, phones, ge=voice, noise_scale=0, speed=speed),
            model.decode(short_codes, short_phones, ge=other_voice, noise_scale=0, speed=speed),
        ]
        assert result.audio_lengths.tolist() == [solo.size(-1) for solo in solos]
        for item, solo in enumerate(solos):
            n = solo.size(-1)
            torch.testing.assert_close(
                result.audio[item : item + 1, :, :n], solo, atol=1e-5, rtol=0
            )
            assert torch.all(result.audio[item, :, n:] == 0)

    def test_half_precision_batch_lengths_are_exact(self, fixtures_dir: Path) -> None:
        """Valid lengths are counted from the mask: a bfloat16 sum of 514 frames is not 514."""
        bf16 = SynthesizerTrn.from_checkpoint(fixtures_dir / "s2_v2_tiny.pth").to(torch.bfloat16)
        gen = torch.Generator().manual_seed(0)
        codes = torch.randint(0, 1024, (2, 257), generator=gen)
        phones = torch.randint(1, 300, (2, 40), generator=gen)
        ge = torch.randn(2, bf16.config.gin_channels, 1, generator=gen).bfloat16()
        with torch.inference_mode():
            result = bf16.decode_detailed(
                codes,
                phones,
                ge=ge,
                code_lengths=torch.tensor([257, 80]),
                text_lengths=torch.tensor([40, 30]),
            )
        per_frame = bf16.config.samples_per_frame
        assert result.audio_lengths.tolist() == [514 * per_frame, 160 * per_frame]


class TestDecodeValidation:
    @pytest.fixture(scope="class")
    def args(self, io: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        inputs = io["decode_inputs"]
        return inputs["codes"], inputs["phones"], [io["spectrogram"]["spec"]]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"codes": torch.full((1, 1, 4), 1024)}, r"codes must lie in \[0, 1024\)"),
            ({"codes": torch.zeros(1, 1, 4)}, "integer"),
            ({"codes": torch.zeros(2, 1, 4, dtype=torch.long)}, r"\[1, B, T\]"),
            ({"phones": torch.full((1, 5), 732)}, r"text_phones must lie in \[0, 732\)"),
            ({"phones": torch.zeros(2, 5, dtype=torch.long)}, "1 item"),
            ({"refs": []}, "at least one reference"),
            ({"refs": [torch.zeros(1, 704, 20)]}, r"\[1, 1025, T\]"),
            ({"speed": 0.0}, "speed must be > 0"),
            ({"noise_scale": -1.0}, "noise_scale"),
            ({"sv_emb": torch.zeros(1, 20480)}, "takes no speaker embedding"),
            ({"noise": torch.zeros(1, 64, 3)}, "prior's shape"),
            ({"code_lengths": torch.tensor([41])}, r"code_lengths must lie in \[1, 40\]"),
            ({"text_lengths": torch.tensor([3, 3])}, r"text_lengths must have shape \(1,\)"),
        ],
    )
    def test_rejects(
        self,
        model: SynthesizerTrn,
        args: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]],
        change: dict[str, Any],
        message: str,
    ) -> None:
        codes, phones, refs = args
        kwargs = {k: v for k, v in change.items() if k not in ("codes", "phones", "refs")}
        with pytest.raises(SoVITSInputError, match=message):
            model.decode(
                change.get("codes", codes),
                change.get("phones", phones),
                change.get("refs", refs),
                **kwargs,
            )

    def test_needs_exactly_one_voice_source(
        self,
        model: SynthesizerTrn,
        args: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]],
    ) -> None:
        codes, phones, refs = args
        with pytest.raises(SoVITSInputError, match="refer_specs or a precomputed ge"):
            model.decode(codes, phones)
        ge = model.reference_embedding(refs)
        with pytest.raises(SoVITSInputError, match="not both"):
            model.decode(codes, phones, refs, ge=ge)
        with pytest.raises(SoVITSInputError, match=r"ge must be \[1, 512, 1\]"):
            model.decode(codes, phones, ge=ge[:, :256])
