"""A directory's connection acts only as far as the admin who last saved it may act (review 4, the
directory case of F2/F3): once a Cloud Admin's rule lets the directory grant more than that admin
holds, runs refuse to sync until an admin holding those powers saves the settings again. Against a
real slapd, through the services the console calls."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.identity.types import Actor
from provisioning.ldap.directories import directory_create, directory_update
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, JournalEntry
from provisioning.services import RuleInput, rule_save
from tests.provisioning.ldap.test_password_sign_in import directory_settings, people

pytestmark = pytest.mark.django_db(transaction=True)
ADMINS_GET_ORG_ADMIN = RuleInput(kind="role", condition="attribute_equals", attribute="mail",
                                 value="carl@example.org", role_slugs=frozenset({"org-admin"}))


def test_a_lesser_admins_connection_stops_syncing_once_the_directory_can_grant_more(
        slapd_server, ou, root_org, test_pki, user_factory, admin_user):
    setter = user_factory("ivan.identity", roles=["identity-management-administrator", "org-manager"])
    slapd_server.ldapadd(people(ou, "alma", "bert"))
    data = directory_settings(slapd_server, ou, test_pki, password_sign_in=False)
    directory = directory_create(actor=Actor.for_user(setter), name="Corp", data=data,
                                 bind_password=slapd_server.root_pw, org=root_org)
    assert directory.connection_set_by == setter
    assert sync_directory(directory).status == "succeeded"
    assert set(User.objects.filter(profile__owner_source=directory.source).values_list("username", flat=True)) == {
        "alma", "bert"}

    rule_save(actor=Actor.for_user(admin_user), source=directory.source, data=ADMINS_GET_ORG_ADMIN)
    slapd_server.ldapadd("\n".join(["dn: uid=carl," + ou, "objectClass: inetOrgPerson", "uid: carl", "cn: Carl",
                                    "sn: Carlson", "mail: carl@example.org", ""]))
    refused = sync_directory(directory, full=True)
    assert refused.status == "failed" and refused.error.startswith("connection_unconfirmed:")
    assert "ivan.identity" in refused.error and "save them to confirm" in refused.error
    assert not User.objects.filter(username="carl").exists()
    assert not JournalEntry.objects.filter(run=refused).exists()

    # The Cloud Admin confirms the server by saving the settings, unchanged; the run goes through.
    directory = directory_update(actor=Actor.for_user(admin_user), directory=Directory.objects.get(pk=directory.pk),
                                 data=data)
    assert directory.connection_set_by == admin_user
    assert sync_directory(directory, full=True).status == "succeeded"
    assert User.objects.get(username="carl").groups.filter(role__slug="org-admin").exists()


def test_setup_commands_and_unchanged_powers_keep_syncing(slapd_server, ou, root_org, test_pki):
    slapd_server.ldapadd(people(ou, "dana"))
    directory = directory_create(actor=Actor.system("setup"), name="Corp", data=directory_settings(
        slapd_server, ou, test_pki, password_sign_in=False), bind_password=slapd_server.root_pw, org=root_org)
    assert directory.connection_set_by is None
    assert sync_directory(directory).status == "succeeded"
