"""Review 2026-11-30 F3: the stored bind password only goes where it was saved for.

Changing the server URLs, bind DN or TLS settings needs the password entered again (console and
service); "Test connection" uses the saved settings; and a closed port and an open port that speaks
no LDAP read the same ("Could not connect"), so the test button is no port scanner. Against the real
slapd fixture and a local listener that records what a client sends it.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from django.urls import reverse

from accounts.exceptions import ValidationFailed
from accounts.identity.types import Actor
from provisioning.ldap.client import DirectoryClient, DirectoryConnection, DirectoryError
from provisioning.ldap.directories import DirectorySettings, directory_create, directory_update
from provisioning.ldap.secrets import decrypt_secret
from provisioning.models import Directory
from tests.directory_servers import free_port
from tests.provisioning.ldap.conftest import people_ldif

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingListener:
    """A TCP listener on 127.0.0.1 that keeps every byte a client sends. By default it reads
    what arrives and then closes; ``silent=True``: it never answers and keeps the socket open."""

    def __init__(self, *, silent: bool = False):
        self.silent = silent
        self.received = bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"ldap://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            try:
                self.received += conn.recv(65536)
            except OSError:
                pass
            if self.silent:
                self._open.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self.sock.close()


@pytest.fixture
def listener():
    server = RecordingListener()
    yield server
    server.close()


def _form(server, ou, **overrides) -> dict:
    data = {"name": "Corp LDAP", "urls": server.ldap_uri, "tls_mode": "none", "verify_tls": "on",
            "bind_dn": server.root_dn, "bind_password": server.root_pw, "base_dns": ou, "preset": "openldap",
            "user_filter": "", "group_filter": "", "attribute_map": "", "page_size": "500", "interval_hours": "12",
            "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50"}
    data.update(overrides)
    return data


def _settings(server, ou, **overrides) -> DirectorySettings:
    values = {"urls": (server.ldap_uri,), "base_dns": (ou,), "bind_dn": server.root_dn}
    values.update(overrides)
    return DirectorySettings(**values)


def test_repointing_the_url_without_the_password_is_refused_and_test_uses_the_saved_server(
        admin_client, slapd_server, ou, listener):
    slapd_server.ldapadd(people_ldif(ou, "amy"))
    admin_client.post(reverse("provisioning:directory_add"), _form(slapd_server, ou))
    directory = Directory.objects.get()
    edit = reverse("provisioning:directory_edit", args=[directory.source_id])

    response = admin_client.post(edit, _form(slapd_server, ou, urls=listener.url, bind_password=""))
    assert response.status_code == 200
    assert 'data-code="bind_password_required"' in response.content.decode()
    directory.refresh_from_db()
    assert directory.urls == [slapd_server.ldap_uri]

    probe = admin_client.post(reverse("provisioning:directory_test", args=[directory.source_id]))
    assert '<dd id="probe-users">1</dd>' in probe.content.decode()  # the saved server, slapd
    assert listener.received == b""
    assert slapd_server.root_pw.encode() not in bytes(listener.received)


def test_with_the_password_entered_again_the_new_server_gets_that_password(
        admin_client, slapd_server, ou, listener):
    admin_client.post(reverse("provisioning:directory_add"), _form(slapd_server, ou))
    directory = Directory.objects.get()
    response = admin_client.post(reverse("provisioning:directory_edit", args=[directory.source_id]),
                                 _form(slapd_server, ou, urls=listener.url, bind_password="typed-again"))
    assert response.status_code == 302
    probe = admin_client.post(reverse("provisioning:directory_test", args=[directory.source_id]))
    assert 'data-code="server_unreachable"' in probe.content.decode()
    assert b"typed-again" in bytes(listener.received)
    assert slapd_server.root_pw.encode() not in bytes(listener.received)


@pytest.mark.parametrize("change", [
    {"urls": ("ldap://127.0.0.1:1",)},
    {"bind_dn": "cn=someone-else,dc=example,dc=org"},
    {"tls_mode": "starttls"},
    {"ca_bundle": "(the test CA)"},  # a real certificate: a garbage PEM is refused (review N1)
    {"verify_tls": False},
])
def test_service_refuses_keeping_the_password_when_where_it_goes_changes(slapd_server, ou, test_pki, change):
    if "ca_bundle" in change:
        change = {"ca_bundle": Path(test_pki.ca_file).read_text()}
    actor = Actor.system("tests")
    directory = directory_create(actor=actor, name="Corp", data=_settings(slapd_server, ou),
                                 bind_password=slapd_server.root_pw)
    with pytest.raises(ValidationFailed) as info:
        directory_update(actor=actor, directory=directory, data=_settings(slapd_server, ou, **change))
    assert (info.value.code, info.value.field) == ("bind_password_required", "bind_password")
    assert next(iter(change)) in info.value.message
    directory.refresh_from_db()
    assert (directory.urls, directory.bind_dn, directory.tls_mode, directory.verify_tls) == (
        [slapd_server.ldap_uri], slapd_server.root_dn, "none", True)

    directory_update(actor=actor, directory=directory, data=_settings(slapd_server, ou, **change),
                     bind_password="new-secret")
    directory.refresh_from_db()
    assert decrypt_secret(directory.bind_password_encrypted) == "new-secret"


def test_service_keeps_the_password_for_other_changes(slapd_server, ou):
    actor = Actor.system("tests")
    directory = directory_create(actor=actor, name="Corp", data=_settings(slapd_server, ou),
                                 bind_password=slapd_server.root_pw)
    directory_update(actor=actor, directory=directory, data=_settings(slapd_server, ou, page_size=100,
                                                                      user_filter="(uid=*)"))
    directory.refresh_from_db()
    assert directory.page_size == 100
    assert decrypt_secret(directory.bind_password_encrypted) == slapd_server.root_pw


def _connect_error(url: str) -> DirectoryError:
    connection = DirectoryConnection(urls=(url,), bind_dn="cn=x", bind_password="pw", connect_timeout=2,
                                     operation_timeout=2)
    with pytest.raises(DirectoryError) as caught:
        DirectoryClient(connection).open()
    return caught.value


def test_closed_port_and_open_non_ldap_ports_read_the_same(slapd_server, listener):
    silent = RecordingListener(silent=True)
    try:
        closed_url = f"ldap://127.0.0.1:{free_port()}"
        errors = {name: _connect_error(url) for name, url in
                  [("closed", closed_url), ("closes", listener.url), ("silent", silent.url)]}
    finally:
        silent.close()
    texts = {name: (e.code, e.field, e.message.replace(url, "URL")) for (name, e), url in
             zip(errors.items(), (closed_url, listener.url, silent.url), strict=True)}
    assert set(texts.values()) == {("server_unreachable", "urls", "Could not connect to the directory server URL. "
                                    "Check the URL, the port and that the server is running.")}


def test_a_real_ldap_answer_is_still_reported_precisely(slapd_server):
    error = _connect_error(slapd_server.ldap_uri)
    assert error.code == "bind_failed"
