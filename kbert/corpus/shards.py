"""Text shards in google-research/bert's input format: one sentence a line, a blank line
between documents; a new shard once one reaches `max_shard_bytes` (documents are never
split). Shards are named `corpus-IIIII-of-NNNNN.txt` when the last is closed.

Example:
    >>> writer = ShardWriter("/tmp/staging", max_shard_bytes=1 << 27)    # doctest: +SKIP
    >>> writer.add(["First sentence.", "Second."]); shards = writer.close()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os


class ShardWriter:
    """Writes documents into shards under `directory`; `close()` names them and returns
    their manifest entries (file, documents, sentences, characters, bytes, sha256)."""

    def __init__(self, directory: str, max_shard_bytes: int = 128 << 20):
        self.directory = directory
        self.max_shard_bytes = max_shard_bytes
        self._shards: list[dict] = []
        self._file = None

    def _open(self) -> None:
        path = os.path.join(self.directory, f".shard-{len(self._shards):05d}.txt")
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._shards.append({"path": path, "documents": 0, "sentences": 0, "characters": 0,
                             "bytes": 0})

    def add(self, sentences: list[str]) -> None:
        """Append one document (its sentences, none empty, none with a newline)."""
        if self._file is None:
            self._open()
        shard = self._shards[-1]
        data = ("\n".join(sentences) + "\n\n").encode("utf-8")
        self._file.write(data)
        self._hash.update(data)
        shard["documents"] += 1
        shard["sentences"] += len(sentences)
        shard["characters"] += sum(len(s) for s in sentences)
        shard["bytes"] += len(data)
        if shard["bytes"] >= self.max_shard_bytes:
            self._finish()

    def _finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._shards[-1]["sha256"] = self._hash.hexdigest()

    def close(self) -> list[dict]:
        if self._file is not None:
            self._finish()
        total = len(self._shards)
        for index, shard in enumerate(self._shards):
            name = f"corpus-{index:05d}-of-{total:05d}.txt"
            os.replace(shard.pop("path"), os.path.join(self.directory, name))
            shard["file"] = name
        return [dict(sorted(s.items())) for s in self._shards]
