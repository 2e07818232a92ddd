"""Decoded lines of a (possibly compressed) text or JSON-lines file, with line numbers.

Strict decoding in the encoding `sniff` found: an invalid byte is a CorpusError naming the
file and line, never replaced and trained on. Used by `jsonl` and `plaintext`.

Example:
    >>> reader = LineReader("books.txt.gz", sniff("books.txt.gz"))      # doctest: +SKIP
    >>> for number, line in reader.lines(): ...                         # doctest: +SKIP
"""

from __future__ import annotations

import io
from typing import Iterator

from kbert.corpus.errors import CorpusError
from kbert.corpus.sniff import Kind, open_binary


class LineReader:
    """(line number, line without its newline) of a file; `sha256`/`num_bytes` afterwards."""

    def __init__(self, path: str, kind: Kind):
        self.path = path
        self.kind = kind
        self.sha256 = ""
        self.num_bytes = 0

    def lines(self) -> Iterator[tuple[int, str]]:
        stream, raw, compression = open_binary(self.path)
        text = io.TextIOWrapper(stream, encoding=self.kind.encoding, errors="strict",
                                newline=None)
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                yield number, line.rstrip("\n")
        except UnicodeDecodeError as e:
            raise CorpusError(f"{self.path}:{number + 1}: not valid {self.kind.encoding} text "
                              f"({e.reason})") from e
        except (EOFError, OSError) as e:
            raise CorpusError(f"{self.path}: damaged or truncated {compression} data "
                              f"({e})") from e
        except Exception as e:   # zstandard.ZstdError
            if type(e).__module__.startswith("zstandard"):
                raise CorpusError(f"{self.path}: damaged {compression} data ({e})") from e
            raise
        finally:
            self.sha256, self.num_bytes = raw.sha256.hexdigest(), raw.bytes_read
            raw.close()
