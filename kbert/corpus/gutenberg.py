"""Project Gutenberg plain-text books: the licence header and footer stripped, paragraphs
reflowed (the books are hard-wrapped at ~70 characters), one book one document.

The body is what lies between the `*** START OF THE PROJECT GUTENBERG EBOOK ... ***` and
`*** END OF THE PROJECT GUTENBERG EBOOK ... ***` lines (also "THIS", "E-BOOK"); a file
without both is refused, never trained on with its licence text.

Example:
    >>> book_paragraphs("*** START OF THE PROJECT GUTENBERG EBOOK X ***\\nA long\\nline.\\n\\n"
    ...                 "Next.\\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\\nLicence.")
    ['A long line.', 'Next.']
"""

from __future__ import annotations

import re

from kbert.corpus.errors import CorpusError

_MARK = r"^\s*\*\*\*\s*{} OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$"
START = re.compile(_MARK.format("START"), re.IGNORECASE | re.MULTILINE)
END = re.compile(_MARK.format("END"), re.IGNORECASE | re.MULTILINE)


def book_paragraphs(text: str, name: str = "book") -> list[str]:
    """The paragraphs of a Gutenberg book's body (blank lines separate them; each one's
    lines joined with single spaces). CorpusError naming `name` without both markers."""
    start, end = START.search(text), END.search(text)
    if start is None or end is None or end.start() < start.end():
        missing = "START" if start is None else "END"
        raise CorpusError(f"{name}: no '*** {missing} OF THE PROJECT GUTENBERG EBOOK' line: "
                          "not a Project Gutenberg plain-text book")
    body = text[start.end():end.start()].replace("\r\n", "\n")
    paragraphs = (" ".join(block.split()) for block in re.split(r"\n\s*\n", body))
    return [p for p in paragraphs if p]
