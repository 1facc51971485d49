"""Source settings and rules are judged with the source's row locked (review of sec1's checks), on
two real PostgreSQL connections: a Cross Org Admin re-pointing a source while a Cloud Admin saves an
admin-granting rule for it must see that rule, not race past the check.

Before the lock, the settings change read the rules (none granting an admin role yet), passed
``check_source_settings_change`` and saved: the source then placed users where the Cloud Admin's
Org Manager rule would apply, chosen by someone who may not decide that."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.identity.types import Actor
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.services import RuleInput, rule_save, source_save
from tests.concurrency import race_held_open

pytestmark = pytest.mark.django_db(transaction=True)


def test_settings_change_waits_for_a_rule_being_saved_and_sees_it(user_factory, admin_user, org_factory, root_org):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    sales = org_factory("Sales")
    source = providers.provider_create(actor=Actor.system("tests"), name="Okta").source
    source.org_mode, source.fixed_org = Source.OrgMode.FIXED, sales
    source_save(actor=Actor.system("tests"), source=source)
    cross_org_admin = user_factory("coa", roles=["cross-org-admin"])

    def cloud_admin_saves_an_admin_rule():
        rule_save(actor=Actor.for_user(admin_user), source=Source.objects.get(pk=source.pk),
                  data=RuleInput(kind="role", condition="member_of_group", value="Sales Managers",
                                 role_slugs=frozenset({"org-manager"})))

    def cross_org_admin_repoints_the_source():
        mine = Source.objects.get(pk=source.pk)
        mine.fixed_org = root_org
        source_save(actor=Actor.for_user(cross_org_admin), source=mine)

    rule, settings = race_held_open(cloud_admin_saves_an_admin_rule, cross_org_admin_repoints_the_source)
    assert (rule, settings) == ("ok", "source_needs_cloud_admin")
    source.refresh_from_db()
    assert source.fixed_org_id == sales.pk
