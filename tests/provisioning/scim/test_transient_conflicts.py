"""A SCIM write that PostgreSQL aborts as a deadlock victim is tried again, not answered with a 500
(``provisioning.scim.views._retrying_transient``).

The deadlock is a real one: a second session and the request lock two rows in opposite orders, and
PostgreSQL's deadlock detector picks the request (it waited first) as the victim."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from accounts.identity.types import Actor
from provisioning.scim import providers
from provisioning.scim import views as scim_views

pytestmark = pytest.mark.django_db(transaction=True)


def _lock(pk: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [pk])


def _other_session_url() -> str:
    settings = connection.settings_dict
    return (f"host={settings['HOST'] or '127.0.0.1'} port={settings['PORT'] or 5432} dbname={settings['NAME']} "
            f"user={settings['USER']}" + (f" password={settings['PASSWORD']}" if settings["PASSWORD"] else ""))


@pytest.fixture
def two_users(root_org):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a real deadlock between two sessions")
    return (User.objects.create(username="first.row").pk, User.objects.create(username="second.row").pk)


def _request():
    token = providers.provider_create(actor=Actor.system("tests"), name="Okta").token
    return RequestFactory().patch("/scim/v2/Groups/x", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_deadlock_victim_is_tried_again_and_succeeds(two_users):
    first, second = two_users
    other_has_first, request_waits = threading.Event(), threading.Event()
    other_error: list[BaseException] = []

    def other_session() -> None:
        try:
            with psycopg.connect(_other_session_url()) as other, other.cursor() as cursor:
                cursor.execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [first])
                other_has_first.set()
                request_waits.wait(10)
                time.sleep(0.2)  # the request is now waiting for `first`: close the cycle
                cursor.execute("SELECT id FROM auth_user WHERE id = %s FOR UPDATE", [second])
                other.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            other_error.append(exc)

    attempts: list[int] = []

    def write(request) -> HttpResponse:
        attempts.append(len(attempts) + 1)
        with transaction.atomic():
            _lock(second)
            if len(attempts) == 1:
                request_waits.set()
            _lock(first)  # the first attempt waits for the other session, which then waits for us
        return HttpResponse(status=204)

    thread = threading.Thread(target=other_session)
    thread.start()
    assert other_has_first.wait(10)
    response = scim_views.scim_endpoint(write)(_request())
    thread.join(20)
    assert not other_error, other_error
    assert response.status_code == 204
    assert attempts == [1, 2]  # the first attempt was the deadlock victim, the second went through


def test_a_conflict_that_persists_is_a_503_with_retry_after_never_a_500(two_users, monkeypatch):
    from django.db import OperationalError

    class Deadlock(Exception):
        sqlstate = "40P01"

    calls: list[int] = []

    def always_deadlocked(request) -> HttpResponse:
        calls.append(1)
        try:
            raise Deadlock("deadlock detected")
        except Deadlock as cause:
            raise OperationalError("deadlock detected") from cause

    monkeypatch.setattr(scim_views.time, "sleep", lambda seconds: None)
    response = scim_views.scim_endpoint(always_deadlocked)(_request())
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert response["Content-Type"].startswith("application/scim+json")
    assert len(calls) == scim_views.TRANSIENT_ATTEMPTS


def test_other_database_errors_are_not_retried(two_users):
    from django.db import OperationalError

    calls: list[int] = []

    def broken(request) -> HttpResponse:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    response = scim_views.scim_endpoint(broken)(_request())
    assert response.status_code == 500 and calls == [1]
