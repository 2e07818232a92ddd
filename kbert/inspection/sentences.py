"""Sentence files: one sentence a line, optionally `sense<TAB>sentence`.

Blank lines and lines starting with `#` are skipped. Either every sentence carries a
sense or none does; a file with no sentence is refused.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "s.txt")
    >>> _ = open(path, "w").write("river\\tWe sat on the bank.\\nmoney\\tThe bank lent it.\\n")
    >>> [(s.sense, s.line) for s in read_sentences(path)]
    [('river', 1), ('money', 2)]
"""

from __future__ import annotations

import dataclasses

from kbert.inspection.errors import InspectionError


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A sentence, its sense label (None when the file has none) and where it came from."""
    text: str
    sense: str | None = None
    source: str = "<text>"
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def parse_sentence_lines(lines, source: str = "<text>") -> list[Sentence]:
    """`Sentence`s of `lines` (see the module docstring); InspectionError naming the line."""
    found = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sense = None
        if "\t" in line:
            sense, line = line.split("\t", 1)
            sense = sense.strip()
            if not sense or "\t" in line:
                raise InspectionError(f"{source}:{number}: write `sense<TAB>sentence` "
                                      f"(one tab, a sense before it)")
        if not line.strip():
            raise InspectionError(f"{source}:{number}: the sentence after the sense is empty")
        found.append(Sentence(line.strip(), sense, source, number))
    if not found:
        raise InspectionError(f"{source}: no sentence in the file (one sentence a line, "
                              f"optionally `sense<TAB>sentence`)")
    labelled = [s for s in found if s.sense is not None]
    if labelled and len(labelled) != len(found):
        odd = next(s for s in found if (s.sense is None) != (found[0].sense is None))
        raise InspectionError(f"{odd.where}: give every sentence a sense or none "
                              f"({len(labelled)} of {len(found)} have one)")
    return found


def read_sentences(path: str) -> list[Sentence]:
    """The sentences of a UTF-8 file (see the module docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InspectionError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    return parse_sentence_lines(lines, path)
