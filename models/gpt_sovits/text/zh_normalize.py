"""Mandarin text normalisation, following GPT-SoVITS `chinese2.text_normalize`.

Steps (each a regex rule applied in the official order): split into clauses; full-width ASCII
to half-width; dates (2024年5月3日, 2024-05-03); times and time ranges (8:30 -> 八点半);
temperatures (-5℃ -> 零下五度); unit abbreviations (km -> 千米); fractions; percentages;
mobile / landline / 400 numbers read digit by digit with 幺; numeric ranges (3-5 -> 三到五);
negative numbers (负); decimals; a number before a measure word (2个 -> 两个); other numbers of
3+ digits read digit by digit; remaining numbers as cardinals. Then punctuation is mapped to
the six phone-table marks (`，` -> `,`, `。` -> `.`, `～` -> `…` ...), characters other than CJK
ideographs and those marks are removed, and repeated marks are collapsed.

Not reproduced: traditional-to-simplified conversion (pypinyin reads traditional characters
directly, so only the normalised text differs) and the Greek-letter names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from .en_normalize import collapse_repeated_punctuation
from .symbols import PUNCTUATION
from .zh_numbers import read_cardinal, read_digits, read_number

_CLAUSE_END_RE: Final = re.compile(r"([：、，；。？！,;?!][”’]?)")
# Characters the official splitter removes before normalising (it keeps "…").
_DROPPED_BEFORE_RE: Final = re.compile(r"[——《》【】<=>{}()（）#&@“”^_|\\]")
_DROPPED_AFTER_RE: Final = re.compile(r"[-——《》【】<=>{}()（）#&@“”^_|\\]")

_DATE_RE: Final = re.compile(
    r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?"
)
_DATE_SEP_RE: Final = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_CLOCK = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
_TIME_RANGE_RE: Final = re.compile(_CLOCK + r"(~|-)" + _CLOCK)
_TIME_RE: Final = re.compile(_CLOCK)
_TEMPERATURE_RE: Final = re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
_FRACTION_RE: Final = re.compile(r"(-?)(\d+)/(\d+)")
_PERCENT_RE: Final = re.compile(r"(-?)(\d+(\.\d+)?)%")
_MOBILE_RE: Final = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
_LANDLINE_RE: Final = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
_SERVICE_NUMBER_RE: Final = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
_SIGNED_NUMBER = r"((-?)((\d+)(\.\d+)?))"
_RANGE_RE: Final = re.compile(
    r"(?<![\d+\-×÷=])" + _SIGNED_NUMBER + r"[-~]" + _SIGNED_NUMBER + r"(?![\d+\-×÷=])"
)
_NEGATIVE_RE: Final = re.compile(r"(-)(\d+)")
_DECIMAL_RE: Final = re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))")
_NUMBER_RE: Final = re.compile(r"(-?)((\d+)(\.\d+)?)|(\.(\d+))")
_LONG_DIGITS_RE: Final = re.compile(r"\d{3}\d*")
# Common measure words (our selection): a number in front of one is a count, so 2 is 两.
_MEASURE_WORDS: Final = (
    "个|位|只|条|张|本|件|台|辆|架|艘|头|匹|双|对|套|副|把|支|枝|根|块|片|颗|粒|滴|杯|碗|瓶|盒|"
    "箱|包|袋|桶|盘|次|回|遍|趟|场|顿|首|篇|句|段|页|封|份|间|座|栋|层|户|家|所|名|口|岁|年|"
    "天|周|月|季|小时|分钟|秒钟|刻|元|块钱|角|毛|分|斤|两|吨|克|千克|公斤|米|厘米|毫米|公里|"
    "千米|里|升|毫升|亩|度|倍|人|种|样|项|批|群|队|组"
)
_COUNTED_RE: Final = re.compile(r"(\d+)([多余几+])?(" + _MEASURE_WORDS + ")")
_UNIT_WORDS: Final = (
    ("cm2", "平方厘米"), ("cm²", "平方厘米"), ("cm3", "立方厘米"), ("cm³", "立方厘米"),
    ("cm", "厘米"), ("db", "分贝"), ("ds", "毫秒"), ("kg", "千克"), ("km", "千米"),
    ("m2", "平方米"), ("m²", "平方米"), ("m³", "立方米"), ("m3", "立方米"), ("ml", "毫升"),
    ("m", "米"), ("mm", "毫米"), ("s", "秒"),
)  # fmt: skip
_POST_REPLACEMENTS: Final = (
    ("/", "每"), ("~", "至"), ("～", "至"),
    ("①", "一"), ("②", "二"), ("③", "三"), ("④", "四"), ("⑤", "五"),
    ("⑥", "六"), ("⑦", "七"), ("⑧", "八"), ("⑨", "九"), ("⑩", "十"),
)  # fmt: skip
# Punctuation as the Chinese G2P wants it: the phone table only has ! ? … , . -
_PUNCTUATION_MAP: Final = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",",
    "、": ",", "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…",
}  # fmt: skip
_PUNCTUATION_MAP_RE: Final = re.compile("|".join(re.escape(k) for k in _PUNCTUATION_MAP))
_NOT_HANZI_RE: Final = re.compile(r"[^\u4e00-\u9fa5" + "".join(PUNCTUATION) + r"]+")
_NOT_HANZI_OR_LATIN_RE: Final = re.compile(r"[^\u4e00-\u9fa5A-Za-z" + "".join(PUNCTUATION) + r"]+")


def _sign(text: str, negative: str = "负") -> str:
    return negative if text else ""


def _date(m: re.Match[str]) -> str:
    year, month, day = m.group(1), m.group(3), m.group(5)
    text = f"{read_digits(year)}年"
    if month:
        text += f"{read_cardinal(month)}月"
    if day:
        text += f"{read_cardinal(day)}{m.group(9)}"
    return text


def _date_separated(m: re.Match[str]) -> str:
    return f"{read_digits(m.group(1))}年{read_cardinal(m.group(3))}月{read_cardinal(m.group(4))}日"


def _clock_part(number: str) -> str:
    # "05" minutes are read 零五.
    text = read_number(number.lstrip("0"))
    return "零" + text if number.startswith("0") else text


def _clock(hour: str, minute: str, second: str | None, half_minute: str) -> str:
    text = f"{read_number(hour)}点"
    if minute.lstrip("0"):
        # The official range rule tests the FIRST time's minutes for 半 in both halves.
        text += "半" if int(half_minute) == 30 else f"{_clock_part(minute)}分"
    if second and second.lstrip("0"):
        text += f"{_clock_part(second)}秒"
    return text


def _time(m: re.Match[str]) -> str:
    text = _clock(m.group(1), m.group(2), m.group(4), m.group(2))
    if len(m.groups()) > 5:
        text += "至" + _clock(m.group(6), m.group(7), m.group(9), m.group(2))
    return text


def _temperature(m: re.Match[str]) -> str:
    return f"{_sign(m.group(1), '零下')}{read_number(m.group(2))}度"


def _fraction(m: re.Match[str]) -> str:
    return f"{_sign(m.group(1))}{read_number(m.group(3))}分之{read_number(m.group(2))}"


def _percent(m: re.Match[str]) -> str:
    return f"{_sign(m.group(1))}百分之{read_number(m.group(2))}"


def _phone_number(separator: str) -> Callable[[re.Match[str]], str]:
    def read(m: re.Match[str]) -> str:
        parts = (
            m.group(0).strip("+").split(separator) if separator else m.group(0).strip("+").split()
        )
        return "，".join(read_digits(part, yao_for_one=True) for part in parts)

    return read


def _signed_number(m: re.Match[str]) -> str:
    if m.group(5):
        return read_number(m.group(5))
    return f"{_sign(m.group(1))}{read_number(m.group(2))}"


def _range(m: re.Match[str]) -> str:
    first = _NUMBER_RE.sub(_signed_number, m.group(1))
    second = _NUMBER_RE.sub(_signed_number, m.group(6))
    return f"{first}到{second}"


def _counted(m: re.Match[str]) -> str:
    number = read_number(m.group(1))
    approx = "多" if m.group(2) == "+" else (m.group(2) or "")
    return f"{'两' if number == '二' else number}{approx}{m.group(3)}"


def split_clauses(text: str) -> list[str]:
    text = _DROPPED_BEFORE_RE.sub("", text.replace(" ", ""))
    text = _CLAUSE_END_RE.sub(r"\1\n", text).strip()
    return [clause.strip() for clause in re.split(r"\n+", text)]


def _to_half_width(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if code == 0x3000:
            out.append(" ")
        elif 0xFF10 <= code <= 0xFF19 or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
            out.append(chr(code - 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def verbalize_clause(clause: str) -> str:
    """Numbers, dates, units... of one clause written out in characters."""
    s = _to_half_width(clause)
    s = _DATE_RE.sub(_date, s)
    s = _DATE_SEP_RE.sub(_date_separated, s)
    s = _TIME_RANGE_RE.sub(_time, s)
    s = _TIME_RE.sub(_time, s)
    s = _TEMPERATURE_RE.sub(_temperature, s)
    for abbreviation, word in _UNIT_WORDS:
        s = s.replace(abbreviation, word)
    s = _FRACTION_RE.sub(_fraction, s)
    s = _PERCENT_RE.sub(_percent, s)
    s = _MOBILE_RE.sub(_phone_number(""), s)
    s = _LANDLINE_RE.sub(_phone_number("-"), s)
    s = _SERVICE_NUMBER_RE.sub(_phone_number("-"), s)
    s = _RANGE_RE.sub(_range, s)
    s = _NEGATIVE_RE.sub(lambda m: f"负{read_number(m.group(2))}", s)
    s = _DECIMAL_RE.sub(_signed_number, s)
    s = _COUNTED_RE.sub(_counted, s)
    s = _LONG_DIGITS_RE.sub(lambda m: read_digits(m.group(0), yao_for_one=True), s)
    s = _NUMBER_RE.sub(_signed_number, s)
    for old, new in _POST_REPLACEMENTS:
        s = s.replace(old, new)
    return _DROPPED_AFTER_RE.sub("", s)


def map_punctuation(text: str, keep_latin: bool = False) -> str:
    text = text.replace("嗯", "恩").replace("呣", "母")
    text = _PUNCTUATION_MAP_RE.sub(lambda m: _PUNCTUATION_MAP[m.group(0)], text)
    return (_NOT_HANZI_OR_LATIN_RE if keep_latin else _NOT_HANZI_RE).sub("", text)


def normalize_chinese(text: str, keep_latin: bool = False) -> str:
    """Normalised Mandarin: only CJK ideographs and ! ? … , . - remain (plus Latin letters with
    `keep_latin`, the official `mix_text_normalize` used for Chinese-English mixes)."""
    clauses = [verbalize_clause(c) for c in split_clauses(text)]
    return collapse_repeated_punctuation("".join(map_punctuation(c, keep_latin) for c in clauses))
