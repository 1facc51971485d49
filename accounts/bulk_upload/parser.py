"""Parse an uploaded users file into rows with line numbers. Pure: no ORM, no settings.

The file is streamed (``io.TextIOWrapper`` over the binary upload, one physical line at a time), so a
50 MB file is never held as one string; its size is checked before the first byte is read. Errors
carry the *physical* line number where the record starts (a quoted field may span lines), the
column, a snake_case code and a plain message. File-level errors are ``fatal``: no rows are returned.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from accounts.csv_export import restore as unescape_formula

# Columns per operation (code42-features.md §1.5: the Code42 CLI user formats).
UPSERT_COLUMNS = ("username", "email", "first_name", "last_name", "password", "org", "roles", "notes", "state")
OPERATIONS: dict[str, dict] = {
    "upsert": {"label": "Create or update users", "required": ("username",), "columns": UPSERT_COLUMNS},
    "move": {"label": "Move users to another organization", "required": ("username", "org"),
             "columns": ("username", "org")},
    "deactivate": {"label": "Deactivate users", "required": ("username",), "columns": ("username",)},
    "reactivate": {"label": "Reactivate users", "required": ("username",), "columns": ("username",)},
    "add-roles": {"label": "Add a role to users", "required": ("username", "role"), "columns": ("username", "role")},
    "remove-roles": {"label": "Remove a role from users", "required": ("username", "role"),
                     "columns": ("username", "role")},
}
# Header spellings people use for the same column.
ALIASES = {
    "user": "username", "login": "username", "user_name": "username",
    "mail": "email", "e_mail": "email", "email_address": "email",
    "firstname": "first_name", "given_name": "first_name",
    "lastname": "last_name", "surname": "last_name", "family_name": "last_name",
    "org_id": "org", "organization": "org", "org_name": "org",
    "role_name": "role", "role": "role",
}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
# Excel and friends treat cells starting with = + - @ tab CR as formulas (CSV injection); every export
# prefixes them with "'" (accounts/csv_export.py) and ``unescape_formula`` removes exactly that quote.
# Cells where leading/trailing spaces are content, not a mistake.
SPACE_TOLERANT = frozenset({"notes", "password"})
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class UploadError:
    """One problem: ``line`` (physical line where the record starts; 0 = the file), ``column``, ``code``."""

    line: int
    column: str | None
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Row:
    """One data record: its start line and its cells keyed by column name (password included)."""

    line: int
    cells: dict[str, str]


@dataclass
class ParsedUpload:
    """What ``parse_upload`` found. ``fatal`` means the file as a whole was refused."""

    operation: str
    delimiter: str = ","
    columns: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    errors: list[UploadError] = field(default_factory=list)
    fatal: bool = False

    def error_lines(self) -> set[int]:
        """Lines with a parse error: they are reported, never applied."""
        return {e.line for e in self.errors}

    def valid_rows(self) -> list[Row]:
        bad = self.error_lines()
        return [r for r in self.rows if r.line not in bad]

    @property
    def delimiter_name(self) -> str:
        return DELIMITERS.get(self.delimiter, repr(self.delimiter))


class _Fatal(Exception):
    def __init__(self, error: UploadError):
        super().__init__(error.message)
        self.error = error


def _fatal(line: int, code: str, message: str, column: str | None = None) -> _Fatal:
    return _Fatal(UploadError(line, column, code, message))


def _looks_utf16(raw: bytes) -> bool:
    """A BOM, or text whose every other byte is NUL (ASCII in UTF-16 without a BOM).

    Counting all NULs is not enough: a ZIP (an .xlsx) or an image also holds many.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    sample = raw[:4096]
    even, odd = sample[0::2], sample[1::2]
    return bool(sample) and any(half.count(0) > len(half) * 0.9 and other.count(0) < len(other) * 0.1
                                for half, other in ((even, odd), (odd, even)))


def guess_encoding(raw: bytes) -> str:
    """A human name for the encoding ``raw`` (not UTF-8) is probably in."""
    if _looks_utf16(raw):
        return "UTF-16"
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "Latin-1 (ISO-8859-1)"
    return "Windows-1252/Latin-1"


def _lines(text: io.TextIOBase) -> Iterator[str]:
    """Physical lines, refusing undecodable bytes and NULs with the line number."""
    for number, line in enumerate(text, start=1):
        if "\x00" in line:
            raise _fatal(number, "binary_file", f"Line {number} contains NUL bytes: this is not a text file. "
                         "Save the users as CSV (UTF-8) and upload that.")
        if _SURROGATE.search(line):
            raw = line.encode("utf-8", "surrogateescape")
            raise _fatal(number, "not_utf8", f"Line {number} is not UTF-8; it looks like {guess_encoding(raw)}. "
                         "Save the file as UTF-8 (in Excel: \"CSV UTF-8\") and upload it again.")
        yield line


def detect_delimiter(header_line: str) -> str:
    """Comma, semicolon or tab: whichever occurs most in the header line (column names never contain them)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def normalise_column(name: str) -> str:
    """Header cell -> column name: case-insensitive, spaces and hyphens as underscores, aliases resolved."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALIASES.get(key, key)


def _check_header(cells: list[str], operation: str) -> list[str]:
    spec = OPERATIONS[operation]
    allowed = spec["columns"]
    names = [normalise_column(c) for c in cells]
    if not any(names):
        raise _fatal(1, "missing_header", "The first line is empty: it must name the columns, e.g. "
                     f"{','.join(allowed[:4])}.")
    known = [n for n in names if n in UPSERT_COLUMNS or n == "role"]
    if not known:
        raise _fatal(1, "missing_header", f"The first line ({','.join(cells)[:80]!r}) does not name any column. "
                     f"Add a header line first, e.g. {','.join(allowed[:4])}.")
    seen: dict[str, int] = {}
    for position, (raw, name) in enumerate(zip(cells, names, strict=True), start=1):
        if not name:
            raise _fatal(1, "empty_column_name", f"Column {position} of the header has no name.")
        if name in seen:
            raise _fatal(1, "duplicate_column", f"The column {name!r} appears twice in the header "
                         f"(columns {seen[name]} and {position}).", column=name)
        seen[name] = position
        if name not in allowed:
            raise _fatal(1, "unknown_column", f"Unknown column {raw.strip()!r} for the {operation} operation. "
                         f"Columns: {', '.join(allowed)}.", column=raw.strip())
    missing = [c for c in spec["required"] if c not in seen]
    if missing:
        raise _fatal(1, f"missing_{missing[0]}_column", f"The header has no {missing[0]!r} column "
                     f"(needed by the {operation} operation).", column=missing[0])
    return names


def parse_upload(
    stream: BinaryIO, *, operation: str = "upsert", size: int | None = None,
    max_bytes: int = 50 * 1024 * 1024, max_rows: int = 100_000,
) -> ParsedUpload:
    """Parse ``stream`` (binary, positioned at the start). ``size`` is the upload's size if known.

    Returns rows with cells keyed by column name. Row-level problems (field count, spaces) are
    errors on that row, which is then left out; file-level problems set ``fatal`` and return no rows.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}")
    result = ParsedUpload(operation=operation)
    try:
        _parse(stream, result, size=size, max_bytes=max_bytes, max_rows=max_rows)
    except _Fatal as exc:
        result.errors = [exc.error]
        result.rows = []
        result.fatal = True
    return result


def _parse(stream: BinaryIO, result: ParsedUpload, *, size: int | None, max_bytes: int, max_rows: int) -> None:
    if size is not None and size > max_bytes:
        raise _fatal(0, "file_too_large", f"The file is {size / 1048576:.1f} MB; the limit is "
                     f"{max_bytes / 1048576:.0f} MB. Split it into smaller files.")
    head = stream.read(8192)
    if not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise _fatal(0, "empty_file", "The file is empty. Add a header line and one line per user.")
    if head.startswith(b"PK\x03\x04"):
        raise _fatal(0, "binary_file", "This is a ZIP archive (an Excel .xlsx workbook is one), not a text file. "
                     "Save the sheet as \"CSV UTF-8\" and upload that.")
    if b"\x00" in head:
        if guess_encoding(head) == "UTF-16":
            raise _fatal(1, "not_utf8", "The file is UTF-16, not UTF-8. Save it as UTF-8 and upload it again.")
        raise _fatal(0, "binary_file", "This is not a text file (it contains NUL bytes). "
                     "Save the users as CSV (UTF-8) and upload that.")
    stream.seek(0)
    counted = _CountingReader(stream, max_bytes)
    text = io.TextIOWrapper(counted, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _lines(text)
    try:
        header_line = next(lines)
    except StopIteration:
        raise _fatal(0, "empty_file", "The file is empty.") from None
    result.delimiter = detect_delimiter(header_line)
    header_cells = next(csv.reader([header_line], delimiter=result.delimiter, strict=True), [])
    columns = _check_header(header_cells, result.operation)
    result.columns = columns
    ncols = len(columns)

    # csv.reader counts physical lines in ``line_num``; a record starts one after the previous end.
    reader = csv.reader(lines, delimiter=result.delimiter, strict=True)
    reader_line = 1
    rows = 0
    while True:
        start = reader_line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if counted.too_large:
                raise _fatal(0, "file_too_large", f"The file is larger than {max_bytes / 1048576:.0f} MB, the limit.") \
                    from None
            raise _fatal(start, "bad_quoting", f"Line {start}: {_csv_message(exc)}. Check the quotes on this line.") \
                from None
        reader_line = reader.line_num + 1  # + the header line the reader never saw
        if not cells or not any(c.strip() for c in cells):
            continue  # blank lines (and rows of empty cells that spreadsheets append) are ignored
        rows += 1
        if rows > max_rows:
            raise _fatal(start, "too_many_rows", f"The file has more than {max_rows:,} rows, the limit. "
                         "Split it into smaller files.")
        if len(cells) != ncols:
            more = len(cells) > ncols
            result.errors.append(UploadError(
                start, None, "too_many_fields" if more else "too_few_fields",
                f"This line has {len(cells)} fields; the header has {ncols}. "
                + ("Quote values that contain the delimiter." if more else "Add the missing fields (they may be empty)."),
            ))
            continue
        # Rows with cell errors are kept (for the report) but never become changes: see ``error_lines``.
        row = Row(line=start, cells={})
        for name, value in zip(columns, cells, strict=True):
            if value != value.strip() and name not in SPACE_TOLERANT:
                result.errors.append(UploadError(start, name, "spaces",
                                                 f"Remove the leading or trailing spaces from {name}."))
            row.cells[name] = unescape_formula(value) if name != "password" else value
        result.rows.append(row)
    if counted.too_large:
        raise _fatal(0, "file_too_large", f"The file is larger than {max_bytes / 1048576:.0f} MB, the limit.")
    if rows == 0:
        raise _fatal(2, "no_rows", "The file has a header but no users.")


def _csv_message(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return "a field is too long (a quote may be missing its closing quote)"
    if "unexpected end of data" in text or "EOF" in text:
        return "a quoted field is never closed"
    return text


class _CountingReader(io.RawIOBase):
    """Wraps the upload; stops (and flags) after ``limit`` bytes when the size was not known up front."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw = raw
        self.limit = limit
        self.read_bytes = 0
        self.too_large = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.read_bytes >= self.limit:
            self.too_large = bool(self.raw.read(1))
            return 0
        chunk = self.raw.read(min(len(buffer), self.limit - self.read_bytes))
        n = len(chunk)
        buffer[:n] = chunk
        self.read_bytes += n
        return n


def template_csv(operation: str) -> str:
    """The header line of ``operation`` (the downloadable template)."""
    return ",".join(OPERATIONS[operation]["columns"]) + "\r\n"
