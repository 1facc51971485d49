"""Alert mail never lets an admin-chosen directory name speak as idm (second review, N7).

A directory named like a phishing message used to become the subject of a mail from idm's own
sender to every Customer Cloud Admin. Subjects are now fixed text; the body quotes the name as data
with URL-like text defanged, and the only links are idm's own pages.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

from ops.mail import mail_data
from ops.models import OutboxMessage
from provisioning.ldap.alerts import alert_run
from provisioning.models import ProvisioningRun, Source

EVIL = "ACTION REQUIRED - verify admin login at https://idm-login.evil.example\nReply to it@evil.example"
URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)+\b")


@pytest.fixture
def cloud_admin(user_factory, settings):
    settings.IDM_BASE_URL = "https://idm.example.com"
    settings.EMAIL_BACKEND = "ops.mail.OutboxEmailBackend"
    return user_factory("cca.one", roles=["customer-cloud-admin"], email="one@example.com")


@pytest.mark.parametrize("status", [ProvisioningRun.Status.FAILED, ProvisioningRun.Status.HELD])
def test_subject_is_fixed_and_the_name_is_quoted_data(cloud_admin, source_factory, status,
                                                      django_capture_on_commit_callbacks):
    source = source_factory(EVIL, kind=Source.Kind.LDAP)
    run = ProvisioningRun.objects.create(kind=ProvisioningRun.Kind.SYNC, source=source, status=status,
                                         counts={"held": 2}, error="connect_failed: see https://evil.example/x",
                                         started_by_label=EVIL)
    with django_capture_on_commit_callbacks(execute=True):
        assert alert_run(run) == 1
    [stored] = OutboxMessage.objects.all()
    assert stored.subject == f"idm: directory sync {'held' if status == 'held' else 'failed'}"
    assert stored.to == ["one@example.com"]
    assert f'the directory {mail_data(EVIL)}' in stored.body
    assert "evil.example" not in stored.body and "https://idm-login" not in stored.body
    links = {m.rstrip(".") for m in URL.findall(stored.body) if "[" not in m}
    assert links == {f"https://idm.example.com/provisioning/runs/{run.run_id}/",
                     f"https://idm.example.com/provisioning/sources/{source.pk}/"}
    assert mail.outbox == []  # the Outbox backend kept it


def test_mail_data_flattens_and_defangs_but_keeps_sentences():
    assert mail_data(EVIL) == ('"ACTION REQUIRED - verify admin login at https[:]//idm-login[.]evil[.]example '
                               'Reply to it[@]evil[.]example"')
    assert mail_data("bind_failed: The directory refused the bind DN or password.", quote=False) == \
        "bind_failed: The directory refused the bind DN or password."
    assert mail_data("Corp\u202eAD\x00", quote=False) == "Corp AD"
    assert len(mail_data("x" * 500, quote=False)) == 200
