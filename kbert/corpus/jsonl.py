"""Documents of a JSON-lines corpus: one JSON object a line, its text in one field.

Every non-blank line must be an object with a string in `text_field`; otherwise a
CorpusError names the file and line. Newlines inside the text separate paragraphs.

Example:
    >>> reader = JsonLinesReader("c4-00000.json.gz", kind, "text")       # doctest: +SKIP
    >>> next(reader.documents())                                        # doctest: +SKIP
    ['First paragraph.', 'Second paragraph.']
"""

from __future__ import annotations

import json
from typing import Iterator

from kbert.corpus.errors import CorpusError
from kbert.corpus.sniff import Kind
from kbert.corpus.textfiles import LineReader


class JsonLinesReader(LineReader):
    """`documents()` yields each line's text as a list of paragraphs."""

    def __init__(self, path: str, kind: Kind, text_field: str = "text"):
        super().__init__(path, kind)
        self.text_field = text_field

    def documents(self) -> Iterator[list[str]]:
        for number, line in self.lines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise CorpusError(f"{self.path}:{number}: not a JSON object ({e})") from e
            if not isinstance(record, dict):
                raise CorpusError(f"{self.path}:{number}: a JSON {type(record).__name__}, "
                                  "not an object")
            if self.text_field not in record:
                raise CorpusError(f"{self.path}:{number}: no field {self.text_field!r} "
                                  f"(fields: {', '.join(map(str, record)) or 'none'}; "
                                  "--text_field names the text's field)")
            value = record[self.text_field]
            if not isinstance(value, str):
                raise CorpusError(f"{self.path}:{number}: field {self.text_field!r} is a "
                                  f"{type(value).__name__}, not a string")
            yield [p for p in value.split("\n") if p.strip()]
