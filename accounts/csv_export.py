"""One CSV writer and one formula-injection rule for every CSV idm emits.

Users export, audit export, upload preview/result reports and ``invitations.csv`` all write through
``csv_line``/``csv_text`` (the ``csv`` module, CRLF line ends, quoting where needed), so a value with a
comma, quote or line break never shifts the columns. A cell that starts with ``= + - @``, a tab or
a CR would be run as a formula by Excel, LibreOffice or Google Sheets (CSV injection, OWASP), so it
gets a leading ``'``; the bulk upload parser removes exactly that quote again (``restore``), which
keeps export -> edit -> upload round trips lossless. Pure: no Django imports.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
LINE_END = "\r\n"  # RFC 4180; it also makes the writer quote any cell holding a CR or an LF


def neutralise(value: Any) -> str:
    """The text of one cell (``None`` -> ""), with a leading ``'`` when it would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def json_cell(value: Any) -> str:
    """A JSON value (audit and journal old/new values) as cell text: text as it is, else compact JSON."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def restore(value: str) -> str:
    """Undo ``neutralise``: "'=x" -> "=x". Anything else is kept as it is."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value


class _Echo:
    """A file-like object whose ``write`` returns the line, so each row can be yielded (streaming)."""

    def write(self, value: str) -> str:
        return value


def _writer():
    # One writer per stream: csv writers keep state between calls and are not shared across threads.
    return csv.writer(_Echo(), lineterminator=LINE_END)


def csv_line(cells: Iterable[Any]) -> str:
    """One CSV record (with its line end), every cell neutralised."""
    return _writer().writerow([neutralise(cell) for cell in cells])


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header line, then one line per row: for ``StreamingHttpResponse``."""
    writer = _writer()
    yield writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def csv_text(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """The whole CSV as one string (reports stored as files)."""
    return "".join(csv_lines(header, rows))
