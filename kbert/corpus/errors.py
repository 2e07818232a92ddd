"""The one error a corpus reader raises: a bad input, named with its file (and line).

Example:
    >>> str(CorpusError("dump.xml.bz2: truncated bz2 stream"))
    'dump.xml.bz2: truncated bz2 stream'
"""

from __future__ import annotations


class CorpusError(ValueError):
    """A corpus input that cannot be read as what it claims to be; the message names it."""


class UndecodableText(CorpusError):
    """Text (not binary) with bytes that do not decode in its encoding."""
