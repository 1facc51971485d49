"""HTTP basic enable / rotate / disable, SCIM provider delete and directory connection changes are judged
with the source's row locked (third review, L3), like source settings, rules and token rotation
(``test_source_lock.py``): on two real PostgreSQL connections, a Cross Org Admin's credential change
made while a Cloud Admin saves a rule granting a role the Cross Org Admin does not hold waits for that
rule and is refused (``source_more_privileged``).

Before the lock these checks read the rules first (no such rule yet), passed, and wrote: whoever then
held the new password or connection acted with powers the actor never had.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from accounts.identity.types import Actor
from accounts.models import AuditEvent
from provisioning.ldap.directories import DirectorySettings, directory_create, directory_update
from provisioning.models import Directory, Source
from provisioning.scim import providers
from provisioning.scim.models import ScimBasicCredential
from provisioning.services import RuleInput, rule_save
from tests.concurrency import race_held_open

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = Actor.system("tests")


def _settings(**overrides) -> DirectorySettings:
    values = {"urls": ("ldap://127.0.0.1:3899/",), "base_dns": ("dc=example,dc=org",), "preset": "openldap",
              "bind_dn": "cn=sync,dc=example,dc=org"}
    values.update(overrides)
    return DirectorySettings(**values)


def _scim(name: str = "Okta", *, basic: bool = False) -> Source:
    source = providers.provider_create(actor=SYSTEM, name=name).source
    if basic:
        providers.basic_enable(actor=SYSTEM, source=source)
    return source


def _basic_enable(actor):
    source = _scim()
    return source, lambda: providers.basic_enable(actor=actor, source=Source.objects.get(pk=source.pk)), \
        lambda: not ScimBasicCredential.objects.filter(source_id=source.pk).exists()


def _basic_rotate(actor):
    source = _scim(basic=True)
    return source, lambda: providers.basic_rotate(actor=actor, source=Source.objects.get(pk=source.pk),
                                                  overlap=timedelta(0)), \
        lambda: ScimBasicCredential.objects.filter(source_id=source.pk, expires_at__isnull=True).count() == 1


def _basic_disable(actor):
    source = _scim(basic=True)
    return source, lambda: providers.basic_disable(actor=actor, source=Source.objects.get(pk=source.pk)), \
        lambda: ScimBasicCredential.objects.filter(source_id=source.pk).count() == 1


def _provider_delete(actor):
    source = _scim()
    return source, lambda: providers.provider_delete(actor=actor, source=Source.objects.get(pk=source.pk)), \
        lambda: Source.objects.filter(pk=source.pk).exists()


def _directory_update(actor):
    directory = directory_create(actor=SYSTEM, name="Corp LDAP", data=_settings(), bind_password="first")
    source = directory.source
    return source, lambda: directory_update(actor=actor, directory=Directory.objects.get(pk=directory.pk),
                                            data=_settings(bind_dn="cn=other,dc=example,dc=org"),
                                            bind_password="mine"), \
        lambda: Directory.objects.get(pk=directory.pk).bind_dn == "cn=sync,dc=example,dc=org"


@pytest.mark.parametrize("operation", [_basic_enable, _basic_rotate, _basic_disable, _provider_delete,
                                       _directory_update])
def test_credential_change_waits_for_a_rule_being_saved_and_sees_it(operation, user_factory, admin_user):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    cross_org_admin = user_factory("coa", roles=["cross-org-admin"])  # no view_audit_log
    source, change, unchanged = operation(Actor.for_user(cross_org_admin))

    def cloud_admin_saves_a_rule():
        rule_save(actor=Actor.for_user(admin_user), source=Source.objects.get(pk=source.pk),
                  data=RuleInput(kind="role", condition="member_of_group", value="Auditors",
                                 role_slugs=frozenset({"audit-log-viewer"})))

    assert race_held_open(cloud_admin_saves_a_rule, change) == ("ok", "source_more_privileged")
    assert unchanged()
    assert not AuditEvent.objects.filter(actor=cross_org_admin).exists()


def test_credential_changes_still_work_for_a_holder_of_every_power(user_factory):
    """The same operations, one after the other, by a Cross Org Admin over a source whose rules grant
    nothing more: the lock changes when they are judged, not what they allow (both databases)."""
    actor = Actor.for_user(user_factory("coa", roles=["cross-org-admin"]))
    source = _scim()
    first = providers.basic_enable(actor=actor, source=source)
    second = providers.basic_rotate(actor=actor, source=source, overlap=timedelta(0))
    assert first.password != second.password
    assert providers.authenticate_basic(second.username, second.password) == source
    assert providers.authenticate_basic(first.username, first.password) is None
    assert providers.basic_disable(actor=actor, source=source) == 2
    providers.provider_delete(actor=actor, source=source)
    assert not Source.objects.filter(pk=source.pk).exists()
    directory = directory_create(actor=SYSTEM, name="Corp LDAP", data=_settings(), bind_password="first")
    directory_update(actor=actor, directory=directory, data=_settings(bind_dn="cn=other,dc=example,dc=org"),
                     bind_password="second")
    directory.refresh_from_db()
    assert directory.bind_dn == "cn=other,dc=example,dc=org"
