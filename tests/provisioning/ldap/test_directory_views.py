"""Console pages for directories against a real slapd: add, edit (password kept), test connection,
and the sync buttons (run in the worker; here Celery runs tasks eagerly)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.models import AuditEvent
from provisioning.ldap.secrets import decrypt_secret
from provisioning.ldap.sync import RunLock, sync_directory
from provisioning.models import Directory, MappingRule, ProvisioningRun
from tests.provisioning.ldap.conftest import people_ldif

pytestmark = pytest.mark.django_db(transaction=True)


def _form(server, ou, **overrides) -> dict:
    data = {"name": "Corp LDAP", "urls": server.ldap_uri, "tls_mode": "none", "verify_tls": "on",
            "bind_dn": server.root_dn, "bind_password": server.root_pw, "base_dns": ou, "preset": "openldap",
            "user_filter": "", "group_filter": "", "attribute_map": "", "page_size": "500", "interval_hours": "12",
            "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50"}
    data.update(overrides)
    return data


@pytest.fixture
def eager():
    """Run queued tasks in the test (the Celery app is configured once, so the setting alone is late)."""
    from idm.celery import app

    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = old


def test_add_edit_test_connection_and_sync_from_the_console(admin_client, slapd_server, ou, root_org, eager):
    slapd_server.ldapadd(people_ldif(ou, "amy", "ben", groups={"staff": ["amy"]}))
    response = admin_client.post(reverse("provisioning:directory_add"), _form(slapd_server, ou, org=root_org.pk))
    directory = Directory.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("provisioning:source_detail", args=[directory.source_id])
    page = admin_client.get(response["Location"]).content.decode()
    assert "Sync now" in page and "Test connection" in page and slapd_server.root_pw not in page

    edit = admin_client.get(reverse("provisioning:directory_edit", args=[directory.source_id])).content.decode()
    assert slapd_server.root_pw not in edit
    assert f">\n{ou}</textarea>" in edit
    response = admin_client.post(reverse("provisioning:directory_edit", args=[directory.source_id]),
                                 _form(slapd_server, ou, bind_password="", page_size="100"))
    assert response.status_code == 302
    directory.refresh_from_db()
    assert directory.page_size == 100 and decrypt_secret(directory.bind_password_encrypted) == slapd_server.root_pw

    rule = MappingRule.objects.create(source=directory.source, kind="role", condition="member_of_group", value="staff")
    rule.roles.set(rule.roles.model.objects.filter(slug="console-user"))
    probe = admin_client.post(reverse("provisioning:directory_test", args=[directory.source_id]))
    html = probe.content.decode()
    assert probe.status_code == 200
    assert '<dd id="probe-users">2</dd>' in html and '<dd id="probe-groups">1</dd>' in html
    assert "<td>amy</td><td>amy@example.org</td>" in html and "<td>console-user</td>" in html
    assert not User.objects.filter(username="amy").exists()  # testing writes nothing

    response = admin_client.post(reverse("provisioning:directory_sync", args=[directory.source_id]),
                                 {"mode": "dry_run"})
    assert response.status_code == 302
    run = ProvisioningRun.objects.get()
    assert (run.dry_run, run.status, run.counts["created"]) == (True, "succeeded", 2)
    admin_client.post(reverse("provisioning:directory_sync", args=[directory.source_id]), {"mode": "sync"})
    assert set(User.objects.filter(username__in=["amy", "ben"]).values_list("username", flat=True)) == {"amy", "ben"}
    assert list(AuditEvent.objects.filter(action="directory_sync_requested").order_by("pk")
                .values_list("new_value", flat=True)) == [
        {"mode": "dry_run"}, {"mode": "sync"}]


def test_console_shows_coded_errors_and_refuses_a_second_run(admin_client, slapd_server, ou, root_org):
    response = admin_client.post(reverse("provisioning:directory_add"),
                                 _form(slapd_server, ou, urls="http://wrong", base_dns=ou))
    assert response.status_code == 200
    assert 'data-code="url_invalid"' in response.content.decode()
    assert not Directory.objects.exists()

    admin_client.post(reverse("provisioning:directory_add"), _form(slapd_server, ou, bind_password="wrong"))
    directory = Directory.objects.get()
    probe = admin_client.post(reverse("provisioning:directory_test", args=[directory.source_id])).content.decode()
    assert 'data-code="bind_failed"' in probe
    assert "The directory refused the bind DN or password." in probe

    lock = RunLock(directory)
    lock.acquire()
    response = admin_client.post(reverse("provisioning:directory_sync", args=[directory.source_id]),
                                 {"mode": "sync"}, follow=True)
    assert "is already running" in response.content.decode()
    assert not AuditEvent.objects.filter(action="directory_sync_requested").exists()
    lock.release()


def test_held_run_offers_apply_anyway(admin_client, slapd_server, ou, root_org):
    import ldap

    slapd_server.ldapadd(people_ldif(ou, "cai", "dan", "eve"))
    admin_client.post(reverse("provisioning:directory_add"),
                      _form(slapd_server, ou, org=root_org.pk, deactivation_threshold_min="1"))
    directory = Directory.objects.get()
    sync_directory(directory)
    conn = ldap.initialize(slapd_server.ldap_uri)
    conn.simple_bind_s(slapd_server.root_dn, slapd_server.root_pw)
    conn.delete_s(f"uid=cai,{ou}")
    conn.delete_s(f"uid=dan,{ou}")
    assert sync_directory(directory, full=True).status == "held"
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert 'value="force">Apply anyway</button>' in page
    assert "Held: 2 users would be blocked" in page
