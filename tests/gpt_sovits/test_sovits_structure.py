"""Full-size SoVITS construction against the official manifests, v2Pro wiring, config errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.checkpoint import SoVITSCheckpoint, verify_against_manifest
from voiceseal_models.gpt_sovits.errors import UnsupportedCheckpointError
from voiceseal_models.gpt_sovits.sovits import (
    SoVITSConfig,
    SoVITSConfigError,
    SoVITSInputError,
    SynthesizerTrn,
)

VERSIONS = ["v2", "v2Pro", "v2ProPlus"]


def _manifest(fixtures_dir: Path, version: str) -> dict[str, Any]:
    text = (fixtures_dir / f"manifest_s2_{version}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _small_tree(version: str, gin: int) -> dict[str, Any]:
    return {
        "data": {"filter_length": 2048, "hop_length": 640, "sampling_rate": 32000},
        "model": {
            "inter_channels": 16, "hidden_channels": 192, "filter_channels": 64,
            "n_heads": 2, "n_layers": 2, "kernel_size": 3, "resblock": "1",
            "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_rates": [10, 8, 8], "upsample_initial_channel": 32,
            "upsample_kernel_sizes": [20, 16, 16], "gin_channels": gin, "version": version,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def full_size(fixtures_dir: Path) -> dict[str, SynthesizerTrn]:
    """The three pretrained-size networks with random weights (built once, ~1 s)."""
    torch.manual_seed(0)
    return {
        v: SynthesizerTrn(SoVITSConfig.from_hparams(_manifest(fixtures_dir, v)["config"], v))
        .eval()
        .requires_grad_(False)
        for v in VERSIONS
    }


class TestFullSizeManifests:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_state_dict_matches_manifest(
        self, full_size: dict[str, SynthesizerTrn], fixtures_dir: Path, version: str
    ) -> None:
        manifest = _manifest(fixtures_dir, version)
        state = full_size[version].state_dict()
        verify_against_manifest(state, manifest)  # every name and shape; enc_q optional
        # Same order as the official savers write, and no enc_q (inference never uses it).
        assert list(state) == [row[0] for row in manifest["tensors"]]
        assert sum(t.numel() for t in state.values()) == manifest["param_count_saved"]

    def test_v2proplus_differs_only_where_documented(self, fixtures_dir: Path) -> None:
        pro = _manifest(fixtures_dir, "v2Pro")["config"]["model"]
        plus = _manifest(fixtures_dir, "v2ProPlus")["config"]["model"]
        changed = {k for k in pro if pro[k] != plus[k]} - {"version"}
        assert changed == {"upsample_initial_channel", "upsample_kernel_sizes"}

    @pytest.mark.parametrize("version", VERSIONS)
    def test_full_size_decode_runs(
        self, full_size: dict[str, SynthesizerTrn], version: str
    ) -> None:
        model = full_size[version]
        refs = [torch.rand(1, 1025, 40)]
        sv = torch.randn(1, 20480) if model.config.is_pro else None
        gen = torch.Generator().manual_seed(1)
        codes = torch.randint(0, 1024, (1, 6), generator=gen)
        phones = torch.randint(0, 732, (1, 9), generator=gen)
        result = model.decode_detailed(codes, phones, refs, sv_emb=sv, generator=gen)
        assert result.audio.shape == (1, 1, 12 * 640)
        assert result.audio.abs().max() <= 1
        assert result.intermediates.ge.shape == (1, model.config.gin_channels, 1)
        assert result.intermediates.ge_text.shape == (1, 512, 1)


class TestSpeakerConditioning:
    """v2Pro: ge = prelu(ref_enc(spec) + sv_emb(e)); MRTE sees ge_to512(ge)."""

    @pytest.fixture(scope="class")
    def pro(self, full_size: dict[str, SynthesizerTrn]) -> SynthesizerTrn:
        return full_size["v2Pro"]

    def test_style_vector_formula(self, pro: SynthesizerTrn) -> None:
        assert pro.sv_emb is not None and pro.prelu is not None and pro.ge_to512 is not None
        gen = torch.Generator().manual_seed(2)
        specs = [torch.rand(1, 1025, 30, generator=gen), torch.rand(1025, 45, generator=gen)]
        sv = torch.randn(2, 20480, generator=gen)
        with torch.inference_mode():
            per_ref = [
                pro.prelu(pro.ref_enc(s.view(1, 1025, -1)[:, :704]) + pro.sv_emb(e)[..., None])
                for s, e in zip(specs, sv.split(1), strict=True)
            ]
            expected = torch.stack(per_ref).mean(0)
            result = pro.decode_detailed(
                torch.zeros(1, 4, dtype=torch.long),
                torch.zeros(1, 3, dtype=torch.long),
                specs,
                sv_emb=[sv[0], sv[1:]],  # a list of [20480] / [1, 20480] is accepted too
                noise_scale=0,
            )
        torch.testing.assert_close(pro.reference_embedding(specs, sv), expected)
        torch.testing.assert_close(result.intermediates.ge, expected)
        torch.testing.assert_close(
            result.intermediates.ge_text, pro.ge_to512(expected.transpose(1, 2)).transpose(1, 2)
        )

    def test_speaker_embedding_changes_the_voice(self, pro: SynthesizerTrn) -> None:
        spec = [torch.rand(1, 1025, 30)]
        first = pro.reference_embedding(spec, torch.randn(1, 20480))
        second = pro.reference_embedding(spec, torch.randn(1, 20480))
        assert not torch.allclose(first, second)

    @pytest.mark.parametrize(
        ("sv_emb", "message"),
        [
            (None, "needs one 20480-d speaker embedding"),
            (torch.zeros(2, 20480), "1 embedding"),
            (torch.zeros(1, 192), "1 embedding"),
        ],
    )
    def test_rejects_missing_or_mis_sized_embeddings(
        self, pro: SynthesizerTrn, sv_emb: torch.Tensor | None, message: str
    ) -> None:
        with pytest.raises(SoVITSInputError, match=message):
            pro.reference_embedding([torch.rand(1, 1025, 30)], sv_emb)


class TestConfig:
    def test_reads_official_tree(self, fixtures_dir: Path) -> None:
        config = SoVITSConfig.from_hparams(_manifest(fixtures_dir, "v2ProPlus")["config"])
        assert config.version == "v2ProPlus"
        assert config.is_pro and config.gin_channels == 1024
        assert config.upsample_kernel_sizes == (20, 16, 8, 2, 2)
        assert (config.spec_channels, config.reference_bins, config.n_symbols) == (1025, 704, 732)
        assert config.samples_per_frame == config.hop_length == 640

    def test_explicit_version_wins(self, fixtures_dir: Path) -> None:
        tree = _manifest(fixtures_dir, "v2")["config"]
        assert SoVITSConfig.from_hparams(tree, version="v1").n_symbols == 322
        assert SoVITSConfig.from_hparams(tree, version="v1").reference_bins == 1025

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda t: t["model"].update(version="v3"), "not a SynthesizerTrn model"),
            (lambda t: t["model"].update(resblock="2"), "only resblock '1'"),
            (lambda t: t.pop("data"), "no 'data' section"),
            (lambda t: t["model"].pop("gin_channels"), "gin_channels is missing"),
            (lambda t: t["model"].update(n_heads=5), "not divisible by n_heads"),
            (lambda t: t["model"].update(gin_channels=256), "needs gin_channels == 512"),
            (lambda t: t["model"].update(upsample_kernel_sizes=[16]), "same length"),
            (lambda t: t["model"].update(semantic_frame_rate="12hz"), "semantic_frame_rate"),
            (lambda t: t["model"].update(inter_channels="192"), "must be an integer"),
        ],
    )
    def test_rejects_bad_trees(self, fixtures_dir: Path, edit: Any, message: str) -> None:
        tree = json.loads(json.dumps(_manifest(fixtures_dir, "v2")["config"]))
        edit(tree)
        with pytest.raises(SoVITSConfigError, match=message):
            SoVITSConfig.from_hparams(tree)


class TestWeightLoading:
    @pytest.fixture(scope="class")
    def small(self) -> SynthesizerTrn:
        return SynthesizerTrn(SoVITSConfig.from_hparams(_small_tree("v2", 512)))

    def test_posterior_encoder_weights_are_ignored(self, small: SynthesizerTrn) -> None:
        weights = {k: v.half() for k, v in small.state_dict().items()}
        weights["enc_q.pre.weight"] = torch.zeros(192, 1025, 1, dtype=torch.float16)
        fresh = SynthesizerTrn(small.config)
        fresh.load_official_weights(weights, dtype=torch.float32)
        for name, value in fresh.state_dict().items():
            assert torch.equal(value, weights[name].float()), name

    def test_reports_missing_unexpected_and_misshaped(self, small: SynthesizerTrn) -> None:
        weights = dict(small.state_dict())
        del weights["dec.conv_post.weight"]
        weights["sv_emb.weight"] = torch.zeros(512, 20480)
        weights["enc_p.text_embedding.weight"] = torch.zeros(322, 192)
        with pytest.raises(ValueError, match="missing") as err:
            small.load_official_weights(weights)
        text = str(err.value)
        assert "dec.conv_post.weight" in text and "sv_emb.weight" in text
        assert "enc_p.text_embedding.weight (322, 192) (model (732, 192))" in text


class TestFromCheckpoint:
    def test_tagged_v2pro_file_round_trip(self) -> None:
        torch.manual_seed(3)
        source = SynthesizerTrn(SoVITSConfig.from_hparams(_small_tree("v2Pro", 64)))
        weights = {k: v.half() for k, v in source.state_dict().items()}
        buffer = io.BytesIO()
        torch.save({"weight": weights, "config": _small_tree("v2Pro", 64), "info": "e1"}, buffer)
        data = bytearray(buffer.getvalue())
        data[:2] = b"05"  # what the official v2Pro saver writes over "PK"
        model = SynthesizerTrn.from_checkpoint(bytes(data))
        assert model.config.version == "v2Pro" and model.config.gin_channels == 64
        for name, value in model.state_dict().items():
            assert torch.equal(value, weights[name].float()), name
        spec, sv = [torch.rand(1, 1025, 20)], torch.randn(1, 20480)
        audio = model.decode(torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5]]), spec, sv_emb=sv)
        assert audio.shape == (1, 1, 6 * 640)

    def test_refuses_lora_files(self) -> None:
        lora = SoVITSCheckpoint(
            weights={}, config={}, info="", version="v3", is_lora=True, lora_rank=32, path=None
        )
        with pytest.raises(UnsupportedCheckpointError, match="LoRA"):
            SynthesizerTrn.from_checkpoint(lora)

    def test_refuses_cfm_versions(self) -> None:
        v4 = SoVITSCheckpoint(
            weights={}, config=_small_tree("v4", 512), info="", version="v4", is_lora=False,
            lora_rank=None, path=None,
        )  # fmt: skip
        with pytest.raises(SoVITSConfigError, match="not a SynthesizerTrn model"):
            SynthesizerTrn.from_checkpoint(v4)
