"""Wikipedia markup to plain paragraphs with mwparserfromhell (as the TFDS and Hugging Face
Wikipedia builders do), removing what is not running text.

Removed: templates (infoboxes, citations, `{{DEFAULTSORT:…}}`), references (`<ref>…</ref>`,
`<ref/>`, `<references/>`), tables (`{| … |}` and `<table>`), file and image links with
their captions, category links, interlanguage links, HTML comments, HTML tags (their text
kept), magic words (`__NOTOC__`), headings, list markers, bare URLs. Kept: the text of
links (`[[England|English]]` → English, `[http://x a link]` → a link), bold/italic text,
entities decoded (`&amp;` → &).

Example:
    >>> clean_wikitext("'''Turing'''<ref>x</ref> was [[England|English]].\\n"
    ...                "== Life ==\\n* Born in 1912.\\n[[Category:People]]")
    ['Turing was English.', 'Born in 1912.']
"""

from __future__ import annotations

import re
from typing import Iterable

import mwparserfromhell
from mwparserfromhell.nodes import Heading, Tag, Text, Wikilink

# Namespace names (lower case) of links that are not text; a dump's <siteinfo> adds its
# local names (Datei, 파일, Kategorie, 분류, ...).
FILE_NAMESPACES = frozenset({"file", "image", "media"})
CATEGORY_NAMESPACES = frozenset({"category"})
DROPPED_TAGS = frozenset({"ref", "references", "table", "gallery", "math", "chem", "ce",
                          "timeline", "score", "graph", "imagemap", "syntaxhighlight",
                          "source", "templatedata", "mapframe", "maplink", "hiero",
                          "inputbox", "categorytree", "noinclude", "includeonly", "pre"})
LINE_BREAK_TAGS = frozenset({"br", "p", "div", "li", "dd", "dt"})
_LANGUAGE_PREFIX = re.compile(r"^:?[a-z]{2,3}(-[a-z0-9]+)*$")
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_URL = re.compile(r"\b(?:https?|ftp)://\S+")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def _link_prefix(link: Wikilink) -> str:
    """The text before the first colon of a link's title (as written), or ""."""
    title = str(link.title).strip()
    if ":" not in title.lstrip(":"):
        return ""
    return title.lstrip(":").split(":", 1)[0].strip()


def _drop_link(link: Wikilink, files: frozenset, categories: frozenset) -> bool:
    title = str(link.title).strip()
    prefix = _link_prefix(link)
    if not prefix:
        return False
    if prefix.lower() in files:
        return True
    if prefix.lower() in categories:
        return not title.startswith(":")   # [[:Category:X]] is a visible link
    # Interlanguage links are written with the lower-case code: [[de:…]], [[zh-yue:…]].
    return bool(_LANGUAGE_PREFIX.match(prefix)) and not title.startswith(":")


def _remove(code, node) -> None:
    try:
        code.remove(node)
    except ValueError:   # already gone with its parent
        pass


def clean_wikitext(wikitext: str, file_namespaces: Iterable[str] = (),
                   category_namespaces: Iterable[str] = ()) -> list[str]:
    """The paragraphs of running text in `wikitext` (see the module docstring); extra
    local names of the File and Category namespaces may be given."""
    files = FILE_NAMESPACES | {n.lower() for n in file_namespaces}
    categories = CATEGORY_NAMESPACES | {n.lower() for n in category_namespaces}
    code = mwparserfromhell.parse(wikitext)
    for node in code.filter(recursive=True):
        if isinstance(node, Heading):
            _remove(code, node)
        elif isinstance(node, Tag):
            name = str(node.tag).strip().lower()
            if name in DROPPED_TAGS:
                _remove(code, node)
            elif name in LINE_BREAK_TAGS and (node.self_closing or node.wiki_markup):
                code.insert_before(node, Text("\n"))
        elif isinstance(node, Wikilink) and _drop_link(node, files, categories):
            _remove(code, node)
    text = code.strip_code(normalize=True, collapse=True)
    text = _URL.sub("", _MAGIC_WORD.sub("", text))
    paragraphs = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if _HAS_LETTER.search(line):
            paragraphs.append(line)
    return paragraphs
