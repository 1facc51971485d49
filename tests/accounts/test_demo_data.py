"""The load_demo_data command: a living directory, loaded through the services, idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.access import Access
from accounts.identity.types import UserState
from accounts.models import AuditEvent, Organization

pytestmark = pytest.mark.django_db


def test_load_demo_data_builds_directory(fast_hasher):
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    assert "Loaded demo data" in out.getvalue()
    platform = Organization.objects.get(name="Platform")
    assert platform.full_name().endswith("Acme / Engineering / Platform")
    assert Organization.objects.get(name="Sales").parent.name == "Acme"
    assert User.objects.filter(profile__org__path__startswith=Organization.objects.get(name="Acme").path).count() == 20

    eng_admin = User.objects.get(username="eve.eng-admin")
    access = Access(eng_admin)
    assert access.can("manage_users", platform)
    assert not access.can("manage_users", Organization.objects.get(name="Sales"))
    assert Access(User.objects.get(username="oscar.auditor")).has("view_audit_log")
    assert User.objects.get(username="bob.blocked").profile.state == UserState.BLOCKED
    assert User.objects.get(username="ines.invited").profile.state == UserState.INVITED
    assert User.objects.get(username="dave.former").profile.state == UserState.DEACTIVATED
    # Written through the services: every change is audited as the demo system actor.
    assert AuditEvent.objects.filter(actor_label="demo", action="user.created").count() == 20
    assert AuditEvent.objects.filter(actor_label="demo", action="org.created").count() == 4


def test_load_demo_data_is_idempotent(fast_hasher):
    call_command("load_demo_data", stdout=StringIO())
    users, events = User.objects.count(), AuditEvent.objects.count()
    out = StringIO()
    call_command("load_demo_data", stdout=out)
    assert "already loaded" in out.getvalue()
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)
