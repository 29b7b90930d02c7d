"""GPT-SoVITS text front end: normalisation, G2P and phone ids for English, Mandarin and
Japanese (v1/v2 symbol tables), written from the official behaviour.

Optional packages are imported on first use only; see `_optional.require`.
"""

from .errors import TextFrontendError
from .frontend import CleanedText, PhoneSequence, clean_text, text_to_phones
from .language import Language, RequestLanguage, split_by_language
from .sentences import SplitMethod, split_sentences
from .symbols import SYMBOLS_V1, SYMBOLS_V2, ids_to_phones, phones_to_ids, symbol_table

__all__ = [
    "SYMBOLS_V1",
    "SYMBOLS_V2",
    "CleanedText",
    "Language",
    "PhoneSequence",
    "RequestLanguage",
    "SplitMethod",
    "TextFrontendError",
    "clean_text",
    "ids_to_phones",
    "phones_to_ids",
    "split_by_language",
    "split_sentences",
    "symbol_table",
    "text_to_phones",
]
