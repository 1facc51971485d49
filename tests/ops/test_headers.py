"""Security headers on every console page, and no inline script/style/handler the CSP would block."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.accounts.bulk_support import media  # noqa: F401
from tests.accounts.console_support import directory, fast_hasher, role_personas  # noqa: F401
from tests.accounts.test_robustness import targets, world  # noqa: F401

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.I)


def assert_headers(response, label: str) -> None:
    csp = response.get("Content-Security-Policy", "")
    assert csp, f"{label}: no CSP"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, label
    assert "script-src 'self'" in csp and "style-src 'self'" in csp, label
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, label
    assert response["X-Frame-Options"] == "DENY", label
    assert response["Referrer-Policy"] == "same-origin", label
    assert response["X-Content-Type-Options"] == "nosniff", label


def assert_no_inline(body: str, label: str) -> None:
    for name, pattern in (("inline script", INLINE_SCRIPT), ("inline style", INLINE_STYLE),
                          ("event handler attribute", INLINE_HANDLER), ("javascript: URL", JS_URL)):
        match = pattern.search(body)
        assert match is None, f"{label}: {name}: {body[max(match.start() - 60, 0):match.end() + 60] if match else ''}"


def sso_console_urls() -> list[str]:
    """The SSO console pages without path parameters (provider pages are covered by the sso tests' data)."""
    out = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in ("sso", "ops"):
            for pattern in entry.url_patterns:
                if isinstance(pattern, URLPattern) and not pattern.pattern.converters:
                    out.append(reverse(f"{entry.namespace}:{pattern.name}"))
    return out


def test_every_console_page_sends_security_headers_and_no_inline_code(world):  # noqa: F811
    client = Client(raise_request_exception=False)
    client.force_login(world.personas["cloud_admin"])
    pages = [t.url for t in targets(world) if t.exists] + sso_console_urls()
    assert len(pages) > 40
    seen_ok = 0
    for url in pages:
        response = client.get(url)
        assert_headers(response, url)
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            assert_no_inline(response.content.decode(), url)
            seen_ok += 1
    assert seen_ok >= 20, seen_ok  # every HTML page a Cloud Admin can open


def test_anonymous_sign_in_and_error_pages_send_headers():
    client = Client(raise_request_exception=False)
    for url in (reverse("accounts:login"), "/no-such-page/", reverse("accounts:user_list")):
        response = client.get(url)
        assert_headers(response, url)
        if response.status_code in (200, 404):
            assert_no_inline(response.content.decode(), url)


def test_server_error_page_has_no_inline_style(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert_no_inline(response.content.decode(), "500.html")
    assert "console.css" in response.content.decode()


def test_hsts_only_over_https(settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    client = Client()
    plain = client.get(reverse("accounts:login"))
    assert "Strict-Transport-Security" not in plain
    secure = client.get(reverse("accounts:login"), secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


def test_org_tree_indents_with_classes_not_styles(world):  # noqa: F811
    client = Client()
    client.force_login(world.personas["cloud_admin"])
    body = client.get(reverse("accounts:org_list")).content.decode()
    assert 'class="tree-node indent-0"' in body and 'class="tree-node indent-1"' in body
    assert 'class="tree-node indent-2"' in body  # Acme > Engineering > Platform
