"""Second review N6: "Test connection" against a server that accepts the connection and never answers
gives up after the probe's cap, not the directory's 60 s operation timeout, so it cannot hold a web
worker for a minute. The silent server is a real TCP listener that accepts and stays quiet."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from accounts.identity.types import Actor
from provisioning.ldap.directories import DirectorySettings, directory_create
from provisioning.ldap.probe import PROBE_TIMEOUT_SECONDS, probe_directory

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that accepts connections and never sends a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_silent_server_is_reported_unreachable_within_the_probe_cap(root_org, silent_port):
    data = DirectorySettings(urls=(f"ldap://127.0.0.1:{silent_port}",), base_dns=("dc=example,dc=com",),
                             bind_dn="cn=admin,dc=example,dc=com", connect_timeout=30.0, operation_timeout=60.0)
    directory = directory_create(actor=Actor.system("tests"), name="Silent", data=data, bind_password="x",
                                 org=root_org)
    started = time.monotonic()
    report = probe_directory(directory)
    waited = time.monotonic() - started
    assert report.error_code == "server_unreachable", report.error
    assert report.users == 0 and report.sample == []
    # The directory's own timeouts (30 s / 60 s) would have held the worker a minute; the cap is 5 s.
    assert waited < 3 * PROBE_TIMEOUT_SECONDS, waited
    assert directory.operation_timeout == 60.0  # the sync keeps the directory's own timeout
