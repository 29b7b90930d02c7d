"""BERT and HuBERT feature extraction on tiny random models saved in Hugging Face format.

The real models (chinese-roberta-wwm-ext-large, chinese-hubert-base) are admin-provided
folders; these tests build the smallest models with the contracted output widths (BERT 1024,
HuBERT 768), save them with `save_pretrained` and load them back through our loaders, offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from voiceseal_models.gpt_sovits.features import (
    BERT_DIM,
    PROMPT_TAIL_SAMPLES,
    SSL_DIM,
    ChineseBertFeatures,
    FeatureExtractorError,
    HubertSslFeatures,
    phone_bert_features,
    reference_ssl_input,
)

transformers: Any = pytest.importorskip("transformers")

CHARACTERS = "你好世界我有三个苹果和两元钱今天很.,!?"


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARACTERS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=BERT_DIM,  # bert_proj is Linear(1024, 512): the width is part of the contract
        num_hidden_layers=3,  # hidden_states[-3] is then the output of layer 1
        num_attention_heads=4,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hubert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-hubert")
    torch.manual_seed(0)
    config = transformers.HubertConfig(
        hidden_size=SSL_DIM,  # ssl_proj is Conv1d(768, 768): contracted width
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(16,) * 7,  # the official 7-layer 320x downsampling front, narrow
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=8,
    )
    transformers.HubertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_bert_phone_features_repeat_each_character(bert_folder: Path) -> None:
    bert = ChineseBertFeatures.from_folder(bert_folder)
    text, word2ph = "你好,世界!", [2, 2, 1, 2, 2, 1]
    feats = bert(text, word2ph)
    assert feats.shape == (BERT_DIM, sum(word2ph))
    assert feats.dtype == torch.float32
    # reference: the third-to-last hidden state of the same model, CLS/SEP dropped
    inputs = bert.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = bert.model(**inputs, output_hidden_states=True).hidden_states[-3][0, 1:-1]
    column = 0
    for i, n in enumerate(word2ph):
        for _ in range(n):
            torch.testing.assert_close(feats[:, column], hidden[i])
            column += 1
    assert not torch.equal(feats[:, 0], feats[:, 2])  # different characters, different vectors
    assert torch.equal(bert(text, word2ph), feats)  # deterministic (eval mode, no dropout)


def test_bert_refuses_mismatched_inputs(bert_folder: Path) -> None:
    bert = ChineseBertFeatures.from_folder(bert_folder)
    with pytest.raises(FeatureExtractorError, match="word2ph has 1 entries for 2 characters"):
        bert("你好", [2])
    with pytest.raises(FeatureExtractorError, match="one token per character"):
        bert("ab", [1, 1])  # WordPiece makes one [UNK] of the two letters
    with pytest.raises(FeatureExtractorError, match=r"more than this BERT reads at once \(30\)"):
        bert("你" * 31, [2] * 31)


def test_bert_loader_checks_folder_and_width(tmp_path: Path) -> None:
    with pytest.raises(FeatureExtractorError, match=r"has no config\.json"):
        ChineseBertFeatures.from_folder(tmp_path)
    narrow = transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=8,
            hidden_size=8,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=8,
        )
    )
    with pytest.raises(FeatureExtractorError, match="hidden size is 8"):
        ChineseBertFeatures(narrow, None, torch.device("cpu"))


def test_phone_level_bert_of_mixed_text_is_zero_outside_mandarin(bert_folder: Path) -> None:
    pytest.importorskip("pypinyin")
    pytest.importorskip("jieba_fast")
    from voiceseal_models.gpt_sovits.text import text_to_phones

    bert = ChineseBertFeatures.from_folder(bert_folder)
    seq = text_to_phones("我有三个iPhone和两个", "zh")
    feats = phone_bert_features(seq, bert)
    assert feats.shape == (BERT_DIM, len(seq.phones))
    start = 0
    for run in seq.runs:
        block = feats[:, start : start + len(run.phones)]
        if run.language == "zh":
            assert run.word2ph is not None
            assert torch.equal(block, bert(run.norm_text, run.word2ph))
        else:
            assert torch.count_nonzero(block) == 0
        start += len(run.phones)
    with pytest.raises(FeatureExtractorError, match="needs a BERT model"):
        phone_bert_features(seq, None)


def test_hubert_features_are_channel_first_at_50_hz(hubert_folder: Path) -> None:
    ssl = HubertSslFeatures.from_folder(hubert_folder)
    wav = torch.sin(torch.arange(16000) * 0.05) * 0.3
    feats = ssl(wav)
    assert feats.shape == (1, SSL_DIM, 49)  # (16000 - 400) // 320 + 1
    with torch.no_grad():
        direct = ssl.model(wav[None, :]).last_hidden_state.transpose(1, 2)
    torch.testing.assert_close(feats, direct)
    assert torch.equal(ssl(wav[None, :]), feats)  # [1, T] accepted, deterministic
    with pytest.raises(FeatureExtractorError, match="mono float waveform"):
        ssl(torch.zeros(2, 16000))
    with pytest.raises(FeatureExtractorError, match="shorter than one HuBERT frame"):
        ssl(torch.zeros(100))


def test_reference_input_length_rule_and_zero_tail() -> None:
    wav = torch.rand(48000) - 0.5
    padded = reference_ssl_input(wav)
    assert padded.shape == (48000 + PROMPT_TAIL_SAMPLES,)
    assert PROMPT_TAIL_SAMPLES == 9600
    assert torch.equal(padded[:48000], wav) and torch.count_nonzero(padded[48000:]) == 0
    with pytest.raises(FeatureExtractorError, match=r"3-10 s .* got 2.00 s"):
        reference_ssl_input(torch.zeros(32000))
    with pytest.raises(FeatureExtractorError, match=r"got 10.50 s"):
        reference_ssl_input(torch.zeros(168000))
