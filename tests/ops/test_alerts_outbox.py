"""Admin-role grants email every Customer Cloud Admin; without a mail server mail lands in the Outbox."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from ops.models import OutboxMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def admins(user_factory, org_factory, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    acme = org_factory("Acme")
    return {
        "cca1": user_factory("cca.one", org=acme, roles=["customer-cloud-admin"], email="one@example.com"),
        "cca2": user_factory("cca.two", org=acme, roles=["customer-cloud-admin"], email="two@example.com"),
        "blocked": user_factory("cca.gone", org=acme, roles=["customer-cloud-admin"], email="gone@example.com",
                                state="deactivated"),
        "helpdesk": user_factory("help.desk", org=acme, roles=["help-desk"], email="help@example.com"),
        "target": user_factory("new.admin", org=org_factory("Engineering", parent=acme)),
    }


def grant(user, roles, actor_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, roles_add=frozenset(roles)),
                              actor=Actor.for_user(actor_user))


def test_admin_role_grant_emails_every_active_cloud_admin(admins, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    grant(admins["target"], ["org-admin"], admins["cca1"], django_capture_on_commit_callbacks)
    assert sorted(m.to[0] for m in mail.outbox) == ["one@example.com", "two@example.com"]
    message = mail.outbox[0]
    assert message.subject == "idm: admin role granted"
    assert "- new.admin was granted Org Admin in Default Organization / Acme / Engineering\n" in message.body
    assert "by cca.one" in message.body and "Engineering" in message.body


def test_non_admin_role_grant_sends_nothing(admins, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    grant(admins["target"], ["audit-log-viewer"], admins["cca1"], django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_refused_grant_sends_nothing(admins, django_capture_on_commit_callbacks):
    from accounts.exceptions import IdentityError

    mail.outbox.clear()
    with pytest.raises(IdentityError):
        grant(admins["target"], ["customer-cloud-admin"], admins["helpdesk"], django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_without_mail_server_mail_lands_in_outbox_page(admins, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "ops.mail.OutboxEmailBackend"
    grant(admins["target"], ["org-manager"], admins["cca1"], django_capture_on_commit_callbacks)
    stored = list(OutboxMessage.objects.order_by("id"))
    assert [m.to for m in stored] == [["one@example.com"], ["two@example.com"]]
    assert stored[0].subject == "idm: admin role granted"
    client = Client()
    client.force_login(admins["cca2"])
    page = client.get("/outbox/")
    assert page.status_code == 200 and b"idm: admin role granted" in page.content
    detail = client.get(f"/outbox/{stored[0].pk}/")
    assert detail.status_code == 200 and b"by cca.one" in detail.content
    client.force_login(admins["helpdesk"])
    assert client.get("/outbox/").status_code == 403
    assert client.get(f"/outbox/{stored[0].pk}/").status_code == 403
    assert Client().get("/outbox/").status_code == 302


def test_any_django_mail_goes_to_the_outbox(settings):
    from django.core.mail import send_mail

    settings.EMAIL_BACKEND = "ops.mail.OutboxEmailBackend"
    assert send_mail("Reset your password", "link: https://x/reset/abc", "idm@localhost", ["u@example.com"]) == 1
    message = OutboxMessage.objects.get()
    assert message.subject == "Reset your password" and message.to == ["u@example.com"]


def test_outbox_is_default_without_mail_host(tmp_path):
    import os
    import subprocess
    import sys

    from tests.celery_helpers import BASE_DIR

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "IDM_EMAIL_HOST")}
    env["IDM_VAR_DIR"] = str(tmp_path)
    code = "from django.conf import settings; print(settings.EMAIL_BACKEND)"
    out = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", code], env=env, cwd=BASE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "ops.mail.OutboxEmailBackend"
    env["IDM_EMAIL_HOST"] = "smtp.example.com"
    out = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", code], env=env, cwd=BASE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "django.core.mail.backends.smtp.EmailBackend"
