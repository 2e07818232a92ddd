"""Sentences in every script: English, Korean (다. / 요. / ?!), Chinese and Japanese (。！？).

A thin layer over `sentencex` (Wikimedia's maintained rule-based segmenter, ~300 languages;
decimals, abbreviations and ellipses inside a sentence are not split). The language is
given, or `auto`: picked per paragraph from its letters (Hangul → ko, kana → ja, Han → zh,
anything else → en).

Example:
    >>> split_sentences("Dr. Kim paid 3.5 dollars. Then he left!")
    ['Dr. Kim paid 3.5 dollars.', 'Then he left!']
    >>> split_sentences("오늘은 날씨가 좋다.내일도 좋을까요?네!")
    ['오늘은 날씨가 좋다.', '내일도 좋을까요?', '네!']
    >>> split_sentences("今天天气很好。价格是3.5元！")
    ['今天天气很好。', '价格是3.5元！']
"""

from __future__ import annotations

import re

LANGUAGES = ("auto", "en", "ko", "ja", "zh")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")


def detect_language(paragraph: str) -> str:
    """The splitter language for a paragraph: ko, ja, zh or en (by the letters it has).

    Example:
        >>> detect_language("서울은 크다."), detect_language("これは本です。"), \\
        ...     detect_language("这是书。"), detect_language("A book.")
        ('ko', 'ja', 'zh', 'en')
    """
    hangul = len(_HANGUL.findall(paragraph))
    kana = len(_KANA.findall(paragraph))
    han = len(_HAN.findall(paragraph))
    if hangul and hangul >= kana + han:
        return "ko"
    if kana:
        return "ja"
    if han:
        return "zh"
    return "en"


def split_sentences(paragraph: str, language: str = "auto") -> list[str]:
    """The sentences of one paragraph, stripped, whitespace inside collapsed; `language`
    one of LANGUAGES (other ISO codes are passed to sentencex as they are)."""
    from sentencex import segment
    paragraph = " ".join(paragraph.split())
    if not paragraph:
        return []
    if language == "auto":
        language = detect_language(paragraph)
    return [s.strip() for s in segment(language, paragraph) if s.strip()]
