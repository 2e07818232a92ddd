"""Corpus inputs written as they are published: MediaWiki export dumps in the real export
schema (0.10 / 0.11, plain / bz2 / multistream bz2 / gzip, UTF-8 / UTF-16), JSON lines
(plain / gzip / zstd) and plain text in both layouts. Used by tests/test_prepare_corpus.py.

Example:
    >>> xml = dump_xml([Page("A", TURING)], schema="0.11")        # doctest: +SKIP
    >>> write_dump("/tmp/d.bz2", xml, "bz2")                       # doctest: +SKIP
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import html
import json

# A page with every construct the cleaner removes, and the text it keeps.
TURING = """{{Short description|English mathematician}}
{{Infobox scientist
| name = Alan Turing
| birth_date = {{birth date|1912|6|23}}
}}
'''Alan Mathison Turing'''<ref>{{cite web |url=http://example.org |title=Turing}}</ref> was an [[England|English]] [[mathematician]] and computer scientist.<ref name="bio"/> He was born in 1912.<!-- a hidden comment -->
__NOTOC__
== Early life ==
Turing studied at [[King's College, Cambridge|King's College]]. His work on the [[Entscheidungsproblem]] was published in 1936.
* He proposed the <b>Turing machine</b> in [https://example.org/paper a famous paper].
# He worked at <span style="color:red">Bletchley Park</span> during the war.
{| class="wikitable"
|-
! Year !! Event
|-
| 1936 || Tabular fact that must vanish
|}
[[File:Alan Turing Aged 16.jpg|thumb|Image caption that must vanish.]]
[[Image:Other.png|left|Another caption that must vanish.]]
=== Legacy ===
The Turing Award is named after him.<ref>Reference text that must vanish.</ref>
<references />
[[Category:English mathematicians]]
[[Category:1912 births]]
[[de:Alan Turing]]
[[ko:앨런 튜링]]
{{DEFAULTSORT:Turing, Alan}}
"""
TURING_SENTENCES = [
    "Alan Mathison Turing was an English mathematician and computer scientist.",
    "He was born in 1912.",
    "Turing studied at King's College.",
    "His work on the Entscheidungsproblem was published in 1936.",
    "He proposed the Turing machine in a famous paper.",
    "He worked at Bletchley Park during the war.",
    "The Turing Award is named after him.",
]
TURING_GONE = ["Infobox", "Short description", "cite web", "hidden comment", "NOTOC",
               "Early life", "Legacy", "Tabular fact", "wikitable", "Image caption",
               "Another caption", "Reference text", "Category", "English mathematicians",
               "de:", "앨런", "DEFAULTSORT", "<", ">", "[[", "]]", "{{", "'''", "==", "*", "#",
               "http", "thumb"]

# Korean article with the local File (파일) and Category (분류) namespace names.
KOREAN = """{{위키데이터 속성 추적}}
'''서울특별시'''는 [[대한민국]]의 수도이다.<ref>출처</ref> 인구는 약 940만 명이다. 한강이 도시를 가로지른다.
[[파일:Seoul.jpg|섬네일|사라져야 할 설명.]]
[[분류:대한민국의 도시]]
"""
KOREAN_SENTENCES = ["서울특별시는 대한민국의 수도이다.", "인구는 약 940만 명이다.",
                    "한강이 도시를 가로지른다."]


@dataclasses.dataclass
class Page:
    title: str
    text: str
    ns: int = 0
    redirect: str | None = None


def _page_xml(page: Page, page_id: int) -> str:
    redirect = f'    <redirect title="{html.escape(page.redirect)}" />\n' if page.redirect else ""
    text = html.escape(page.text, quote=False)
    return (f"  <page>\n    <title>{html.escape(page.title)}</title>\n    <ns>{page.ns}</ns>\n"
            f"    <id>{page_id}</id>\n{redirect}    <revision>\n      <id>{page_id + 1000}</id>\n"
            f"      <parentid>{page_id + 999}</parentid>\n"
            f"      <timestamp>2024-05-01T12:00:00Z</timestamp>\n"
            f"      <contributor>\n        <username>Editor</username>\n        <id>42</id>\n"
            f"      </contributor>\n      <comment>edit</comment>\n"
            f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f'      <text bytes="{len(page.text.encode())}" xml:space="preserve">{text}</text>\n'
            f"      <sha1>0123456789abcdefghijklmnopqrstu</sha1>\n    </revision>\n  </page>\n")


def dump_parts(pages: list[Page], schema: str = "0.11", language: str = "en",
               encoding: str | None = None) -> tuple[str, list[str], str]:
    """(header with <siteinfo>, one XML string per page, footer) in export schema `schema`."""
    names = {"en": ("File", "Category"), "ko": ("파일", "분류")}[language]
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>\n' if encoding else ""
    header = (f'{declaration}<mediawiki xmlns="http://www.mediawiki.org/xml/export-{schema}/" '
              f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
              f'xsi:schemaLocation="http://www.mediawiki.org/xml/export-{schema}/ '
              f'http://www.mediawiki.org/xml/export-{schema}.xsd" version="{schema}" '
              f'xml:lang="{language}">\n  <siteinfo>\n    <sitename>Wikipedia</sitename>\n'
              f"    <dbname>{language}wiki</dbname>\n"
              f"    <base>https://{language}.wikipedia.org/wiki/Main_Page</base>\n"
              f"    <generator>MediaWiki 1.43.0-wmf.1</generator>\n"
              f"    <case>first-letter</case>\n    <namespaces>\n"
              f'      <namespace key="-2" case="first-letter">Media</namespace>\n'
              f'      <namespace key="0" case="first-letter" />\n'
              f'      <namespace key="1" case="first-letter">Talk</namespace>\n'
              f'      <namespace key="6" case="first-letter">{names[0]}</namespace>\n'
              f'      <namespace key="10" case="first-letter">Template</namespace>\n'
              f'      <namespace key="14" case="first-letter">{names[1]}</namespace>\n'
              f"    </namespaces>\n  </siteinfo>\n")
    return header, [_page_xml(p, i + 1) for i, p in enumerate(pages)], "</mediawiki>\n"


def write_dump(path: str, pages: list[Page], compression: str = "none", schema: str = "0.11",
               language: str = "en", encoding: str = "utf-8") -> str:
    """A dump file: `compression` none | bz2 | multistream (bz2 streams of 2 pages, as
    Wikimedia's *-multistream.xml.bz2) | gzip; `encoding` utf-8 | utf-16 (with a BOM)."""
    header, page_parts, footer = dump_parts(
        pages, schema, language, encoding="UTF-16" if encoding == "utf-16" else None)
    codec = "utf-16" if encoding == "utf-16" else "utf-8"
    if compression == "multistream":
        groups = [header] + ["".join(page_parts[i:i + 2])
                             for i in range(0, len(page_parts), 2)] + [footer]
        data = b"".join(bz2.compress(g.encode("utf-8")) for g in groups)
    else:
        data = (header + "".join(page_parts) + footer).encode(codec)
        data = {"none": lambda d: d, "bz2": bz2.compress,
                "gzip": lambda d: gzip.compress(d, mtime=0)}[compression](data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def standard_pages() -> list[Page]:
    """The article, a redirect, a talk page, a template page and a page empty when clean."""
    return [Page("Alan Turing", TURING),
            Page("Turing", "#REDIRECT [[Alan Turing]]", redirect="Alan Turing"),
            Page("Talk:Alan Turing", "This is a talk page. It must be skipped.", ns=1),
            Page("Template:Stub", "This template text must be skipped.", ns=10),
            Page("Stub only", "{{stub}}\n[[Category:Stubs]]")]


def write_jsonl(path: str, records: list[dict], compression: str = "none") -> str:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    if compression == "gzip":
        data = gzip.compress(data, mtime=0)
    elif compression == "zstd":
        import zstandard
        data = zstandard.ZstdCompressor().compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path
