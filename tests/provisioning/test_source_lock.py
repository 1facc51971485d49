"""Source settings and rules are judged with the source's row locked (review of sec1's checks), on
two real PostgreSQL connections: a Cross Org Admin re-pointing a source while a Cloud Admin saves an
admin-granting rule for it must see that rule, not race past the check.

Before the lock, the settings change read the rules (none granting an admin role yet), passed
``check_source_settings_change`` and saved: the source then placed users where the Cloud Admin's
Org Manager rule would apply, chosen by someone who may not decide that."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from accounts.exceptions import IdentityError
from accounts.identity.types import Actor
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.services import RuleInput, rule_save, source_save

pytestmark = pytest.mark.django_db(transaction=True)


def test_settings_change_waits_for_a_rule_being_saved_and_sees_it(user_factory, admin_user, org_factory, root_org):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    sales = org_factory("Sales")
    source = providers.provider_create(actor=Actor.system("tests"), name="Okta").source
    source.org_mode, source.fixed_org = Source.OrgMode.FIXED, sales
    source_save(actor=Actor.system("tests"), source=source)
    cross_org_admin = user_factory("coa", roles=["cross-org-admin"])
    rule_saved, go = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def cloud_admin_saves_an_admin_rule():
        try:
            with transaction.atomic():
                rule_save(actor=Actor.for_user(admin_user), source=Source.objects.get(pk=source.pk),
                          data=RuleInput(kind="role", condition="member_of_group", value="Sales Managers",
                                         role_slugs=frozenset({"org-manager"})))
                rule_saved.set()
                go.wait(timeout=10)  # commit only after the other session has started its change
            outcome["rule"] = "ok"
        finally:
            connections.close_all()

    def cross_org_admin_repoints_the_source():
        try:
            rule_saved.wait(timeout=10)
            mine = Source.objects.get(pk=source.pk)
            mine.fixed_org = root_org
            source_save(actor=Actor.for_user(cross_org_admin), source=mine)
            outcome["settings"] = "ok"
        except IdentityError as exc:
            outcome["settings"] = exc.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=cloud_admin_saves_an_admin_rule),
               threading.Thread(target=cross_org_admin_repoints_the_source)]
    for thread in threads:
        thread.start()
    rule_saved.wait(timeout=10)
    time.sleep(0.5)  # the settings change is now waiting for the source's row (or, unlocked, done)
    go.set()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome == {"rule": "ok", "settings": "source_needs_cloud_admin"}, outcome
    source.refresh_from_db()
    assert source.fixed_org_id == sales.pk
