"""The upload parser, one test per bad-input case of issue 3 (pure: no database)."""

from __future__ import annotations

import io

import pytest

from accounts.bulk_upload.parser import parse_upload, template_csv


def parse(data: bytes | str, **kwargs):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return parse_upload(io.BytesIO(data), size=len(data), **kwargs)


def codes(parsed) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.column, e.code) for e in parsed.errors]


def test_parse_plain_comma_file():
    parsed = parse("username,email\nalice,alice@example.com\nbob,bob@example.com\n")
    assert not parsed.fatal and parsed.errors == []
    assert parsed.delimiter == ","
    assert [(r.line, r.cells) for r in parsed.rows] == [
        (2, {"username": "alice", "email": "alice@example.com"}),
        (3, {"username": "bob", "email": "bob@example.com"}),
    ]


@pytest.mark.parametrize("delimiter,name", [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_parse_detects_delimiter(delimiter, name):
    parsed = parse(f"username{delimiter}email{delimiter}roles\nalice{delimiter}a@example.com{delimiter}x,y\n")
    assert parsed.delimiter == delimiter and parsed.delimiter_name == name
    assert parsed.rows[0].cells["roles"] == "x,y" if delimiter != "," else True


def test_parse_tolerates_bom_crlf_and_case_insensitive_header():
    parsed = parse(b"\xef\xbb\xbfUserName,E-Mail,First Name\r\nalice,a@example.com,Al\r\n")
    assert parsed.columns == ["username", "email", "first_name"]
    assert parsed.rows[0].cells == {"username": "alice", "email": "a@example.com", "first_name": "Al"}


def test_parse_quoted_field_with_newline_keeps_physical_line_numbers():
    data = 'username,notes\nalice,"line one\nline two, with comma"\nbob,x\n'
    parsed = parse(data)
    assert [(r.line, r.cells["notes"]) for r in parsed.rows] == [(2, "line one\nline two, with comma"), (4, "x")]


def test_parse_non_utf8_names_line_and_encoding():
    data = "username,first_name\nalice,Al\nbob,Jos\u00e9\n".encode("cp1252")
    parsed = parse(data)
    assert parsed.fatal
    assert codes(parsed) == [(3, None, "not_utf8")]
    assert "Line 3 is not UTF-8" in parsed.errors[0].message
    assert "Windows-1252" in parsed.errors[0].message


def test_parse_utf16_is_named():
    parsed = parse("username\nalice\n".encode("utf-16"))
    assert parsed.fatal and parsed.errors[0].code == "not_utf8" and "UTF-16" in parsed.errors[0].message


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n  "])
def test_parse_empty_file(data):
    parsed = parse(data)
    assert parsed.fatal and parsed.errors[0].code == "empty_file"


def test_parse_binary_file():
    parsed = parse(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert parsed.fatal and parsed.errors[0].code == "binary_file"


def test_parse_missing_header():
    parsed = parse("alice,alice@example.com\nbob,bob@example.com\n")
    assert parsed.fatal and codes(parsed) == [(1, None, "missing_header")]


def test_parse_missing_username_column():
    parsed = parse("email,first_name\na@example.com,A\n")
    assert parsed.fatal and codes(parsed) == [(1, "username", "missing_username_column")]


def test_parse_unknown_column():
    parsed = parse("username,emial\nalice,a@example.com\n")
    assert parsed.fatal and codes(parsed) == [(1, "emial", "unknown_column")]
    assert "Columns: username, email" in parsed.errors[0].message


def test_parse_column_not_used_by_operation():
    parsed = parse("username,email\nalice,a@example.com\n", operation="deactivate")
    assert parsed.fatal and parsed.errors[0].code == "unknown_column"


def test_parse_duplicate_column():
    parsed = parse("username,Email,email\nalice,a@example.com,b@example.com\n")
    assert parsed.fatal and codes(parsed) == [(1, "email", "duplicate_column")]


def test_parse_too_many_and_too_few_fields():
    parsed = parse("username,email\nalice,a@example.com,extra\nbob\ncarol,c@example.com\n")
    assert not parsed.fatal
    assert codes(parsed) == [(2, None, "too_many_fields"), (3, None, "too_few_fields")]
    assert [r.line for r in parsed.valid_rows()] == [4]


def test_parse_leading_and_trailing_spaces_are_errors():
    parsed = parse("username,email,notes\n alice,a@example.com,ok\nbob,b@example.com ,\ncarol,c@example.com, notes keep spaces \n")
    assert codes(parsed) == [(2, "username", "spaces"), (3, "email", "spaces")]
    assert [r.line for r in parsed.valid_rows()] == [4]
    assert parsed.rows[2].cells["notes"] == " notes keep spaces "


def test_parse_formula_cells_are_stored_literally_and_export_quote_is_undone():
    parsed = parse("username,first_name,notes\nalice,=HYPERLINK(\"x\"),'=SUM(A1)\n")
    cells = parsed.rows[0].cells
    assert cells["first_name"] == '=HYPERLINK("x")'
    assert cells["notes"] == "=SUM(A1)"


def test_parse_refuses_file_over_byte_limit_before_reading():
    class Exploding(io.BytesIO):
        def read(self, *args):
            raise AssertionError("read a file that is over the limit")

    parsed = parse_upload(Exploding(b"username\n"), size=60 * 1024 * 1024, max_bytes=50 * 1024 * 1024)
    assert parsed.fatal and parsed.errors[0].code == "file_too_large"


def test_parse_refuses_file_over_byte_limit_when_size_unknown():
    data = ("username\n" + "u\n" * 1000).encode()
    parsed = parse_upload(io.BytesIO(data), size=None, max_bytes=100)
    assert parsed.fatal and parsed.errors[0].code == "file_too_large"


def test_parse_refuses_more_rows_than_the_limit():
    data = "username\n" + "".join(f"user{i}\n" for i in range(11))
    parsed = parse(data, max_rows=10)
    assert parsed.fatal and codes(parsed) == [(12, None, "too_many_rows")]
    assert parse(data, max_rows=11).fatal is False


def test_parse_unclosed_quote():
    parsed = parse('username,notes\nalice,"never closed\nbob,x\n')
    assert parsed.fatal and parsed.errors[0].code == "bad_quoting" and parsed.errors[0].line == 2


def test_parse_header_only():
    parsed = parse("username,email\n")
    assert parsed.fatal and parsed.errors[0].code == "no_rows"


def test_parse_skips_blank_and_empty_rows():
    parsed = parse("username,email\n\nalice,a@example.com\n,\n")
    assert [r.line for r in parsed.rows] == [3]


def test_parse_roles_operation_columns():
    parsed = parse("username,role_name\nalice,Help Desk\n", operation="add-roles")
    assert parsed.rows[0].cells == {"username": "alice", "role": "Help Desk"}


def test_template_has_operation_header():
    assert template_csv("move") == "username,org\r\n"
    assert template_csv("upsert").startswith("username,email,first_name,last_name,password,org,roles")
