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
# Two rules sentencex lacks (both measured in BUILD_NOTES, issue 19):
# a quotation that ends in 。/./!/? and goes on with a quotative particle is one sentence
# (그는 "안녕하세요."라고 말했다. / 「こんにちは。」と彼は言った。);
_CLOSING_QUOTE = re.compile(r"[.!?。！？…][\"'”’」』)]+$")
_QUOTATIVE = re.compile(r"^(?:라고|이라고|라며|이라며|라면서|라는|이라는|하고|하며|고\s|며\s|"
                        r"と|って|という|とか)")
# and in Korean, which has no capitals to tell, an ellipsis does not end a sentence.
_ELLIPSIS = re.compile(r"(?:\.\.\.|…)$")


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
    pieces: list[str] = []     # with their whitespace: joined, they are the paragraph
    for piece in segment(language, paragraph):
        if pieces and piece.strip() and (
                (_CLOSING_QUOTE.search(pieces[-1].rstrip()) and _QUOTATIVE.match(piece))
                or (language == "ko" and _ELLIPSIS.search(pieces[-1].rstrip()))):
            pieces[-1] += piece
        else:
            pieces.append(piece)
    return [piece.strip() for piece in pieces if piece.strip()]
