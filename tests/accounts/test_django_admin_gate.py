"""/django-admin/: visitors go to the console sign-in, signed-in non-staff get one clear 403 (no loop)."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_signed_in_non_staff_gets_403_not_a_redirect_loop(client, directory):
    client.force_login(directory.admin)  # a Cloud Admin in the console, but not Django staff
    response = client.get("/django-admin/", follow=True)
    assert response.status_code == 403
    assert len(response.redirect_chain) == 1
    assert response.redirect_chain[0][0].startswith("/django-admin/login/")
    html = response.content.decode()
    assert 'data-reason="django_admin_staff_only"' in html
    assert "Django staff" in html


def test_visitor_goes_to_console_sign_in_with_next(client, db):
    response = client.get("/django-admin/login/?next=/django-admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert response["Location"] == "/sign-in/?next=/django-admin/"


def test_staff_user_is_sent_to_the_admin_index(client, db):
    from django.contrib.auth.models import User

    # Staff come from ``manage.py createsuperuser`` (server operators), not from the console.
    staff = User.objects.create_superuser("staffer", "staff@example.com", "Correct-Horse-42")
    client.force_login(staff)
    response = client.get("/django-admin/login/")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert client.get("/django-admin/").status_code == 200


def test_403_is_logged_as_one_line(client, directory, caplog):
    client.force_login(directory.auditor)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(reverse("accounts:user_list")).status_code == 403
    records = [r for r in caplog.records if r.name == "django.request" and getattr(r, "status_code", 0) == 403]
    assert len(records) == 1
    record = records[0]
    assert record.exc_info is None and record.exc_text is None
    line = logging.getLogger().handlers[0].format(record)
    assert "\n" not in line
    assert "Forbidden" in line and reverse("accounts:user_list") in line
    assert "Traceback" not in caplog.text
