"""Labelled task files (CSV, TSV, JSONL by extension) with errors naming file, line, column.

Every row keeps its 1-based line number, so later checks (an unseen label, a label that is
not a number, an answer outside its context) can point at the exact place too.

CSV and TSV files are read as Python's `csv` module and pandas read them (double quotes
delimit a field, which may then span lines), with a row-count check: when quotes merged
lines into fewer rows while the same file read without quoting has the header's number of
fields on every line (a TSV text that merely starts with `"`), the file is refused naming
the line, and `quoting="none"` reads it without quote processing (google-research/bert's
TSV reader). Labels are the strings as written (JSON `1.0` is "1.0", `true` is "true"); a
null or non-scalar label is an error naming file:line. Null or empty texts are skipped and
counted (`TaskRows.skipped`), the same for fine-tuning and every export command.

Example:
    >>> rows = read_task_file("train.jsonl", required=["text", "label"])   # doctest: +SKIP
    >>> rows.rows[0]["text"], rows.lines[0]                               # doctest: +SKIP
    ('Some text', 1)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
QUOTING = ("auto", "none")
# Python's csv module stops at 131,072 characters a field by default; texts may be longer.
FIELD_SIZE_LIMIT = 2 ** 31 - 1


class TaskFileError(ValueError):
    """A problem in a task file; the message starts with `file:line[:column]:`."""


def where(path: str, line: int | None = None, column: str | int | None = None) -> str:
    """`path:line: column 'name'` prefix for messages."""
    place = path if line is None else f"{path}:{line}"
    if column is not None:
        place += f": column {column!r}" if isinstance(column, str) else f":{column}"
    return place


@dataclasses.dataclass
class TaskRows:
    """Rows of a task file: dicts of column values, their line numbers, skip counts."""
    path: str
    rows: list
    lines: list
    skipped: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list:
        return [row.get(name) for row in self.rows]


def file_format(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise TaskFileError(f"{path}: unknown extension {extension or '(none)'!r}; use "
                            f"{', '.join(sorted(EXTENSIONS))}")
    return EXTENSIONS[extension]


def _decode(path: str) -> str:
    if not os.path.isfile(path):
        raise TaskFileError(f"{path}: file not found")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TaskFileError(f"{path}:{line}:{column}: invalid UTF-8 (byte "
                            f"0x{data[e.start]:02x})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise TaskFileError(f"{path}: empty file")
    return text


def _records(text: str, delimiter: str, quoting: str):
    """(record, first line, last line) of a delimited text."""
    if csv.field_size_limit() < FIELD_SIZE_LIMIT:
        csv.field_size_limit(FIELD_SIZE_LIMIT)
    options = {"quoting": csv.QUOTE_NONE, "quotechar": None} if quoting == "none" else {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, **options)
    line = 0
    for record in reader:
        yield record, line + 1, reader.line_num
        line = reader.line_num


def _check_no_swallowed_lines(path: str, text: str, delimiter: str, header: list) -> None:
    """Refuse a file whose quotes merged lines when, read without quoting, every line has
    the header's number of fields (a text that starts with `"` in an unquoted file)."""
    merged = None
    for record, first, last in _records(text, delimiter, "auto"):
        if last > first:
            merged = (first, last)
            break
    if merged is None:
        return
    plain = [r for r, _, _ in _records(text, delimiter, "none") if r and r != [""]]
    if all(len(r) == len(header) for r in plain):
        first, last = merged
        raise TaskFileError(
            f"{path}:{first}: a double quote at the start of a field joins lines {first}-{last} "
            f"into one row ({len(plain) - 1} rows without quoting); if the file uses no "
            f"quoting, pass --quoting=none")


def _read_delimited(path: str, text: str, delimiter: str, quoting: str = "auto"):
    reader = (record for record, _, _ in _records(text, delimiter, quoting))
    header = next(reader)
    if len(set(header)) != len(header):
        raise TaskFileError(f"{path}:1: duplicate column names in header {header}")
    if quoting == "auto":
        _check_no_swallowed_lines(path, text, delimiter, header)
    rows, lines = [], []
    for record, start, _ in _records(text, delimiter, quoting):
        if start == 1:
            continue                               # the header
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != len(header):
            raise TaskFileError(f"{path}:{start}: {len(record)} fields, the header has "
                                f"{len(header)}")
        rows.append(dict(zip(header, record)))
        lines.append(start)
    return header, rows, lines


def _read_jsonl(path: str, text: str):
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskFileError(f"{path}:{number}:{e.colno}: invalid JSON: {e.msg}") from None
        if not isinstance(row, dict):
            raise TaskFileError(f"{path}:{number}: expected a JSON object, got "
                                f"{type(row).__name__}")
        rows.append(row)
        lines.append(number)
    return None, rows, lines


def label_text(value, path: str, line: int, column: str) -> str:
    """A label as written: a string as is, a JSON number or boolean as its JSON text; null
    or a list/object is an error naming the place."""
    if isinstance(value, str):
        return value
    if value is None:
        raise TaskFileError(f"{where(path, line, column)}: the label is null")
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise TaskFileError(f"{where(path, line, column)}: the label is a "
                        f"{'list' if isinstance(value, list) else 'JSON object'}, not one value")


def read_task_file(path: str, required=(), optional=(), skip_empty=(), label_columns=(),
                   quoting: str = "auto") -> TaskRows:
    """Read `path`; every `required` column must be present in every row.

    Args:
        required: column names each row must have.
        optional: names kept when present.
        skip_empty: columns whose null or empty value makes a row skipped (counted in
            `skipped`).
        label_columns: columns holding one label each (kept as the text written).
        quoting: "auto" (CSV quoting, with the row-count check) or "none" (CSV/TSV).
    """
    if quoting not in QUOTING:
        raise ValueError(f"quoting must be one of {QUOTING}, got {quoting!r}")
    kind = file_format(path)
    text = _decode(path)
    if kind == "jsonl":
        header, rows, lines = _read_jsonl(path, text)
    else:
        header, rows, lines = _read_delimited(path, text, "," if kind == "csv" else "\t",
                                              quoting)
    if header is not None:
        missing = [c for c in required if c not in header]
        if missing:
            raise TaskFileError(f"{path}:1: missing column {missing[0]!r} (header has "
                                f"{', '.join(header)})")
    if not rows:
        raise TaskFileError(f"{path}: no rows")
    kept = TaskRows(path, [], [], {})
    for row, line in zip(rows, lines):
        for column in required:
            if column not in row:
                raise TaskFileError(f"{where(path, line, column)}: missing")
        if any(_is_empty(row.get(c)) for c in skip_empty):
            key = "empty_" + "_or_".join(skip_empty)
            kept.skipped[key] = kept.skipped.get(key, 0) + 1
            continue
        for column in label_columns:
            if column in row:
                row[column] = label_text(row[column], path, line, column)
        kept.rows.append({c: row[c] for c in (*required, *optional) if c in row})
        kept.lines.append(line)
    if not kept.rows:
        raise TaskFileError(f"{path}: every row was skipped ({kept.skipped})")
    return kept


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []
