"""Documents of a plain text file, in either common layout:

- `sentences`: google-research/bert's, one sentence a line, a blank line between documents
  (lines are kept as the sentences they are);
- `documents`: one document (a paragraph) a line, split into sentences later.
`auto` picks `sentences` when the file has a blank line between two lines of text.

Example:
    >>> reader = PlainTextReader("books.txt", kind, "auto")              # doctest: +SKIP
    >>> next(reader.documents())                                        # doctest: +SKIP
    ('sentences', ['Call me Ishmael.', 'Some years ago...'])
"""

from __future__ import annotations

from typing import Iterator

from kbert.corpus.sniff import Kind
from kbert.corpus.textfiles import LineReader

LAYOUTS = ("auto", "sentences", "documents")


def layout_of(head_text: str) -> str:
    """`sentences` when text lines are separated by a blank line somewhere, else
    `documents`.

    Example:
        >>> layout_of("One.\\nTwo.\\n\\nThree.\\n"), layout_of("One. Two.\\nThree.\\n")
        ('sentences', 'documents')
    """
    lines = [line.strip() for line in head_text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "sentences" if "" in lines else "documents"


class PlainTextReader(LineReader):
    """`documents()` yields (layout, lines): sentences of one document, or one document's
    paragraph."""

    def __init__(self, path: str, kind: Kind, layout: str = "auto", head_text: str = ""):
        super().__init__(path, kind)
        self.layout = layout_of(head_text) if layout == "auto" else layout

    def documents(self) -> Iterator[tuple[str, list[str]]]:
        document: list[str] = []
        for _, line in self.lines():
            line = " ".join(line.split())
            if self.layout == "documents":
                if line:
                    yield "documents", [line]
            elif line:
                document.append(line)
            elif document:
                yield "sentences", document
                document = []
        if document:
            yield "sentences", document
