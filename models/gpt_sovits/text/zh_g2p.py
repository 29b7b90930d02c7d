"""Mandarin G2P: jieba_fast segmentation + pypinyin + tone sandhi + erhua -> GPT-SoVITS phones.

This is the pypinyin branch of the official `chinese2.py` (the branch it takes when g2pW is
off). Every character gives two phones (initial, toned final) and every punctuation mark one,
which is what `word2ph` records. Polyphones are read from pypinyin's phrase dictionary: the
official default reads them with the g2pW ONNX model, which is a separate download and is not
available here, so words like the second 长 in "长江很长" can be read differently from an
official install with g2pW (they match an official install with g2pW switched off).
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from functools import cache
from typing import Any, Final

from ._optional import require
from .errors import TextFrontendError
from .symbols import PUNCTUATION
from .zh_pinyin import syllable_phones
from .zh_tone_sandhi import ToneSandhi

_SENTENCE_SPLIT_RE: Final = re.compile(r"(?<=[" + re.escape("".join(PUNCTUATION)) + r"])\s*")
_LATIN_RE: Final = re.compile(r"[a-zA-Z]+")
# Words whose final 儿 is always merged (erhua) / never merged (a full syllable "er").
MUST_ERHUA: Final = frozenset({"小院儿", "胡同儿", "范儿", "老汉儿", "撒欢儿", "媳妇儿", "妥妥儿"})
NOT_ERHUA: Final = frozenset(
    {
        "女儿", "男儿", "婴儿", "幼儿", "少儿", "孤儿", "患儿", "胎儿", "健儿",
        "宠儿", "侄儿", "孙儿", "混血儿", "新生儿", "流浪儿", "婴幼儿", "我儿", "妻儿", "一儿",
    }
)  # fmt: skip
_NO_ERHUA_POS: Final = frozenset({"a", "j", "nr"})


@cache
def _pypinyin() -> Any:
    return require("pypinyin", "pypinyin", "Mandarin pinyin")


@cache
def _jieba() -> Any:
    """jieba_fast (what the official code uses), else the pure-Python jieba with the same
    dictionary and algorithm; the module returned has `posseg` and `cut_for_search`."""
    with warnings.catch_warnings():
        # jieba_fast imports the deprecated pkg_resources at import time.
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module("jieba_fast")
            importlib.import_module("jieba_fast.posseg")
        except ImportError:
            module = require("jieba", "jieba_fast (or jieba)", "Mandarin word segmentation")
            require("jieba.posseg", "jieba_fast (or jieba)", "Mandarin word segmentation")
    module.setLogLevel(logging.WARNING)
    return module


def _finals(word: str) -> list[str]:
    p = _pypinyin()
    return list(p.lazy_pinyin(word, neutral_tone_with_five=True, style=p.Style.FINALS_TONE3))


def _initials(word: str) -> list[str]:
    p = _pypinyin()
    return list(p.lazy_pinyin(word, neutral_tone_with_five=True, style=p.Style.INITIALS))


def _search_split(word: str) -> list[str]:
    return list(_jieba().cut_for_search(word))


@cache
def tone_sandhi() -> ToneSandhi:
    return ToneSandhi(_finals, _search_split)


def _erhua(
    initials: list[str], finals: list[str], word: str, pos: str
) -> tuple[list[str], list[str]]:
    """A word-final 儿 takes the tone of the syllable before it (it is read as part of it)."""
    if finals and word.endswith("儿") and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in MUST_ERHUA and (word in NOT_ERHUA or pos in _NO_ERHUA_POS):
        return initials, finals
    if len(finals) != len(word) or len(word) < 2:
        return initials, finals
    if word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in NOT_ERHUA:
        finals[-1] = "er" + finals[-2][-1]
    return initials, finals


def chinese_g2p(norm_text: str) -> tuple[list[str], list[int]]:
    """Phones and word2ph (phones per character of `norm_text`) of normalised Mandarin."""
    phones: list[str] = []
    word2ph: list[int] = []
    sandhi = tone_sandhi()
    posseg = _jieba().posseg
    for sentence in (s for s in _SENTENCE_SPLIT_RE.split(norm_text) if s.strip()):
        words = [(pair.word, pair.flag) for pair in posseg.lcut(_LATIN_RE.sub("", sentence))]
        initials: list[str] = []
        finals: list[str] = []
        for word, pos in sandhi.pre_merge(words):
            if pos == "eng":
                continue
            word_finals = sandhi.modify(word, pos, _finals(word))
            word_initials, word_finals = _erhua(_initials(word), word_finals, word, pos)
            initials += word_initials
            finals += word_finals
        for initial, final in zip(initials, finals, strict=True):
            if initial == final:
                if initial not in PUNCTUATION:
                    raise TextFrontendError(
                        f"cannot read {initial!r} in Mandarin text {norm_text!r}"
                    )
                phones.append(initial)
                word2ph.append(1)
                continue
            phones.extend(syllable_phones(initial, final))
            word2ph.append(2)
    return phones, word2ph
