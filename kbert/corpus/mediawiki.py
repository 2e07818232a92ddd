"""Pages of a MediaWiki XML export dump (schema 0.10 / 0.11), streamed with bounded memory.

`xml.etree.ElementTree.iterparse` reads the (decompressed) stream in pieces; each `<page>`
is cleared once read, so memory stays flat however large the dump. The parser honours the
encoding the XML declares or its byte-order mark says (UTF-16 included). Redirects and pages
outside the article namespace (0) are skipped with their reason counted; the File and
Category namespaces' local names come from the dump's `<siteinfo>`.

Example:
    >>> dump = MediaWikiDump("enwiki-pages-articles1.xml.bz2")           # doctest: +SKIP
    >>> for page in dump.pages(): ...                                    # doctest: +SKIP
    >>> dump.skipped                                                     # doctest: +SKIP
    {'redirect': 12, 'namespace': 3}
"""

from __future__ import annotations

import collections
import dataclasses
import xml.etree.ElementTree as ET
from typing import Iterator

from kbert.corpus.errors import CorpusError
from kbert.corpus.sniff import open_binary

FILE_NAMESPACE = "6"
CATEGORY_NAMESPACE = "14"


@dataclasses.dataclass(frozen=True)
class Page:
    """An article page: its title and wikitext (the last revision in the dump)."""

    title: str
    text: str


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class MediaWikiDump:
    """One dump file. `pages()` yields article pages; afterwards `skipped` counts the
    pages left out by reason, `namespaces` maps namespace keys to their names (and
    aliases), `sha256`/`num_bytes` describe the file as read."""

    def __init__(self, path: str):
        self.path = path
        self.skipped: collections.Counter = collections.Counter()
        self.namespaces: dict[str, set[str]] = {FILE_NAMESPACE: {"File", "Image"},
                                                CATEGORY_NAMESPACE: {"Category"}}
        self.sha256 = ""
        self.num_bytes = 0

    def pages(self) -> Iterator[Page]:
        stream, raw, compression = open_binary(self.path)
        try:
            yield from self._pages(stream)
        except ET.ParseError as e:
            line, column = e.position
            raise CorpusError(f"{self.path}:{line}: not well-formed XML (column {column}): "
                              "truncated or damaged dump") from e
        except (EOFError, OSError) as e:
            raise CorpusError(f"{self.path}: damaged or truncated {compression} data "
                              f"({e})") from e
        except Exception as e:   # zstandard.ZstdError and the like
            if type(e).__module__.startswith("zstandard"):
                raise CorpusError(f"{self.path}: damaged {compression} data ({e})") from e
            raise
        finally:
            self.sha256, self.num_bytes = raw.sha256.hexdigest(), raw.bytes_read
            raw.close()

    def _pages(self, stream) -> Iterator[Page]:
        events = ET.iterparse(stream, events=("start", "end"))
        _, root = next(events)
        if _local(root.tag) != "mediawiki":
            raise CorpusError(f"{self.path}: XML whose root is <{_local(root.tag)}>, not a "
                              "MediaWiki export dump (<mediawiki>)")
        for event, element in events:
            if event == "start":
                continue
            name = _local(element.tag)
            if name == "siteinfo":
                self._read_namespaces(element)
                root.clear()
            elif name == "page":
                page = self._page(element)
                root.clear()
                if page is not None:
                    yield page

    def _read_namespaces(self, siteinfo) -> None:
        for element in siteinfo.iter():
            if _local(element.tag) == "namespace" and element.text:
                self.namespaces.setdefault(element.get("key", ""), set()).add(element.text)

    def _page(self, page) -> Page | None:
        title, namespace, redirect, text = "", "0", False, None
        for child in page:
            name = _local(child.tag)
            if name == "title":
                title = child.text or ""
            elif name == "ns":
                namespace = (child.text or "0").strip()
            elif name == "redirect":
                redirect = True
            elif name == "revision":
                for part in child:
                    if _local(part.tag) == "text":
                        text = part.text or ""
        if namespace != "0":
            self.skipped["namespace"] += 1
            return None
        if redirect or (text or "").lstrip()[:9].lower() == "#redirect":
            self.skipped["redirect"] += 1
            return None
        return Page(title, text or "")
