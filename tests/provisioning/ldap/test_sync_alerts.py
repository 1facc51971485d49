"""Email about a held or failed directory sync: once per run, to the Customer Cloud Admins or the
configured address, through Django's mail path (the Outbox without a mail server), with a link to the
run and no secrets (real slapd)."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import AuditEvent
from ops.models import OutboxMessage
from provisioning.ldap.secrets import encrypt_secret
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, ProvisioningRun
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import admin, make_directory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cloud_admins(user_factory, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.IDM_BASE_URL = "https://idm.example.com"
    user_factory("cca.one", roles=["customer-cloud-admin"], email="one@example.com")
    user_factory("cca.two", roles=["customer-cloud-admin"], email="two@example.com")
    user_factory("help.desk", roles=["help-desk"], email="help@example.com")


def test_a_held_run_emails_each_cloud_admin_once_with_the_review_link(slapd_server, ou, root_org, cloud_admins):
    names = [f"h{i}" for i in range(5)]
    slapd_server.ldapadd(people_ldif(ou, *names))
    directory = make_directory(slapd_server, ou, root_org, deactivation_threshold_min=1)
    mail.outbox.clear()
    assert sync_directory(directory).status == ProvisioningRun.Status.SUCCEEDED
    assert mail.outbox == []  # a good run says nothing
    conn = admin(slapd_server)
    for name in names[:3]:
        conn.delete_s(f"uid={name},{ou}")
    held = sync_directory(directory, full=True)
    assert held.status == ProvisioningRun.Status.HELD
    assert sorted(m.to[0] for m in mail.outbox) == ["one@example.com", "two@example.com"]
    message = mail.outbox[0]
    assert message.subject == "idm: directory sync held"
    assert f"https://idm.example.com/provisioning/runs/{held.run_id}/" in message.body
    assert f"https://idm.example.com/provisioning/sources/{directory.source_id}/" in message.body
    assert "Held: 3 users would be blocked" in message.body
    assert "held 3" in message.body
    assert slapd_server.root_pw not in message.body and slapd_server.root_dn not in message.body
    assert AuditEvent.objects.filter(action="directory_sync_alert_sent", job_id=held.run_id).count() == 1

    mail.outbox.clear()
    sync_directory(directory, dry_run=True)  # a dry run never alerts, whatever it would do
    assert mail.outbox == []
    forced = sync_directory(directory, force=True)
    assert forced.status == ProvisioningRun.Status.SUCCEEDED and forced.counts["blocked"] == 3
    assert mail.outbox == []


def test_a_failed_run_emails_the_configured_address_through_the_outbox(slapd_server, ou, root_org, cloud_admins,
                                                                       settings):
    settings.EMAIL_BACKEND = "ops.mail.OutboxEmailBackend"
    settings.IDM_DIRECTORY_ALERT_EMAILS = "ldap-team@example.com, oncall@example.com"
    slapd_server.ldapadd(people_ldif(ou, "fia"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    Directory.objects.filter(pk=directory.pk).update(bind_password_encrypted=encrypt_secret("wrong-secret"))
    failed = sync_directory(Directory.objects.get(pk=directory.pk))
    assert failed.status == ProvisioningRun.Status.FAILED
    stored = list(OutboxMessage.objects.order_by("id"))
    assert [m.to for m in stored] == [["ldap-team@example.com"], ["oncall@example.com"]]
    assert stored[0].subject == "idm: directory sync failed"
    assert "bind_failed: The directory refused the bind DN or password." in stored[0].body
    assert f"/provisioning/runs/{failed.run_id}/" in stored[0].body
    assert "wrong-secret" not in stored[0].body and slapd_server.root_pw not in stored[0].body

