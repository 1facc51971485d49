"""Client addresses behind proxies (issue 7 §3): exactly IDM_TRUSTED_PROXIES are trusted, from the right
of X-Forwarded-For; garbage never becomes the address, never a 500, and the throttle cannot be dodged."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from accounts.client_ip import client_address, parse_address
from accounts.models import AuditEvent
from tests.conftest import TEST_PASSWORD


@pytest.mark.parametrize(("value", "expected"), [
    ("203.0.113.7", "203.0.113.7"),
    (" 203.0.113.7 ", "203.0.113.7"),
    ("203.0.113.7:5123", "203.0.113.7"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:0::1", "2001:db8::1"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("::ffff:198.51.100.4", "198.51.100.4"),
    ("unknown", None),
    ("", None),
    (None, None),
    ("<script>", None),
    ("999.1.1.1", None),
    ("1.2.3.4.5", None),
    ("[2001:db8::1", None),
    ("203.0.113.7; DROP TABLE", None),
    ("\x00", None),
])
def test_parse_address(value, expected):
    assert parse_address(value) == expected


@pytest.mark.parametrize(("header", "proxies", "expected"), [
    # No proxy trusted: the header is ignored whatever it says.
    ("198.51.100.1", 0, "10.0.0.1"),
    ("198.51.100.1, 198.51.100.2", 0, "10.0.0.1"),
    # One proxy (REMOTE_ADDR): the right-most entry is what it saw; spoofed entries to its left are ignored.
    ("198.51.100.1", 1, "198.51.100.1"),
    ("6.6.6.6, 198.51.100.1", 1, "198.51.100.1"),
    ("garbage, 198.51.100.1", 1, "198.51.100.1"),
    ("198.51.100.1:4711", 1, "198.51.100.1"),
    # Two proxies: the second from the right.
    ("6.6.6.6, 198.51.100.1, 192.0.2.9", 2, "198.51.100.1"),
    ("198.51.100.1,192.0.2.9", 2, "198.51.100.1"),
    # Too few entries for the configured chain, an empty header or garbage where the address must be.
    ("192.0.2.9", 2, "10.0.0.1"),
    ("", 1, "10.0.0.1"),
    (None, 1, "10.0.0.1"),
    ("not-an-ip", 1, "10.0.0.1"),
    ("198.51.100.1, ", 1, "10.0.0.1"),
    ("1.1.1.1, 2.2.2.2, <x>", 1, "10.0.0.1"),
])
def test_client_address(header, proxies, expected):
    assert client_address(remote_addr="10.0.0.1", forwarded_for=header, trusted_proxies=proxies) == expected


def test_non_text_values_are_not_addresses():
    assert parse_address(123) is None and parse_address(b"1.2.3.4") is None


def test_bad_peer_address_gives_none():
    assert client_address(remote_addr="unix:/run/gunicorn.sock", forwarded_for=None, trusted_proxies=0) is None
    assert client_address(remote_addr="bad", forwarded_for="also bad", trusted_proxies=1) is None


def test_huge_header_reads_only_its_right_end():
    header = ",".join(["6.6.6.6"] * 5000) + ", 198.51.100.1"
    assert client_address(remote_addr="10.0.0.1", forwarded_for=header, trusted_proxies=1) == "198.51.100.1"
    # The kept right end starts inside an entry: that fragment is dropped, the rest still counts.
    assert client_address(remote_addr="10.0.0.1", forwarded_for="1" * 5000 + ",198.51.100.1,192.0.2.9",
                          trusted_proxies=2) == "198.51.100.1"
    # Exactly at the limit nothing is cut.
    exact = "198.51.100.1," + "1" * (4096 - len("198.51.100.1,") - len(",192.0.2.9")) + ",192.0.2.9"
    assert len(exact) == 4096
    assert client_address(remote_addr="10.0.0.1", forwarded_for=exact, trusted_proxies=3) == "198.51.100.1"
    cut_inside_entry = "1" * 5000 + ",198.51.100.1"
    assert client_address(remote_addr="10.0.0.1", forwarded_for=cut_inside_entry,
                          trusted_proxies=2) == "10.0.0.1"


@pytest.fixture
def limits(settings):
    # Deployed behind a TLS proxy (IDM_BEHIND_PROXY): the old code then read X-Forwarded-For blindly.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.IDM_SIGNIN_MAX_FAILURES = 3
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 5
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 60
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(client, username, password, xff=None, remote="10.0.0.1"):
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("proxies", [0, 1, 2])
@pytest.mark.parametrize("xff", ["garbage", "999.999.999.999", "<svg>, javascript:1", "a" * 300, ",,,", "\u00e9"])
def test_garbage_header_never_fails_sign_in_and_the_failure_counts(client, user_factory, settings, limits,
                                                                   proxies, xff):
    settings.IDM_TRUSTED_PROXIES = proxies
    user_factory("victim")
    response = sign_in(client, "victim", "Wrong-Pass-123", xff=xff)
    assert response.status_code == 400
    event = AuditEvent.objects.get(action="auth.login_failed", target_label="victim")
    assert event.ip_address == "10.0.0.1"  # fell back to the peer address
    for _ in range(2):
        sign_in(client, "victim", "Wrong-Pass-123", xff=xff)
    assert sign_in(client, "victim", TEST_PASSWORD, xff=xff).status_code == 429  # every failure was counted


@pytest.mark.django_db
def test_spoofed_left_entries_do_not_dodge_the_address_limit(client, user_factory, settings, limits):
    settings.IDM_TRUSTED_PROXIES = 1
    user_factory("target")
    # The proxy (REMOTE_ADDR 10.0.0.1) appends the real client 198.51.100.7; the client varies the rest.
    for i in range(5):
        sign_in(client, f"spray{i}", "Wrong-Pass-123", xff=f"203.0.113.{i}, 198.51.100.7")
    response = sign_in(client, "target", TEST_PASSWORD, xff="203.0.113.99, 198.51.100.7")
    assert response.status_code == 429
    assert set(AuditEvent.objects.filter(action="auth.login_failed").values_list("ip_address", flat=True)) == {
        "198.51.100.7"}
    # Another real client behind the same proxy is not affected.
    assert sign_in(client, "target", TEST_PASSWORD, xff="198.51.100.8").status_code == 302


@pytest.mark.django_db
def test_without_trusted_proxies_the_header_cannot_pick_the_address(client, user_factory, settings, limits):
    settings.IDM_TRUSTED_PROXIES = 0
    user_factory("target")
    for i in range(5):
        sign_in(client, f"spray{i}", "Wrong-Pass-123", xff=f"203.0.113.{i}")
    assert sign_in(client, "target", TEST_PASSWORD, xff="198.51.100.200").status_code == 429
    assert set(AuditEvent.objects.filter(action="auth.login_failed").values_list("ip_address", flat=True)) == {
        "10.0.0.1"}


@pytest.mark.django_db
def test_multi_hop_chain_records_the_client(client, user_factory, settings, limits):
    settings.IDM_TRUSTED_PROXIES = 2
    user = user_factory("alice")
    response = sign_in(client, "alice", TEST_PASSWORD, xff="6.6.6.6, 198.51.100.7, 192.0.2.10", remote="10.0.0.2")
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="auth.login_succeeded", target_id=str(user.pk))
    assert event.ip_address == "198.51.100.7"


def test_checks_warn_about_a_proxy_without_trusted_proxies(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.IDM_TRUSTED_PROXIES = 0
    from accounts.checks import check_trusted_proxies

    assert [m.id for m in check_trusted_proxies(None)] == ["idm.W020"]
    settings.IDM_TRUSTED_PROXIES = 1
    assert check_trusted_proxies(None) == []
    settings.IDM_TRUSTED_PROXIES = -1
    with pytest.raises(SystemCheckError, match="IDM_TRUSTED_PROXIES"):
        call_command("check")
