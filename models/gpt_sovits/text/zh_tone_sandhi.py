"""Mandarin tone sandhi on jieba words, following the PaddleSpeech `ToneSandhi` rules that
GPT-SoVITS applies after pypinyin.

Finals are pypinyin "FINALS_TONE3" strings whose last character is the tone (1-5, 5 =
neutral). Rules, in application order per word:

* 不 before a 4th tone becomes bu2; 不 in the middle of a 3-character word (看不懂) is neutral.
* 一 inside a digit string keeps yi1; in "V一V" it is neutral; 第一 is yi1; before a 4th tone
  yi2, before other tones yi4 (unless followed by punctuation).
* Neutral tone: reduplicated nouns/verbs/adjectives (奶奶, 看看); sentence particles
  (吧呢啊...); 的地得; aspect 了着过; plural/noun suffixes 们子; locative 上下里; directional
  来去 after 上下进出回过起开; the measure word 个 after a number or 几有两半多各整每做是;
  lexicalised neutral-tone words.
* Third-tone sandhi: 3+3 -> 2+3 in two-syllable words, split by sub-word for three-syllable
  words, pairwise for four-character idioms.

Before that, jieba's output is re-merged so that the rules see whole units: 不 with the next
word, "V 一 V" and 一 with the next word, reduplications, adjacent all-third-tone words and
third-tone boundaries (up to 3 characters), and 儿 with the previous word.

The lexicalised neutral-tone list below is our own selection of common words whose second
syllable is neutral in standard Mandarin; the official list is longer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

Segment = list[list[str]]  # [[word, pos], ...]

NEUTRAL_TONE_WORDS: Final = frozenset(
    {
        "东西", "时候", "事情", "朋友", "先生", "知道", "意思", "明白", "清楚", "告诉",
        "认识", "地方", "名字", "衣服", "舒服", "漂亮", "喜欢", "客气", "麻烦", "便宜",
        "消息", "关系", "学生", "商量", "休息", "姑娘", "窗户", "眼睛", "耳朵", "头发",
        "脑袋", "豆腐", "馒头", "石头", "木头", "骨头", "枕头", "舌头", "指头",
        "多少", "怎么", "什么", "这么", "那么", "这个", "那个", "哪个", "出来",
        "进去", "回来", "部分", "力气", "脾气", "聪明", "热闹", "暖和", "凉快", "打扮",
        "打算", "打听", "收拾", "商人", "丈夫", "媳妇", "女婿", "亲戚", "爱人", "太阳",
        "月亮", "云彩", "葡萄", "萝卜", "蘑菇", "核桃", "玻璃", "故事", "笑话", "生意",
        "功夫", "工夫", "规矩", "道理", "念头", "苗条", "结实", "老实", "踏实", "精神",
    }
)  # fmt: skip
NEVER_NEUTRAL_WORDS: Final = frozenset(
    {"男子", "女子", "分子", "原子", "量子", "莲子", "石子", "瓜子", "电子", "人人", "虎虎"}
)
_PARTICLES: Final = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"
_STRUCTURAL: Final = "的地得"
_PUNCT: Final = "：，；。？！“”‘’':,;.?!"
_ASPECT_POS: Final = frozenset({"ul", "uz", "ug"})
# Characters after which 个 is a measure word (besides digits).
_BEFORE_GE: Final = "几有两半多各整每做是"

FinalsOf = Callable[[str], list[str]]
SplitWord = Callable[[str], list[str]]


def _neutral(final: str) -> str:
    return final[:-1] + "5"


def _with_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _all_third(finals: Sequence[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


class ToneSandhi:
    """Needs two language helpers: `finals_of(word)` (pypinyin finals with tones) and
    `split_word(word)` (jieba's search-mode split), injected so this module stays free of
    optional imports."""

    def __init__(self, finals_of: FinalsOf, split_word: SplitWord) -> None:
        self._finals_of = finals_of
        self._search_split = split_word

    # ---- re-merging jieba's words -------------------------------------------------------

    def pre_merge(self, seg: Sequence[tuple[str, str]]) -> Segment:
        merged = self._merge_bu([[w, p] for w, p in seg])
        merged = self._merge_yi(merged)
        merged = self._merge_reduplication(merged)
        merged = self._merge_third_tones(merged, whole_words=True)
        merged = self._merge_third_tones(merged, whole_words=False)
        return self._merge_er(merged)

    @staticmethod
    def _merge_bu(seg: Segment) -> Segment:
        out: Segment = []
        last = ""
        for word, pos in seg:
            if last == "不":
                word = last + word
            if word != "不":
                out.append([word, pos])
            last = word
        if last == "不":
            out.append([last, "d"])
        return out

    @staticmethod
    def _merge_yi(seg: Segment) -> Segment:
        # "看 一 看" -> "看一看"
        out: Segment = []
        for i, (word, pos) in enumerate(seg):
            if (
                0 < i < len(seg) - 1
                and word == "一"
                and seg[i - 1][0] == seg[i + 1][0]
                and seg[i - 1][1] == "v"
            ):
                out[-1][0] = out[-1][0] + "一" + out[-1][0]
            elif i >= 2 and seg[i - 1][0] == "一" and seg[i - 2][0] == word and pos == "v":
                continue
            else:
                out.append([word, pos])
        # a lone 一 joins the following word
        joined: Segment = []
        for word, pos in out:
            if joined and joined[-1][0] == "一":
                joined[-1][0] += word
            else:
                joined.append([word, pos])
        return joined

    @staticmethod
    def _merge_reduplication(seg: Segment) -> Segment:
        out: Segment = []
        for word, pos in seg:
            if out and word == out[-1][0]:
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    def _merge_third_tones(self, seg: Segment, whole_words: bool) -> Segment:
        finals = [self._finals_of(word) for word, _ in seg]
        out: Segment = []
        merged_last = [False] * len(seg)
        for i, (word, pos) in enumerate(seg):
            if i > 0 and not merged_last[i - 1] and finals[i - 1] and finals[i]:
                if whole_words:
                    joinable = _all_third(finals[i - 1]) and _all_third(finals[i])
                else:
                    joinable = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
                previous = seg[i - 1][0]
                # a reduplication keeps its own neutral-tone rule, so it is never merged
                is_redup = len(previous) == 2 and previous[0] == previous[1]
                if joinable and not is_redup and len(previous) + len(word) <= 3:
                    out[-1][0] += word
                    merged_last[i] = True
                    continue
            out.append([word, pos])
        return out

    @staticmethod
    def _merge_er(seg: Segment) -> Segment:
        out: Segment = []
        for i, (word, pos) in enumerate(seg):
            if i > 0 and word == "儿" and seg[i - 1][0] != "#":
                out[-1][0] += word
            else:
                out.append([word, pos])
        return out

    # ---- tone changes inside one word --------------------------------------------------

    def modify(self, word: str, pos: str, finals: list[str]) -> list[str]:
        finals = self._bu(word, finals)
        finals = self._yi(word, finals)
        finals = self._neutral_tone(word, pos, finals)
        return self._third_tone(word, finals)

    @staticmethod
    def _bu(word: str, finals: list[str]) -> list[str]:
        if len(word) == 3 and word[1] == "不":
            finals[1] = _neutral(finals[1])
            return finals
        for i, char in enumerate(word):
            if char == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
                finals[i] = _with_tone(finals[i], "2")
        return finals

    @staticmethod
    def _yi(word: str, finals: list[str]) -> list[str]:
        if "一" in word and all(c.isnumeric() for c in word if c != "一"):
            return finals
        if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
            finals[1] = _neutral(finals[1])
        elif word.startswith("第一"):
            finals[1] = _with_tone(finals[1], "1")
        else:
            for i, char in enumerate(word):
                if char == "一" and i + 1 < len(word):
                    if finals[i + 1][-1] == "4":
                        finals[i] = _with_tone(finals[i], "2")
                    elif word[i + 1] not in _PUNCT:
                        finals[i] = _with_tone(finals[i], "4")
        return finals

    def _split(self, word: str) -> list[str]:
        """Two parts of a word: its shortest search-mode sub-word and the rest."""
        parts = sorted(self._search_split(word), key=len)
        first = parts[0]
        if word.find(first) == 0:
            return [first, word[len(first) :]]
        return [word[: -len(first)], first]

    @staticmethod
    def _grammatical_neutral_index(word: str, pos: str) -> int | None:
        """Index of the character a grammatical rule reads in the neutral tone, if any.

        The rules are tried in the official order; the first that applies wins.
        """
        last = len(word) - 1
        ge = word.find("个")
        if word[-1] in _PARTICLES or word[-1] in _STRUCTURAL:
            return last  # 吧, 的
        if len(word) == 1 and word in "了着过" and pos in _ASPECT_POS:
            return last  # aspect markers 走了, 看着, 去过
        if last and word[-1] in "们子" and pos in {"r", "n"} and word not in NEVER_NEUTRAL_WORDS:
            return last  # 我们, 桌子
        if last and word[-1] in "上下里" and pos in {"s", "l", "f"}:
            return last  # 桌上, 家里
        if last and word[-1] in "来去" and word[-2] in "上下进出回过起开":
            return last  # 上来, 出去
        if word == "个" or (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in _BEFORE_GE)):
            return ge  # measure word 个
        if word in NEUTRAL_TONE_WORDS or word[-2:] in NEUTRAL_TONE_WORDS:
            return last
        return None

    def _neutral_tone(self, word: str, pos: str, finals: list[str]) -> list[str]:
        for j in range(1, len(word)):
            if word[j] == word[j - 1] and pos[0] in "nva" and word not in NEVER_NEUTRAL_WORDS:
                finals[j] = _neutral(finals[j])
        index = self._grammatical_neutral_index(word, pos)
        if index is not None:
            finals[index] = _neutral(finals[index])
        parts = self._split(word)
        halves = [finals[: len(parts[0])], finals[len(parts[0]) :]]
        for part, half in zip(parts, halves, strict=True):
            if half and (part in NEUTRAL_TONE_WORDS or part[-2:] in NEUTRAL_TONE_WORDS):
                half[-1] = _neutral(half[-1])
        return halves[0] + halves[1]

    def _third_tone(self, word: str, finals: list[str]) -> list[str]:
        if len(word) == 2 and _all_third(finals):
            finals[0] = _with_tone(finals[0], "2")
        elif len(word) == 3:
            parts = self._split(word)
            if _all_third(finals):
                if len(parts[0]) == 2:  # 蒙古/包
                    finals[0] = _with_tone(finals[0], "2")
                    finals[1] = _with_tone(finals[1], "2")
                elif len(parts[0]) == 1:  # 纸/老虎
                    finals[1] = _with_tone(finals[1], "2")
            else:
                halves = [finals[: len(parts[0])], finals[len(parts[0]) :]]
                for i, half in enumerate(halves):
                    if _all_third(half) and len(half) == 2:  # 所有/人
                        half[0] = _with_tone(half[0], "2")
                    elif (
                        i == 1
                        and not _all_third(half)
                        and half
                        and half[0][-1] == "3"
                        and halves[0][-1][-1] == "3"
                    ):
                        halves[0][-1] = _with_tone(halves[0][-1], "2")  # 好/喜欢
                finals = halves[0] + halves[1]
        elif len(word) == 4:
            halves = [finals[:2], finals[2:]]
            for half in halves:
                if _all_third(half):
                    half[0] = _with_tone(half[0], "2")
            finals = halves[0] + halves[1]
        return finals
