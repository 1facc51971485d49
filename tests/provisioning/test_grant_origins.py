"""Grant origins recorded by the identity service's writer (accounts/identity/grants.py): manual for
console/system actors, the source for provider actors; a removed role loses its grant rows."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import Role
from provisioning.models import RoleGrant, Source
from provisioning.rules import SourceRecord
from tests.provisioning.conftest import provider_actor


def grants(user) -> set[tuple[str, str | None]]:
    return set(RoleGrant.objects.filter(user=user).values_list("role__slug", "source__slug"))


def test_console_grant_records_a_manual_row(admin_client, source_factory, linked_user):
    source = source_factory("Okta")
    ann = linked_user(source, "ann", roles=["console-user"])
    response = admin_client.post(reverse("accounts:user_roles", args=[ann.pk]),
                                 {"roles": [Role.objects.get(slug="help-desk").pk,
                                            Role.objects.get(slug="console-user").pk]})
    assert response.status_code == 302
    assert grants(ann) == {("console-user", None), ("help-desk", None)}
    assert RoleGrant.objects.get(user=ann, role__slug="help-desk").granted_by_label == ""


def test_provider_grant_records_the_source_and_removal_deletes_rows(source_factory, linked_user, admin_actor):
    source = source_factory("Okta")
    ann = linked_user(source, "ann", roles=["console-user"])
    result = apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                         roles_add=frozenset({"help-desk", "console-user"})),
                                   actor=provider_actor(source))
    assert result.status == "updated"
    # help-desk is new; console-user was held by hand and the source now grants it too.
    assert grants(ann) == {("console-user", None), ("console-user", source.slug), ("help-desk", source.slug)}
    assert RoleGrant.objects.get(user=ann, role__slug="help-desk").granted_by_label == "Okta"
    # An enabled source's grant is not removed by hand (test_manual_removal.py); once the source
    # is disabled, removing the role deletes every grant row of it.
    Source.objects.filter(pk=source.pk).update(enabled=False)
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_remove=frozenset({"console-user"})), actor=admin_actor)
    assert grants(ann) == {("help-desk", source.slug)}
    assert not Group.objects.get(name="role:console-user").user_set.filter(pk=ann.pk).exists()


def test_system_actor_grant_is_manual(root_org):
    result = apply_identity_change(change=IdentityChange(username="sys", email="sys@example.com", org_id=root_org.pk,
                                                         roles=frozenset({"help-desk"}), mode=Mode.CREATE),
                                   actor=Actor.system("test"))
    assert grants(User.objects.get(pk=result.user_id)) == {("help-desk", None)}


def test_source_run_keeps_a_manual_grant(source_factory, linked_user, admin_actor):
    from provisioning.models import MappingRule
    from provisioning.reapply import reapply_rules

    source = source_factory("Okta")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]), roles=["console-user"])
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({"audit-log-viewer"})), actor=admin_actor)
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Engineering",
                                      position=0, saved_by_cloud_admin=True)
    rule.roles.set([Role.objects.get(slug="help-desk")])
    reapply_rules(source=source)
    assert ("audit-log-viewer", None) in grants(ann)
    assert ("help-desk", source.slug) in grants(ann)
    assert Group.objects.get(name="role:audit-log-viewer").user_set.filter(pk=ann.pk).exists()


def test_grant_bookkeeping_is_batched(source_factory, root_org):
    """The grant statements of a batch do not grow with the number of users in it."""
    source = source_factory("Okta")

    def create(prefix: str, n: int) -> int:
        changes = [IdentityChange(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", org_id=root_org.pk,
                                  roles=frozenset({"help-desk"}), mode=Mode.CREATE) for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            results = apply_identity_changes(changes=changes, actor=provider_actor(source), batch_size=2000)
        assert results.counts()["created"] == n
        return sum("provisioning_rolegrant" in q["sql"] for q in ctx.captured_queries)

    # One INSERT per chunk of rows, never one per user (SQLite splits a chunk at its 999-variable limit,
    # about 199 rows of five columns; PostgreSQL sends 1,500 rows at once).
    assert create("a", 5) == 1
    assert create("b", 1500) <= 8
    assert RoleGrant.objects.filter(source=source, role__slug="help-desk").count() == 1505
