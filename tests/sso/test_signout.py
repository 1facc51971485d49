"""Issue 7 §5: sign-out changes state only on POST (logout CSRF); a GET shows a confirmation page.

The IdP's own SLO endpoint (``/sso/<id>/slo/``) is a protocol endpoint and keeps GET (HTTP-Redirect
binding): see test_slo.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client


def _signed_in_by_sso(client, provider, idp, sso_user):
    from tests.sso.conftest import AcsDriver

    assert AcsDriver(client, provider, idp).login().status_code == 302
    assert SESSION_KEY in client.session


@pytest.mark.parametrize("url", ["/sso/signout/", "/sso/{pk}/logout/"])
def test_get_shows_a_confirmation_and_keeps_the_session(url, provider, idp, sso_user):
    client = Client()
    _signed_in_by_sso(client, provider, idp, sso_user)
    target = url.format(pk=provider.pk)
    resp = client.get(target)
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "data-signout-confirm" in body
    assert f'<form method="post" action="{target}">' in body and 'name="csrfmiddlewaretoken"' in body
    assert SESSION_KEY in client.session
    assert "SAMLRequest" not in body and not resp.has_header("Location")


@pytest.mark.parametrize("url", ["/sso/signout/", "/sso/{pk}/logout/"])
def test_post_without_csrf_token_is_refused(url, provider, idp, sso_user):
    client = Client(enforce_csrf_checks=True)
    _signed_in_by_sso(client, provider, idp, sso_user)
    resp = client.post(url.format(pk=provider.pk))
    assert resp.status_code == 403
    assert SESSION_KEY in client.session


def test_post_with_csrf_token_goes_straight_to_the_idp(provider, idp, sso_user):
    client = Client(enforce_csrf_checks=True)
    _signed_in_by_sso(client, provider, idp, sso_user)
    page = client.get("/sso/signout/")
    token = page.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    resp = client.post("/sso/signout/", {"csrfmiddlewaretoken": token})
    assert resp.status_code == 302
    assert resp["Location"].startswith("https://idp.example.test/slo?SAMLRequest=")
    assert SESSION_KEY not in client.session


def test_post_on_provider_logout_signs_out(provider, idp, sso_user):
    client = Client()
    _signed_in_by_sso(client, provider, idp, sso_user)
    resp = client.post(f"/sso/{provider.pk}/logout/")
    assert resp.status_code == 302 and resp["Location"].startswith("https://idp.example.test/slo?")
    assert SESSION_KEY not in client.session


def test_local_sign_out_is_post_only_too(client, user_factory):
    from tests.conftest import TEST_PASSWORD

    user_factory("bob")
    assert client.post("/sso/signin/", {"username": "bob", "password": TEST_PASSWORD}).status_code == 302
    assert client.get("/sso/signout/").status_code == 200 and SESSION_KEY in client.session
    resp = client.post("/sso/signout/")
    assert resp.status_code == 302 and SESSION_KEY not in client.session


def test_signed_out_visitor_get_goes_to_sign_in(db, provider):
    for url in ("/sso/signout/", f"/sso/{provider.pk}/logout/"):
        resp = Client().get(url)
        assert resp.status_code == 302 and resp["Location"] == "/sign-in/"


def test_console_sign_out_button_is_a_post_form(admin_client):
    body = admin_client.get("/").content.decode()
    assert '<form method="post" action="/sso/signout/">' in body
    assert 'href="/sso/signout/"' not in body and "/logout/\"" not in body
