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


# --- Every error the parser reports, asserted whole: line, column, code and message ------------------
# Line-numbered, plainly worded errors are what bulk upload promises; these tests pin each one so a
# changed line number or a garbled message fails (mutation testing of parser.py found them unasserted).

def only_error(parsed) -> tuple[int, str | None, str, str]:
    assert len(parsed.errors) == 1, parsed.errors
    error = parsed.errors[0]
    return (error.line, error.column, error.code, error.message)


def test_fatal_error_clears_rows_and_earlier_row_errors():
    data = "username\n alice\n" + "".join(f"user{i}\n" for i in range(3))
    parsed = parse(data, max_rows=3)
    assert parsed.fatal and parsed.rows == []
    assert only_error(parsed) == (5, None, "too_many_rows",
                                  "The file has more than 3 rows, the limit. Split it into smaller files.")


def test_too_many_rows_message_groups_thousands_and_counts_physical_lines():
    data = "username\n\n" + "".join(f"user{i}\n" for i in range(1001))
    parsed = parse(data, max_rows=1000)
    assert only_error(parsed) == (1003, None, "too_many_rows",
                                  "The file has more than 1,000 rows, the limit. Split it into smaller files.")


def test_empty_header_line():
    assert only_error(parse(",,\nalice\n")) == (
        1, None, "missing_header",
        "The first line is empty: it must name the columns, e.g. username,email,first_name,last_name.")
    assert only_error(parse(",\nalice,Sales\n", operation="move")) == (
        1, None, "missing_header", "The first line is empty: it must name the columns, e.g. username,org.")


def test_header_naming_no_column_quotes_the_first_80_characters():
    assert only_error(parse("alice,alice@example.com\n")) == (
        1, None, "missing_header",
        "The first line ('alice,alice@example.com') does not name any column. "
        "Add a header line first, e.g. username,email,first_name,last_name.")
    long = "x" * 100
    message = only_error(parse(f"{long}\nalice\n"))[3]
    assert message.startswith(f"The first line ({'x' * 80!r}) does not name")


def test_role_column_counts_as_a_header_even_where_the_operation_does_not_use_it():
    assert only_error(parse("role\nHelp Desk\n", operation="add-roles")) == (
        1, "username", "missing_username_column",
        "The header has no 'username' column (needed by the add-roles operation).")
    assert only_error(parse("username,role\nalice,x\n")) == (
        1, "role", "unknown_column",
        "Unknown column 'role' for the upsert operation. "
        "Columns: username, email, first_name, last_name, password, org, roles, notes, state.")


def test_unnamed_header_column_names_its_position():
    assert only_error(parse("username,,email\nalice,x,a@example.com\n")) == (
        1, None, "empty_column_name", "Column 2 of the header has no name.")
    assert only_error(parse("username, \nalice,x\n"))[:3] == (1, None, "empty_column_name")


def test_duplicate_column_names_both_positions():
    assert only_error(parse("username,Email,email\nalice,a@example.com,b@example.com\n")) == (
        1, "email", "duplicate_column", "The column 'email' appears twice in the header (columns 2 and 3).")
    assert only_error(parse("mail,username,e-mail\nx,alice,y\n"))[3] == (
        "The column 'email' appears twice in the header (columns 1 and 3).")


def test_unknown_column_is_reported_as_typed():
    assert only_error(parse("username, Emial \nalice,a@example.com\n")) == (
        1, "Emial", "unknown_column",
        "Unknown column 'Emial' for the upsert operation. "
        "Columns: username, email, first_name, last_name, password, org, roles, notes, state.")
    assert only_error(parse("username,email\nalice,a@example.com\n", operation="deactivate")) == (
        1, "email", "unknown_column", "Unknown column 'email' for the deactivate operation. Columns: username.")


def test_missing_required_column_names_the_first_missing():
    assert only_error(parse("email,first_name\na@example.com,A\n")) == (
        1, "username", "missing_username_column",
        "The header has no 'username' column (needed by the upsert operation).")
    assert only_error(parse("username\nalice\n", operation="move")) == (
        1, "org", "missing_org_column", "The header has no 'org' column (needed by the move operation).")
    assert only_error(parse("org\nSales\n", operation="move"))[:3] == (1, "username", "missing_username_column")


def test_field_count_errors_carry_their_messages():
    parsed = parse("username,email\nalice,a@example.com,extra\nbob\n")
    assert [e.as_dict() for e in parsed.errors] == [
        {"line": 2, "column": None, "code": "too_many_fields",
         "message": "This line has 3 fields; the header has 2. Quote values that contain the delimiter."},
        {"line": 3, "column": None, "code": "too_few_fields",
         "message": "This line has 1 fields; the header has 2. Add the missing fields (they may be empty)."},
    ]
    assert parsed.rows == []  # rows with the wrong field count are never kept


def test_line_numbers_follow_multiline_records_and_blank_lines():
    parsed = parse('username,notes\n\nalice,"one\ntwo\nthree"\n\n\nbob,x,y\ncarol ,z\n')
    assert codes(parsed) == [(8, None, "too_many_fields"), (9, "username", "spaces")]
    assert [r.line for r in parsed.rows] == [3, 9]
    assert parsed.error_lines() == {8, 9}
    assert [r.line for r in parsed.valid_rows()] == [3]


def test_spaces_error_names_the_column_and_keeps_the_row_for_the_report():
    parsed = parse("username,email,password\nalice,a@example.com , secret \n")
    assert only_error(parsed) == (2, "email", "spaces", "Remove the leading or trailing spaces from email.")
    assert parsed.rows[0].cells == {"username": "alice", "email": "a@example.com ", "password": " secret "}
    assert parsed.valid_rows() == []


def test_password_is_never_unescaped_but_other_cells_are():
    parsed = parse("username,password,first_name\nalice,'=secret,'+Al\n")
    assert parsed.rows[0].cells == {"username": "alice", "password": "'=secret", "first_name": "+Al"}


def test_file_too_large_by_declared_size():
    parsed = parse_upload(io.BytesIO(b"username\nalice\n"), size=60 * 1048576, max_bytes=50 * 1048576)
    assert only_error(parsed) == (0, None, "file_too_large",
                                  "The file is 60.0 MB; the limit is 50 MB. Split it into smaller files.")
    exact = b"username\nalice\n"
    assert not parse_upload(io.BytesIO(exact), size=len(exact), max_bytes=len(exact)).fatal


def test_file_too_large_found_while_reading():
    data = ("username\n" + ("u" * 999 + "\n") * 1100).encode()
    parsed = parse_upload(io.BytesIO(data), size=None, max_bytes=1048576)
    assert only_error(parsed) == (0, None, "file_too_large", "The file is larger than 1 MB, the limit.")


def test_file_too_large_inside_an_open_quote_is_not_a_quoting_error():
    data = ('username,notes\nalice,"' + "x" * 1_100_000).encode()
    parsed = parse_upload(io.BytesIO(data), size=None, max_bytes=1048576)
    assert only_error(parsed) == (0, None, "file_too_large", "The file is larger than 1 MB, the limit.")


def test_file_of_exactly_the_limit_is_read_whole():
    data = b"username\n" + b"u\n" * 100
    parsed = parse_upload(io.BytesIO(data), size=None, max_bytes=len(data))
    assert not parsed.fatal and len(parsed.rows) == 100


def test_empty_file_message():
    assert only_error(parse(b"\xef\xbb\xbf \r\n\t")) == (
        0, None, "empty_file", "The file is empty. Add a header line and one line per user.")


def test_zip_archive_is_named():
    assert only_error(parse(b"PK\x03\x04" + b"\x14\x00" * 20)) == (
        0, None, "binary_file", 'This is a ZIP archive (an Excel .xlsx workbook is one), not a text file. '
        'Save the sheet as "CSV UTF-8" and upload that.')


def test_nul_bytes_at_the_start_are_a_binary_file():
    assert only_error(parse(b"username\x00\x00\x00\x00\nalice\n")) == (
        0, None, "binary_file",
        "This is not a text file (it contains NUL bytes). Save the users as CSV (UTF-8) and upload that.")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_or_without_bom_is_named(encoding):
    assert only_error(parse("username,email\nalice,a@example.com\n".encode(encoding))) == (
        1, None, "not_utf8", "The file is UTF-16, not UTF-8. Save it as UTF-8 and upload it again.")


def test_nul_bytes_after_the_first_block_name_their_line():
    head = "username\n" + "".join(f"user{i:05d}\n" for i in range(1000))  # 10,009 bytes, lines 1-1001
    parsed = parse(head.encode() + b"bad\x00name\n")
    assert only_error(parsed) == (
        1002, None, "binary_file",
        "Line 1002 contains NUL bytes: this is not a text file. Save the users as CSV (UTF-8) and upload that.")


def test_not_utf8_message_names_the_line_and_a_likely_encoding():
    parsed = parse("username,first_name\nalice,Al\nbob,Jos\u00e9\n".encode("cp1252"))
    assert only_error(parsed) == (
        3, None, "not_utf8", 'Line 3 is not UTF-8; it looks like Windows-1252/Latin-1. '
        'Save the file as UTF-8 (in Excel: "CSV UTF-8") and upload it again.')
    # 0x81 is not a cp1252 character: then it is most likely Latin-1.
    assert "it looks like Latin-1 (ISO-8859-1)." in only_error(parse(b"username\nbob\x81\n"))[3]
    assert only_error(parse(b"usern\xe4me\nbob\n"))[:3] == (1, None, "not_utf8")


def test_guess_encoding_and_utf16_detection():
    from accounts.bulk_upload.parser import _looks_utf16, guess_encoding

    assert guess_encoding(b"\xff\xfeu\x00") == "UTF-16"
    assert guess_encoding(b"\xfe\xff\x00u") == "UTF-16"
    assert guess_encoding(b"Jos\xe9") == "Windows-1252/Latin-1"
    assert guess_encoding(b"\x81\x8d") == "Latin-1 (ISO-8859-1)"
    assert _looks_utf16(b"") is False
    assert _looks_utf16(b"a\x00" * 50) is True and _looks_utf16(b"\x00a" * 50) is True
    assert _looks_utf16(b"\x00\x00" * 50) is False  # NULs everywhere: a binary file, not UTF-16
    assert _looks_utf16(b"ab" * 50) is False


@pytest.mark.parametrize("zeros_in_half,zeros_in_other,expected", [
    (91, 0, True), (90, 0, False),   # more than 90 % of one half must be NUL
    (100, 9, True), (100, 10, False),  # and fewer than 10 % of the other
])
def test_utf16_detection_thresholds(zeros_in_half, zeros_in_other, expected):
    from accounts.bulk_upload.parser import _looks_utf16

    even = bytes([ord("a")] * (100 - zeros_in_other) + [0] * zeros_in_other)
    odd = bytes([0] * zeros_in_half + [ord("b")] * (100 - zeros_in_half))
    sample = bytes(b for pair in zip(even, odd, strict=True) for b in pair)
    assert _looks_utf16(sample) is expected


def test_utf16_detection_looks_at_the_first_4096_bytes_only():
    from accounts.bulk_upload.parser import _looks_utf16

    assert _looks_utf16(b"a\x00" * 2048 + b"ab" * 5000) is True
    assert _looks_utf16(b"ab" * 2048 + b"a\x00" * 5000) is False


def test_quoting_errors_name_the_line_the_record_starts_on():
    assert only_error(parse('username,notes\nbob,ok\nalice,"never closed\ncarol,x\n')) == (
        3, None, "bad_quoting", "Line 3: a quoted field is never closed. Check the quotes on this line.")
    assert only_error(parse('username,notes\nalice,"a"b\n')) == (
        2, None, "bad_quoting", "Line 2: ',' expected after '\"'. Check the quotes on this line.")


def test_overlong_quoted_field_is_explained():
    parsed = parse('username,notes\nalice,"' + "x" * 200_000 + "\n")
    assert only_error(parsed) == (
        2, None, "bad_quoting",
        "Line 2: a field is too long (a quote may be missing its closing quote). Check the quotes on this line.")


def test_header_only_file():
    assert only_error(parse("username,email\n\n,\n")) == (2, None, "no_rows", "The file has a header but no users.")


@pytest.mark.parametrize("header,expected", [
    ("username", ","), ("username;email;x,y", ";"), ("a\tb\tc;d,e", "\t"), ("a,b;c", ","),
])
def test_detect_delimiter(header, expected):
    from accounts.bulk_upload.parser import detect_delimiter

    assert detect_delimiter(header) == expected


@pytest.mark.parametrize("raw,expected", [
    ("  Email Address ", "email"), ("E-Mail", "email"), ("First  Name", "first_name"), ("family-name", "last_name"),
    ("ORG_ID", "org"), ("Role Name", "role"), ("notes", "notes"),
])
def test_normalise_column(raw, expected):
    from accounts.bulk_upload.parser import normalise_column

    assert normalise_column(raw) == expected


def test_delimiter_name_and_error_dict():
    from accounts.bulk_upload.parser import ParsedUpload, UploadError

    assert ParsedUpload(operation="upsert", delimiter="|").delimiter_name == "'|'"
    assert parse("username;email\nalice;a@example.com\n").delimiter_name == "semicolon"
    assert UploadError(4, "email", "spaces", "m").as_dict() == {"line": 4, "column": "email", "code": "spaces",
                                                                "message": "m"}


def test_unknown_operation_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown operation 'drop'"):
        parse("username\nalice\n", operation="drop")


@pytest.mark.parametrize("operation,header", [
    ("upsert", "username,email,first_name,last_name,password,org,roles,notes,state\r\n"),
    ("move", "username,org\r\n"), ("deactivate", "username\r\n"), ("reactivate", "username\r\n"),
    ("add-roles", "username,role\r\n"), ("remove-roles", "username,role\r\n"),
])
def test_every_template_parses_as_its_own_header(operation, header):
    assert template_csv(operation) == header
    parsed = parse(header + ",".join(["x"] * (header.count(",") + 1)) + "\r\n", operation=operation)
    assert not parsed.fatal and parsed.errors == []
