"""Review 3 L1: a live set-password token reaches no log.

- The emailed link carries the token in one request only: a valid token moves into the session and the
  browser goes on to ``.../set-password/`` (Django's ``PasswordResetConfirmView`` pattern), so the 400 a
  form error answers (logged by ``django.request``) and every later request line hold no token.
- The log filter and gunicorn's access log (``idm.gunicorn_logging.RedactingLogger``) replace a token
  in a path, and secret-looking query parameters, by ``[redacted]``.
- The SCIM request log: tests/provisioning/scim/test_request_log_secrets.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.credentials import service
from accounts.identity.types import Actor
from accounts.logging import RedactSecretsFilter, redact, redact_query
from idm.gunicorn_logging import RedactingLogger

pytestmark = pytest.mark.usefixtures("fast_hasher")

NEW_PASSWORD = "Brand-New-Pass-77"
LINK = re.compile(r"http://[^\s]+/(?:sign-in/reset|invitation)/[^\s]+/")


def _reset_path(client_admin, user) -> str:
    assert client_admin.post(reverse("accounts:user_reset_link", args=[user.pk])).status_code == 302
    return urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path


@pytest.fixture
def help_desk_client(user_factory, directory):
    client = Client()
    client.force_login(user_factory("helpdesk", org=directory.acme, roles=["help-desk"]))
    return client


def test_reset_link_moves_its_token_to_the_session_and_form_errors_log_no_token(
        help_desk_client, directory, caplog):
    path = _reset_path(help_desk_client, directory.eng_user)
    token = path.rstrip("/").rsplit("/", 1)[1]
    anon = Client()
    opened = anon.get(path)
    assert opened.status_code == 302
    form_url = opened["Location"]
    assert token not in form_url and form_url.endswith("/set-password/")
    page = anon.get(form_url)
    assert page.status_code == 200 and page.context["link_user"] == directory.eng_user

    with caplog.at_level(logging.WARNING, logger="django.request"):
        weak = anon.post(form_url, {"password1": "short", "password2": "short"})
    assert weak.status_code == 400
    assert caplog.records and all(token not in r.getMessage() for r in caplog.records)

    done = anon.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 200 and done.context["done"]
    directory.eng_user.refresh_from_db()
    assert directory.eng_user.check_password(NEW_PASSWORD)
    assert anon.get(form_url).status_code == 400  # the session's link is used up
    assert anon.get(path).status_code == 400


def test_form_url_without_an_opened_link_is_refused(help_desk_client, directory):
    path = _reset_path(help_desk_client, directory.eng_user)
    form_url = path.rsplit("/", 2)[0] + "/set-password/"
    stranger = Client()
    assert stranger.get(form_url).status_code == 400
    assert stranger.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 400
    directory.eng_user.refresh_from_db()
    assert not directory.eng_user.check_password(NEW_PASSWORD)
    # A session holding another user's link does not open this one.
    other = _reset_path(help_desk_client, directory.sales_user)
    stranger.get(other)
    assert stranger.get(form_url).status_code == 400


def test_link_expiring_after_it_was_opened_is_refused(help_desk_client, directory, monkeypatch):
    from accounts.credentials.tokens import reset_tokens

    anon = Client()
    form_url = anon.get(_reset_path(help_desk_client, directory.eng_user))["Location"]
    later = reset_tokens._now() + dt.timedelta(seconds=3601)
    monkeypatch.setattr(reset_tokens, "_now", lambda: later)
    assert anon.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 400


def test_invitation_link_follows_the_same_pattern(directory, user_factory):
    invited = user_factory("waiting", org=directory.acme, password=None)
    link, _ = service.invite(actor=Actor.for_user(directory.admin), user=invited, base_url="http://t", email=False)
    path = urlsplit(link).path
    anon = Client()
    form_url = anon.get(path)["Location"]
    assert form_url == reverse("accounts:invitation_accept", kwargs={"uidb64": path.split("/")[2],
                                                                    "token": "set-password"})
    # A reset form URL does not take the invitation out of the session.
    assert anon.get(form_url.replace("/invitation/", "/sign-in/reset/")).status_code == 400
    assert anon.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).context["done"]


def test_log_filter_redacts_a_token_in_a_path():
    token = "diuln7-c5f4819e7f0daa4a7a9d676f338bba41"
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Bad Request: %s",
                               (f"/sign-in/reset/MTE/{token}/",), None)
    RedactSecretsFilter().filter(record)
    assert token not in record.getMessage() and "/sign-in/reset/MTE/[redacted]/" in record.getMessage()
    assert token not in redact(f"GET /invitation/MjM/{token}/ HTTP/1.1")
    assert redact("Bad Request: /sign-in/reset/MTE/set-password/").endswith("/set-password/")


def test_redact_query_hides_secret_looking_parameters_only():
    url = "/scim/v2/Users?password=QueryS3cret&access_token=abc&apiKey=k1&filter=userName%20eq%20%22x%22&count=5"
    assert redact_query(url) == ("/scim/v2/Users?password=[redacted]&access_token=[redacted]&apiKey=[redacted]"
                                 "&filter=userName%20eq%20%22x%22&count=5")
    assert redact_query("/scim/v2/Users") == "/scim/v2/Users"
    assert redact_query("/x?client%5Fsecret=s&flag") == "/x?client%5Fsecret=[redacted]&flag"
    # Review 4, L3: one-time codes and bearer values too; the filter and paging stay readable.
    assert redact_query('/scim/v2/Users?code=123456&OTP=1&bearer=b&id_jwt=j&SAMLAssertion=a&nonce=n&ticket=t'
                        '&filter=userName eq "x"&startIndex=1') == (
        '/scim/v2/Users?code=[redacted]&OTP=[redacted]&bearer=[redacted]&id_jwt=[redacted]&SAMLAssertion=[redacted]'
        '&nonce=[redacted]&ticket=[redacted]&filter=userName eq "x"&startIndex=1')


def test_gunicorn_access_log_holds_no_token_or_secret_query_value():
    token = "diuln7-c5f4819e7f0daa4a7a9d676f338bba41"
    logger = RedactingLogger(SimpleNamespace(**{
        "errorlog": "-", "accesslog": None, "loglevel": "info", "syslog": False, "logconfig": None,
        "logconfig_dict": {}, "logconfig_json": None, "capture_output": False, "user": 0, "group": 0,
        "access_log_format": "", "umask": 0, "statsd_host": None, "dogstatsd_tags": "", "statsd_prefix": "",
        "disable_redirect_access_to_syslog": False, "syslog_addr": None, "syslog_facility": "user",
        "syslog_prefix": None, "enable_stdio_inheritance": False}))
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/sign-in/reset/MTE/{token}/?password=Hunter2x",
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": f"/sign-in/reset/MTE/{token}/",
               "QUERY_STRING": "password=Hunter2x&next=/", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_REFERER": f"https://idm.example/invitation/MjM/{token}/"}
    resp = SimpleNamespace(status="302 Found", sent=0, headers=[])
    req = SimpleNamespace(headers=[("REFERER", f"https://idm.example/invitation/MjM/{token}/")])
    atoms = logger.atoms(resp, req, environ, dt.timedelta(seconds=0))
    line = " ".join(str(v) for v in atoms.values())
    assert token not in line and "Hunter2x" not in line
    assert atoms["r"] == "GET /sign-in/reset/MTE/[redacted]/?password=[redacted] HTTP/1.1"
    assert atoms["q"] == "password=[redacted]&next=/"


@pytest.mark.parametrize("path", [
    "/sign-in/reset/O%51/{token}/",             # fourth review Info 1: an encoded uid
    "/sign-in/reset/MTE/{head}%2D{tail}/",      # an encoded token
    "/sign-in/%72eset/MTE/{token}/",            # an encoded prefix
    "/invitation/M%2556/{token}/",              # double encoding
    "/sign-in/reset/M~E/{token}/",              # a uid outside base64 still names the token
])
def test_percent_encoded_link_paths_are_redacted(path):
    token = "diuln7-c5f4819e7f0daa4a7a9d676f338bba41"
    head, tail = token.split("-")
    raw = path.format(token=token, head=head, tail=tail)
    line = redact(f"GET {raw}?next=/ HTTP/1.1")
    assert head not in line and tail not in line and "[redacted]" in line
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Bad Request: %s", (raw,), None)
    RedactSecretsFilter().filter(record)
    assert tail not in record.getMessage()
    # Encoded paths that are no link, and the form's own URL, stay as they were.
    assert redact("/sign-in/reset/O%51/set-password/") == "/sign-in/reset/O%51/set-password/"
    assert redact("/users/?q=a%20b") == "/users/?q=a%20b"


def test_gunicorn_access_log_redacts_a_percent_encoded_uid():
    """Info 1 as the reviewer sent it: the request line (RAW_URI) and PATH_INFO hold no token."""
    logger = RedactingLogger(SimpleNamespace(**{
        "errorlog": "-", "accesslog": None, "loglevel": "info", "syslog": False, "logconfig": None,
        "logconfig_dict": {}, "logconfig_json": None, "capture_output": False, "user": 0, "group": 0,
        "access_log_format": "", "umask": 0, "statsd_host": None, "dogstatsd_tags": "", "statsd_prefix": "",
        "disable_redirect_access_to_syslog": False, "syslog_addr": None, "syslog_facility": "user",
        "syslog_prefix": None, "enable_stdio_inheritance": False}))
    token = "diuln7-c5f4819e7f0daa4a7a9d676f338bba41"
    raw = f"/sign-in/reset/O%51/{token}/"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": raw, "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": f"/sign-in/reset/OQ/{token}/", "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1"}
    atoms = logger.atoms(SimpleNamespace(status="400 Bad Request", sent=0, headers=[]),
                         SimpleNamespace(headers=[]), environ, dt.timedelta(seconds=0))
    line = " ".join(str(v) for v in atoms.values())
    assert token not in line
    assert atoms["r"] == "GET /sign-in/reset/OQ/[redacted]/ HTTP/1.1"
