"""``accounts.redirects.local_path``: the one check every redirect target from a request or a
session passes (review 3, M1)."""

from __future__ import annotations

import pytest

from accounts.redirects import local_path

DEFAULT = "/home/"


@pytest.mark.parametrize("value", [
    "/", "/users/", "/users/?q=a%20b&page=2", "/orgs/5/#top", "/a%2Fb/", "/%C3%A9t%C3%A9/",
])
def test_paths_on_this_site_are_kept(value):
    assert local_path(value, DEFAULT) == value


@pytest.mark.parametrize("value", [
    None, "", 42, "users/", "http://evil.example/", "https://evil.example/x", "//evil.example",
    "///evil.example", "/\\evil.example", "/\\\\evil.example", "\\\\evil.example",
    "/%2F%2Fevil.example/phish", "/%2f%2fevil.example", "/%5Cevil.example", "/%2F%5Cevil.example",
    "/ok\\..\\x", "/\x00", "/a\nb", "/a%0Ab", "/a\tb", "/a%09b", "/\x7f", "javascript:alert(1)",
])
def test_anything_a_browser_could_read_as_another_host_is_refused(value):
    assert local_path(value, DEFAULT) == DEFAULT
