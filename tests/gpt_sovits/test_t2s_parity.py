"""Text-to-semantic model against outputs of the official GPT-SoVITS code (tiny random weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.checkpoint import (
    CheckpointError,
    load_gpt_checkpoint,
    load_manifest,
    verify_against_manifest,
)
from voiceseal_models.gpt_sovits.sampling import (
    SamplingParams,
    apply_repetition_penalty_,
    probabilities,
)
from voiceseal_models.gpt_sovits.t2s import (
    T2SConfig,
    T2SResult,
    Text2Semantic,
    Text2SemanticDecoder,
)

ATOL = RTOL = 1e-4


@pytest.fixture(scope="module")
def io(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = torch.load(fixtures_dir / "t2s_tiny_io.pt", weights_only=True)
    return data


@pytest.fixture(scope="module")
def model(fixtures_dir: Path) -> Text2Semantic:
    return Text2Semantic.from_checkpoint(fixtures_dir / "t2s_tiny.ckpt")


def _decode(model: Text2Semantic, io: dict[str, Any], entry: str, **overrides: Any) -> T2SResult:
    args = io[entry]["args"]
    inputs = io["inputs"]
    prompt = inputs["prompt_semantic"] if io[entry]["prompt_given"] else None
    kwargs = {
        k: args[k]
        for k in ("top_k", "top_p", "temperature", "repetition_penalty", "early_stop_num")
    }
    kwargs.update(overrides)
    return model.generate(
        inputs["phones"], inputs["bert_feature"], prompt, record_logits=True, **kwargs
    )


class TestLoading:
    def test_strict_state_dict_names(self, fixtures_dir: Path) -> None:
        ckpt = load_gpt_checkpoint(fixtures_dir / "t2s_tiny.ckpt")
        network = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(ckpt.config))
        assert sorted(network.state_dict()) == sorted(
            k.removeprefix("model.") for k in ckpt.weights
        )

    def test_full_size_network_matches_official_manifest(self, fixtures_dir: Path) -> None:
        manifest = load_manifest(fixtures_dir / "manifest_s1_v2.json")
        config = T2SConfig.from_checkpoint_config(manifest["config"])
        assert (config.hidden_dim, config.n_layer, config.n_head, config.ffn_dim) == (
            512,
            24,
            16,
            2048,
        )
        with torch.device("meta"):
            network = Text2SemanticDecoder(config)
        verify_against_manifest(network.state_dict(), manifest, prefix_strip="model.")
        assert sum(p.numel() for p in network.parameters()) == manifest["param_count"]

    def test_config_validation(self) -> None:
        base = {
            "hidden_dim": 8,
            "embedding_dim": 8,
            "head": 2,
            "n_layer": 1,
            "vocab_size": 1025,
            "phoneme_vocab_size": 732,
            "EOS": 1024,
        }
        assert T2SConfig.from_checkpoint_config({"model": base}).max_sec == 54
        with pytest.raises(ValueError, match="lacks 'head'"):
            T2SConfig.from_checkpoint_config(
                {"model": {k: v for k, v in base.items() if k != "head"}}
            )
        with pytest.raises(ValueError, match="EOS must be the last id"):
            T2SConfig.from_checkpoint_config({"model": {**base, "EOS": 1023}})
        with pytest.raises(ValueError, match="not divisible"):
            T2SConfig.from_checkpoint_config({"model": {**base, "head": 3}})
        with pytest.raises(ValueError, match="embedding_dim 16 != hidden_dim 8"):
            T2SConfig.from_checkpoint_config({"model": {**base, "embedding_dim": 16}})

    def test_weights_that_do_not_fit_the_config(self, fixtures_dir: Path) -> None:
        ckpt = load_gpt_checkpoint(fixtures_dir / "t2s_tiny.ckpt")
        del ckpt.weights["model.h.layers.1.norm2.bias"]
        with pytest.raises(CheckpointError, match=r"(?s)do not fit .*h\.layers\.1\.norm2\.bias"):
            Text2Semantic.from_checkpoint(ckpt)
        ckpt = load_gpt_checkpoint(fixtures_dir / "t2s_tiny.ckpt")
        ckpt.config["model"]["n_layer"] = 3
        with pytest.raises(CheckpointError, match=r"(?s)Missing key.*h\.layers\.2\."):
            Text2Semantic.from_checkpoint(ckpt)

    def test_weights_upcast_and_defaults(self, model: Text2Semantic) -> None:
        assert model.dtype == torch.float32
        assert model.default_early_stop_num == 2700


class TestTeacherForced:
    def test_b1(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        inputs, ref = io["inputs"], io["teacher_forced_b1"]
        logits = model.teacher_forced_logits(
            inputs["phones"][None],
            torch.tensor([24]),
            inputs["bert_feature"][None],
            inputs["target_semantic"][None],
            torch.tensor([20]),
        )
        torch.testing.assert_close(logits, ref["logits"], atol=ATOL, rtol=RTOL)
        loss = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), ref["targets"], reduction="sum"
        )
        torch.testing.assert_close(loss, ref["forward_old_loss_sum"], atol=1e-3, rtol=1e-5)

    def test_b2_padded(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        ref = io["teacher_forced_b2"]
        logits = model.teacher_forced_logits(
            ref["phones"],
            ref["phones_lens"],
            ref["bert_feature"],
            ref["semantic"],
            ref["semantic_lens"],
        )
        torch.testing.assert_close(logits, ref["logits"], atol=ATOL, rtol=RTOL)


SINGLE = [
    "greedy_single",
    "greedy_single_early_stop",
    "greedy_single_rep1",
    "greedy_single_no_prompt",
]


class TestGreedyDecoding:
    @pytest.mark.parametrize("static_cache", [False, True], ids=["eager", "static"])
    @pytest.mark.parametrize("entry", SINGLE)
    def test_single(
        self, model: Text2Semantic, io: dict[str, Any], entry: str, static_cache: bool
    ) -> None:
        ref = io[entry]
        result = _decode(model, io, entry, static_cache=static_cache)
        assert torch.equal(result.y, ref["y_returned"].long())
        assert result.idx == ref["idx_returned"]
        assert torch.equal(result.tokens, ref["generated_tts_slice"].long())
        if "step_logits_raw" in ref:
            assert result.step_logits is not None
            torch.testing.assert_close(
                result.step_logits, ref["step_logits_raw"], atol=ATOL, rtol=RTOL
            )

    def test_stop_reasons(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        assert _decode(model, io, "greedy_single").stop == "eos"
        early = _decode(model, io, "greedy_single_early_stop")
        assert early.stop == "early_stop"
        # The official quirk: 21 tokens generated, the pipeline keeps the last 20.
        assert early.generated.shape[0] == 21
        assert torch.equal(early.tokens, early.generated[1:])
        rep1 = _decode(model, io, "greedy_single_rep1")
        assert rep1.idx == 11 and rep1.stop == "eos"  # the first step where EOS may win

    def test_step_cap(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        full = _decode(model, io, "greedy_single_rep1")
        capped = _decode(model, io, "greedy_single_rep1", max_steps=5)
        assert capped.stop == "max_steps" and capped.idx == 4
        assert torch.equal(capped.generated, full.generated[:5])

    @pytest.mark.parametrize("entry", ["greedy_batch_infer", "greedy_naive_batched"])
    def test_batch(self, model: Text2Semantic, io: dict[str, Any], entry: str) -> None:
        ref, inputs = io[entry], io["inputs"]
        args = ref["args"]
        results = model.generate_batch(
            [inputs["phones"], inputs["phones_b"]],
            [inputs["bert_feature"], inputs["bert_feature_b"]],
            inputs["prompt_semantic"],
            top_k=args["top_k"],
            top_p=args["top_p"],
            temperature=args["temperature"],
            repetition_penalty=args["repetition_penalty"],
            early_stop_num=args["early_stop_num"],
            pad_to=args["max_len"],
            record_logits=True,
        )
        assert [r.idx for r in results] == ref["idx_list"]
        for result, y, kept in zip(results, ref["y_list"], ref["generated_tts_slice"], strict=True):
            assert torch.equal(result.y, y)
            assert torch.equal(result.tokens, kept)
        if "step_logits_raw" in ref:
            for step, expected in enumerate(ref["step_logits_raw"]):
                active = [
                    r.step_logits[step]
                    for r in results
                    if r.step_logits is not None and r.step_logits.shape[0] > step
                ]
                torch.testing.assert_close(torch.stack(active), expected, atol=ATOL, rtol=RTOL)

    def test_batch_rows_equal_single_decodes(
        self, model: Text2Semantic, io: dict[str, Any]
    ) -> None:
        inputs = io["inputs"]
        batch = model.generate_batch(
            [inputs["phones"], inputs["phones_b"]],
            [inputs["bert_feature"], inputs["bert_feature_b"]],
            inputs["prompt_semantic"],
            top_k=1,
        )
        for result, phones, bert in zip(
            batch,
            (inputs["phones"], inputs["phones_b"]),
            (inputs["bert_feature"], inputs["bert_feature_b"]),
            strict=True,
        ):
            single = model.generate(phones, bert, inputs["prompt_semantic"], top_k=1)
            assert torch.equal(result.y, single.y) and result.idx == single.idx

    def test_batch_early_stop_follows_upstream(
        self, model: Text2Semantic, io: dict[str, Any]
    ) -> None:
        inputs = io["inputs"]
        single = _decode(model, io, "greedy_single_early_stop")
        batch = model.generate_batch(
            [inputs["phones"], inputs["phones_b"]],
            [inputs["bert_feature"], inputs["bert_feature_b"]],
            inputs["prompt_semantic"],
            top_k=1,
            early_stop_num=20,
        )
        # Upstream's batch decoder drops the last token on an early stop (the single one keeps it).
        assert batch[0].stop == "early_stop" and batch[0].idx == single.idx == 20
        assert torch.equal(batch[0].y, single.y[:-1])

    def test_batch_without_prompt_decodes_rows_one_by_one(
        self, model: Text2Semantic, io: dict[str, Any]
    ) -> None:
        inputs = io["inputs"]
        results = model.generate_batch([inputs["phones"]], [inputs["bert_feature"]], None, top_k=1)
        ref = io["greedy_single_no_prompt"]
        assert torch.equal(results[0].y, ref["y_returned"].long()) and results[0].idx == 0

    def test_iter_tokens_streams_the_same_tokens(
        self, model: Text2Semantic, io: dict[str, Any]
    ) -> None:
        inputs = io["inputs"]
        streamed = list(
            model.iter_tokens(
                inputs["phones"], inputs["bert_feature"], inputs["prompt_semantic"], top_k=1
            )
        )
        assert streamed == io["greedy_single"]["generated_tts_slice"].tolist()


class TestSampling:
    def test_seeded_sampling_is_reproducible(
        self, model: Text2Semantic, io: dict[str, Any]
    ) -> None:
        inputs = io["inputs"]
        args = (inputs["phones"], inputs["bert_feature"], inputs["prompt_semantic"])
        a = model.generate(*args, top_k=15, temperature=1.5, seed=3)
        b = model.generate(*args, top_k=15, temperature=1.5, seed=3)
        c = model.generate(*args, top_k=15, temperature=1.5, seed=4)
        assert torch.equal(a.y, b.y)
        assert not torch.equal(a.y, c.y)
        greedy = io["greedy_single"]["y_returned"]
        assert not torch.equal(a.y, greedy)

    def test_repetition_penalty_in_place(self) -> None:
        logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
        apply_repetition_penalty_(logits, torch.tensor([[0, 1, 1]]), 2.0)
        assert logits.tolist() == [[1.0, -4.0, 1.0, 0.5]]

    def test_order_top_p_temperature_top_k(self) -> None:
        logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        params = SamplingParams(top_k=3, top_p=0.9, temperature=0.5)
        probs = probabilities(logits.clone(), torch.zeros(1, 0, dtype=torch.long), params)
        # Cumulative softmax is 0.644, 0.881, 0.968, 1: top-p 0.9 keeps ids 0 and 1. Unlike the
        # Hugging Face filter, upstream drops the token that crosses the threshold.
        kept = torch.softmax(torch.tensor([3.0, 2.0]) / 0.5, dim=0)
        torch.testing.assert_close(probs[0, :2], kept)
        assert probs[0, 2:].tolist() == [0.0, 0.0]
        only_best = probabilities(
            logits.clone(),
            torch.zeros(1, 0, dtype=torch.long),
            SamplingParams(top_k=15, top_p=0.01),
        )
        assert only_best[0].tolist() == [1.0, 0.0, 0.0, 0.0]

    def test_bad_parameters(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        inputs = io["inputs"]
        with pytest.raises(ValueError, match="top_k must be >= 1"):
            model.generate(inputs["phones"], inputs["bert_feature"], None, top_k=0)
        with pytest.raises(ValueError, match="temperature must be > 0"):
            model.generate(inputs["phones"], inputs["bert_feature"], None, temperature=0.0)
        with pytest.raises(ValueError, match="either seed or generator"):
            model.generate(
                inputs["phones"], inputs["bert_feature"], None, seed=1, generator=torch.Generator()
            )


class TestInputValidation:
    def test_shapes_and_ranges(self, model: Text2Semantic, io: dict[str, Any]) -> None:
        inputs = io["inputs"]
        with pytest.raises(ValueError, match=r"bert must be \(B, 1024, 24\)"):
            model.generate(inputs["phones"], inputs["bert_feature"][:, :20], None)
        with pytest.raises(ValueError, match=r"phoneme ids must lie in \[0, 732\)"):
            model.generate(inputs["phones"] + 800, inputs["bert_feature"], None)
        with pytest.raises(ValueError, match=r"prompt semantic ids must lie in \[0, 1024\)"):
            model.generate(inputs["phones"], inputs["bert_feature"], torch.tensor([1024]))
        with pytest.raises(ValueError, match="empty phoneme sequence"):
            model.generate(inputs["phones"][:0], inputs["bert_feature"][:, :0], None)
        with pytest.raises(ValueError, match="as many bert features as texts"):
            model.generate_batch([inputs["phones"]], [], None)
