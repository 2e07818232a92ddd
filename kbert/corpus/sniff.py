"""Recognise a corpus file by its content, never its name: compression, format, encoding.

Compression by magic bytes (bz2, including multistream dumps; gzip; zstd). Inside: a
MediaWiki XML export dump (root `<mediawiki>`, export schema 0.10 or 0.11), JSON lines, or
plain text. The encoding comes from a byte-order mark, the XML declaration, or is UTF-8.
Anything else (binary data, an archive or compression kbert does not read) is a
CorpusError naming the file, so it is never decoded as text and trained on.

Example:
    >>> kind = sniff("enwiki-latest-pages-articles1.xml-p1p41242.bz2")   # doctest: +SKIP
    >>> kind.format, kind.compression, kind.schema                       # doctest: +SKIP
    ('mediawiki', 'bz2', '0.11')
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import gzip
import hashlib
import io
import json
import re

from kbert.corpus.errors import CorpusError, UndecodableText

HEAD_BYTES = 1 << 16
SCHEMAS = ("0.10", "0.11")
_MAGIC = ((b"BZh", "bz2"), (b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))
_UNREAD = ((b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"),
           (b"\x04\x22\x4d\x18", "lz4"), (b"Rar!", "rar"), (b"\x5d\x00\x00", "lzma"))
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_XML_DECL = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ROOT = re.compile(r"<([A-Za-z_][\w.:-]*)([^>]*)>")
_SCHEMA = re.compile(r"mediawiki\.org/xml/export-(\d+\.\d+)/")


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a file is: `format` mediawiki | jsonl | text, `compression` none | bz2 | gzip |
    zstd, `encoding` (a Python codec name), `schema` (a dump's export schema version)."""

    format: str
    compression: str
    encoding: str
    schema: str | None = None


class HashingReader(io.RawIOBase):
    """A binary file read through once, its SHA-256 and byte count kept as it goes."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._raw.read(len(buffer))
        buffer[:len(data)] = data
        self.sha256.update(data)
        self.bytes_read += len(data)
        return len(data)

    def close(self):
        self._raw.close()
        super().close()


def compression_of(head: bytes, path: str) -> str:
    """`none`, `bz2`, `gzip` or `zstd` from the first bytes; CorpusError for others."""
    for magic, name in _MAGIC:
        if head.startswith(magic) and (name != "bz2" or head[3:4].isdigit()):
            return name
    for magic, name in _UNREAD:
        if head.startswith(magic):
            raise CorpusError(f"{path}: {name} data, which prepare_corpus does not read "
                              "(use bz2, gzip, zstd or uncompressed files)")
    return "none"


def decompressed(raw, compression: str, path: str):
    """A binary stream of `raw`'s content (multistream bz2 and multi-member gzip whole)."""
    if compression == "bz2":
        return bz2.BZ2File(raw)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "zstd":
        return io.BufferedReader(ZstdReader(raw), 1 << 20)
    return raw


class ZstdReader(io.RawIOBase):
    """Decompressed bytes of a zstd file of one or more frames; EOFError when the input
    ends inside a frame (zstandard's `stream_reader` returns a truncated file silently)."""

    def __init__(self, raw, chunk: int = 1 << 18):
        import zstandard
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._raw, self._chunk = raw, chunk
        self._frame = self._new()
        self._pending = b""
        self._in_frame = False

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            data = self._raw.read(self._chunk)
            if not data:
                if self._in_frame:
                    raise EOFError("compressed file ended before the end of a zstd frame")
                return 0
            while data:
                self._in_frame = True
                self._pending += self._frame.decompress(data)
                data = b""
                if self._frame.eof:
                    data = self._frame.unused_data
                    self._frame, self._in_frame = self._new(), False
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_binary(path: str):
    """(decompressed binary stream, HashingReader of the file, compression)."""
    raw = HashingReader(open(path, "rb"))
    buffered = io.BufferedReader(raw, 1 << 20)
    compression = compression_of(buffered.peek(16)[:16], path)
    return decompressed(buffered, compression, path), raw, compression


def read_head(path: str, size: int = HEAD_BYTES) -> tuple[bytes, str]:
    """The first `size` decompressed bytes of `path` and its compression."""
    stream, raw, compression = open_binary(path)
    try:
        head = stream.read(size)
    except (EOFError, OSError, ValueError) as e:
        raise CorpusError(f"{path}: damaged or truncated {compression} data ({e})") from e
    except Exception as e:   # zstandard.ZstdError
        raise CorpusError(f"{path}: damaged {compression} data ({e})") from e
    finally:
        raw.close()
    return head, compression


def encoding_of(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) from a byte-order mark, UTF-16/32 zero bytes, or the XML
    declaration; UTF-8 otherwise."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    if head.startswith(b"<\x00?\x00"):
        return "utf-16-le", 0
    if head.startswith(b"\x00<\x00?"):
        return "utf-16-be", 0
    declared = _XML_DECL.match(head[:200].decode("latin-1"))
    if declared:
        try:
            return codecs.lookup(declared.group(1)).name, 0
        except LookupError:
            pass
    return "utf-8", 0


def _decodes(head: bytes, encoding: str, complete: bool) -> str | None:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None


def _bad_line(data: bytes, encoding: str) -> int:
    """The line number of the first byte that does not decode."""
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        return data[:e.start].count(b"\n") + 1
    return 1


def _is_text(text: str) -> bool:
    if "\x00" in text:
        return False
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
    return controls <= len(text) // 1000


def sniff(path: str) -> Kind:
    """What `path` holds (see the module docstring); CorpusError naming it when it is
    none of the readable kinds."""
    head, compression = read_head(path)
    if not head:
        raise CorpusError(f"{path}: the file is empty")
    encoding, bom = encoding_of(head)
    text = _decodes(head[bom:], encoding, complete=len(head) < HEAD_BYTES)
    shown = "" if compression == "none" else f" ({compression}-compressed)"
    if text is None and _is_text(head[bom:].decode("latin-1")):
        raise UndecodableText(f"{path}:{_bad_line(head[bom:], encoding)}: not valid {encoding} "
                          "text (give text in UTF-8, or declare its encoding with a "
                          "byte-order mark)")
    if text is None or not _is_text(text):
        raise CorpusError(f"{path}: binary data{shown}, not a MediaWiki dump, JSON lines "
                          "or text")
    stripped = text.lstrip()
    if stripped.startswith("<"):
        body = re.sub(r"^(<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>|\s)+", "", stripped, flags=re.S)
        root = _ROOT.match(body)
        if root and root.group(1).split(":")[-1] == "mediawiki":
            schema = _SCHEMA.search(root.group(2))
            version = schema.group(1) if schema else None
            if version not in SCHEMAS:
                raise CorpusError(f"{path}: MediaWiki export schema {version or '(none)'} "
                                  f"is not one prepare_corpus reads ({', '.join(SCHEMAS)})")
            return Kind("mediawiki", compression, encoding, version)
        if root and (stripped.startswith("<?xml") or "xmlns" in root.group(2)):
            raise CorpusError(f"{path}: XML whose root is <{root.group(1)}>, not a MediaWiki "
                              "export dump (<mediawiki>)")
    first = next((line for line in stripped.splitlines() if line.strip()), "")
    if first.startswith("{"):
        try:
            json.loads(first)
            return Kind("jsonl", compression, encoding)
        except ValueError:
            pass
    return Kind("text", compression, encoding)
