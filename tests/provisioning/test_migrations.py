"""The data migrations of issue 8: owning sources from provider strings, manual grants for held roles."""

from __future__ import annotations

import importlib

from django.apps import apps

from accounts.models import DirectoryGroup, UserProfile
from provisioning.models import RoleGrant, Source

owner_migration = importlib.import_module("accounts.migrations.0005_prov_owner_source")
grants_migration = importlib.import_module("provisioning.migrations.0002_prov_manual_grants")


def test_provider_strings_become_sources(user_factory):
    ann, bob, cat = user_factory("ann"), user_factory("bob"), user_factory("cat")
    UserProfile.objects.filter(user__in=[ann, bob]).update(source="scim", source_provider="Okta")
    UserProfile.objects.filter(user=cat).update(source="ldap", source_provider="")
    from django.contrib.auth.models import Group

    DirectoryGroup.objects.create(group=Group.objects.create(name="dir:eng"), display_name="Eng", source="scim",
                                  provider="Okta", external_id="g1")
    owner_migration.link_owners(apps, None)
    okta = Source.objects.get(slug="scim-okta")
    assert (okta.name, okta.kind, okta.org_mode) == ("Okta", "scim", "unmanaged")
    assert set(UserProfile.objects.filter(owner_source=okta).values_list("user__username", flat=True)) == {"ann", "bob"}
    assert UserProfile.objects.get(user=cat).owner_source.slug == "ldap"
    assert DirectoryGroup.objects.get(external_id="g1").owner_source == okta
    assert UserProfile.objects.filter(source="local", owner_source__isnull=False).count() == 0
    owner_migration.link_owners(apps, None)  # idempotent
    assert Source.objects.count() == 2


def test_held_roles_become_manual_grants(user_factory):
    ann = user_factory("ann", roles=["help-desk", "console-user"])
    RoleGrant.objects.all().delete()
    grants_migration.manual_grants(apps, None)
    assert set(RoleGrant.objects.filter(user=ann).values_list("role__slug", "source")) == {
        ("help-desk", None), ("console-user", None)}
    grants_migration.manual_grants(apps, None)  # idempotent
    assert RoleGrant.objects.filter(user=ann).count() == 2
