"""Seeding the role catalogue after ``migrate`` (issue 7 §5): an upgrade that changes a built-in role
leaves an audit record with the old and new permission sets, by the system; no change, no record."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.management import call_command

from accounts import roles
from accounts.models import AuditEvent, Role

pytestmark = pytest.mark.django_db


def perms_of(slug: str) -> set[str]:
    return set(Role.objects.get(slug=slug).group.permissions.values_list("codename", flat=True))


def test_reseeding_an_unchanged_catalogue_records_nothing():
    roles.seed_roles()
    call_command("migrate", verbosity=0)  # the post_migrate handler runs seed_roles too
    assert not AuditEvent.objects.filter(action="role.permissions_changed").exists()


def test_an_upgrade_that_changes_a_builtin_role_is_audited(monkeypatch):
    old = perms_of("help-desk")
    assert old == {"console_access", "view_directory", "reset_passwords"}
    catalogue = tuple(dataclasses.replace(spec, perms=(*spec.perms, "manage_mfa")) if spec.slug == "help-desk"
                      else dataclasses.replace(spec, perms=tuple(p for p in spec.perms if p != "view_audit_log"))
                      if spec.slug == "audit-log-viewer" else spec
                      for spec in roles.CATALOGUE)
    monkeypatch.setattr(roles, "CATALOGUE", catalogue)
    roles.seed_roles()

    assert perms_of("help-desk") == old | {"manage_mfa"}
    assert perms_of("audit-log-viewer") == {"console_access"}
    events = {e.target_label: e for e in AuditEvent.objects.filter(action="role.permissions_changed")}
    assert set(events) == {"Help Desk", "Audit Log Viewer"}
    help_desk = events["Help Desk"]
    assert (help_desk.actor_type, help_desk.actor_label, help_desk.actor_id) == ("system", "seed_roles", None)
    assert help_desk.target_type == "role" and help_desk.field == "permissions"
    assert help_desk.target_id == str(Role.objects.get(slug="help-desk").pk)
    assert help_desk.old_value == sorted(old)
    assert help_desk.new_value == sorted(old | {"manage_mfa"})
    assert "added ['manage_mfa']" in help_desk.message
    assert events["Audit Log Viewer"].old_value == ["console_access", "view_audit_log"]
    assert events["Audit Log Viewer"].new_value == ["console_access"]

    roles.seed_roles()  # the same release again: nothing more
    assert AuditEvent.objects.filter(action="role.permissions_changed").count() == 2


def test_a_hand_edited_builtin_role_is_put_back_and_audited():
    group = Role.objects.get(slug="user-modify").group
    group.permissions.remove(group.permissions.get(codename="modify_user_profile"))
    roles.seed_roles()
    assert "modify_user_profile" in perms_of("user-modify")
    event = AuditEvent.objects.get(action="role.permissions_changed")
    assert event.old_value == ["console_access", "view_directory"]
    assert event.new_value == ["console_access", "modify_user_profile", "view_directory"]
