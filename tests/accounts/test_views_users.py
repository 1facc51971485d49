"""Users pages: list, detail, create, edit, state changes, move, roles and bulk block — allowed and refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.identity.types import Source, UserState
from accounts.models import AuditEvent
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from tests.accounts.console_support import error_codes, messages_of

pytestmark = pytest.mark.django_db


def usernames(response) -> list[str]:
    return [u.username for u in response.context["page"]]


def state_of(user) -> str:
    user.profile.refresh_from_db()
    return user.profile.state


# ---- list -----------------------------------------------------------------------------------


def test_admin_lists_everyone(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:user_list"))
    assert response.status_code == 200
    assert set(usernames(response)) >= {"admin", "eng.user", "plat.user", "sales.user"}


def test_org_admin_lists_own_subtree_only(client, directory):
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:user_list"))
    assert set(usernames(response)) == {"eng.admin", "eng.user", "plat.user"}


def test_audit_log_viewer_cannot_list_users(client, directory):
    client.force_login(directory.auditor)
    assert client.get(reverse("accounts:user_list")).status_code == 403


def test_search_matches_name_username_and_email(client, directory):
    client.force_login(directory.admin)
    assert usernames(client.get(reverse("accounts:user_list"), {"q": "Sam"})) == ["sales.user"]
    assert usernames(client.get(reverse("accounts:user_list"), {"q": "plat"})) == ["plat.user"]
    assert usernames(client.get(reverse("accounts:user_list"), {"q": "Engineer"})) == ["eng.user"]


def test_org_filter_includes_sub_orgs(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:user_list"), {"org": directory.engineering.pk})
    assert set(usernames(response)) == {"eng.admin", "eng.user", "plat.user"}


def test_role_state_and_source_filters(client, directory, user_factory):
    user_factory("blocked.user", org=directory.sales, state=UserState.BLOCKED)
    client.force_login(directory.admin)
    url = reverse("accounts:user_list")
    assert usernames(client.get(url, {"role": "org-admin"})) == ["eng.admin"]
    assert usernames(client.get(url, {"state": "blocked"})) == ["blocked.user"]
    assert usernames(client.get(url, {"source": Source.SCIM})) == []


def test_sorting_and_aria_sort(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:user_list"), {"sort": "-username"})
    names = usernames(response)
    assert names == sorted(names, reverse=True)
    assert 'aria-sort="descending"' in response.content.decode()
    # An unknown sort key falls back to username instead of failing.
    assert client.get(reverse("accounts:user_list"), {"sort": "password"}).status_code == 200


def test_pagination_50_per_page(client, fast_hasher, admin_user, user_factory):
    for i in range(55):
        user_factory(f"bulk{i:02d}", password=None)  # invited: no password hashing
    client.force_login(admin_user)
    first = client.get(reverse("accounts:user_list"))
    assert len(first.context["page"]) == 50
    second = client.get(reverse("accounts:user_list"), {"page": 2})
    assert len(second.context["page"]) == 6  # 55 + admin
    assert 'aria-label="Pagination"' in first.content.decode()


# ---- detail ---------------------------------------------------------------------------------


def test_detail_shows_profile_roles_and_audit(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:user_detail", args=[directory.platform_user.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Engineering" in html and "Platform" in html and "Acme" in html
    assert "Console User" in html
    assert "user.created" in html


def test_org_admin_gets_404_for_user_outside_subtree(client, directory):
    client.force_login(directory.eng_admin)
    assert client.get(reverse("accounts:user_detail", args=[directory.platform_user.pk])).status_code == 200
    pk = directory.sales_user.pk
    for name in ("accounts:user_detail", "accounts:user_edit", "accounts:user_move", "accounts:user_roles"):
        assert client.get(reverse(name, args=[pk])).status_code == 404, name
    response = client.post(reverse("accounts:user_state", args=[pk, "block"]))
    assert response.status_code == 404
    assert state_of(directory.sales_user) == UserState.ACTIVE


def test_org_admin_hides_audit_trail(client, directory):
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:user_detail", args=[directory.eng_user.pk]))
    assert response.context["events"] is None


# ---- create ---------------------------------------------------------------------------------


def test_create_user_with_password_and_role(client, directory):
    client.force_login(directory.admin)
    help_desk = directory.admin.groups.model.objects.get(role__slug="help-desk").role
    response = client.post(reverse("accounts:user_create"), {
        "org": directory.sales.pk, "username": "new.person", "email": "new@example.com", "first_name": "New",
        "last_name": "Person", "password": "Good-Pass-2024", "roles": [help_desk.pk], "notes": "",
    })
    user = User.objects.get(username="new.person")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:user_detail", args=[user.pk])
    assert user.profile.org == directory.sales and user.profile.state == UserState.ACTIVE
    assert {g.role.slug for g in user.groups.all()} == {"help-desk"}
    event = AuditEvent.objects.get(action="user.created", target_id=str(user.pk))
    assert event.actor_label == "admin"


def test_create_user_without_password_is_invited(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:user_create"), {
        "org": directory.acme.pk, "username": "invitee", "email": "", "first_name": "", "last_name": "",
        "password": "", "notes": "",
    }, follow=True)
    user = User.objects.get(username="invitee")
    assert user.profile.state == UserState.INVITED
    assert {g.role.slug for g in user.groups.all()} == {"console-user", "desktop-user"}
    assert any("invited" in m for m in messages_of(response))


@pytest.mark.parametrize("field,value,code", [
    ("username", "ENG.USER", "username_taken"),
    ("email", "not-an-email", "email_invalid"),
    ("password", "short", "password_invalid"),
    ("username", "bad name!", "username_invalid"),
])
def test_create_user_shows_service_errors_with_codes(client, directory, field, value, code):
    client.force_login(directory.admin)
    data = {"org": directory.acme.pk, "username": "fresh", "email": "fresh@example.com", "first_name": "",
            "last_name": "", "password": "", "notes": ""}
    data[field] = value
    response = client.post(reverse("accounts:user_create"), data)
    assert response.status_code == 200
    assert code in error_codes(response, field)
    assert f'data-code="{code}"' in response.content.decode()
    assert not User.objects.filter(username="fresh").exists()


def test_create_user_org_and_role_choices_are_scoped(client, directory):
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:user_create"))
    form = response.context["form"]
    assert set(form.fields["org"].queryset) == {directory.engineering, directory.platform}
    slugs = {r.slug for r in form.fields["roles"].queryset}
    assert CUSTOMER_CLOUD_ADMIN not in slugs and "cross-org-admin" not in slugs
    assert "org-admin" in slugs
    # A forged org outside the subtree is refused by the form.
    response = client.post(reverse("accounts:user_create"), {
        "org": directory.sales.pk, "username": "sneaky", "password": "", "notes": "",
    })
    assert "invalid_choice" in error_codes(response, "org")
    assert not User.objects.filter(username="sneaky").exists()


def test_auditor_cannot_create_users(client, directory):
    client.force_login(directory.auditor)
    assert client.get(reverse("accounts:user_create")).status_code == 403
    assert client.post(reverse("accounts:user_create"), {"username": "x"}).status_code == 403


# ---- edit -----------------------------------------------------------------------------------


def test_edit_user_writes_only_changes(client, directory):
    client.force_login(directory.eng_admin)
    user = directory.platform_user
    response = client.post(reverse("accounts:user_edit", args=[user.pk]), {
        "username": user.username, "email": user.email, "first_name": "Renamed", "last_name": user.last_name,
        "notes": "",
    })
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.first_name == "Renamed"
    events = AuditEvent.objects.filter(action="user.updated", target_id=str(user.pk))
    assert [e.field for e in events] == ["first_name"]


def test_edit_user_duplicate_username_any_case(client, directory):
    client.force_login(directory.admin)
    user = directory.eng_user
    response = client.post(reverse("accounts:user_edit", args=[user.pk]), {
        "username": "Sales.User", "email": user.email, "first_name": "", "last_name": "", "notes": "",
    })
    assert response.status_code == 200
    assert error_codes(response, "username") == {"username_taken"}
    user.refresh_from_db()
    assert user.username == "eng.user"


def test_edit_user_invalid_email(client, directory):
    client.force_login(directory.admin)
    user = directory.eng_user
    response = client.post(reverse("accounts:user_edit", args=[user.pk]), {
        "username": user.username, "email": "bad@", "first_name": "", "last_name": "", "notes": "",
    })
    assert error_codes(response, "email") == {"email_invalid"}


def test_profile_editor_cannot_rename(client, directory, user_factory):
    editor = user_factory("editor", org=directory.engineering, roles=["user-modify"])
    client.force_login(editor)
    user = directory.eng_user
    response = client.get(reverse("accounts:user_edit", args=[user.pk]))
    assert response.context["form"].fields["username"].disabled
    response = client.post(reverse("accounts:user_edit", args=[user.pk]), {
        "username": "hijacked", "email": user.email, "first_name": "Ok", "last_name": user.last_name, "notes": "",
    })
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.username == "eng.user" and user.first_name == "Ok"
    # ...and may not block anyone.
    assert client.post(reverse("accounts:user_state", args=[user.pk, "block"])).status_code == 403


# ---- state ----------------------------------------------------------------------------------


def test_block_and_unblock(client, directory):
    client.force_login(directory.eng_admin)
    user = directory.eng_user
    response = client.post(reverse("accounts:user_state", args=[user.pk, "block"]), follow=True)
    assert state_of(user) == UserState.BLOCKED
    assert any("Blocked eng.user" in m for m in messages_of(response))
    client.post(reverse("accounts:user_state", args=[user.pk, "unblock"]))
    assert state_of(user) == UserState.ACTIVE


def test_deactivate_asks_for_confirmation_then_reactivates(client, directory):
    client.force_login(directory.admin)
    user = directory.sales_user
    url = reverse("accounts:user_state", args=[user.pk, "deactivate"])
    response = client.get(url)
    assert response.status_code == 200 and "Deactivate" in response.content.decode()
    assert state_of(user) == UserState.ACTIVE
    client.post(url)
    assert state_of(user) == UserState.DEACTIVATED
    client.post(reverse("accounts:user_state", args=[user.pk, "reactivate"]))
    assert state_of(user) == UserState.ACTIVE


def test_unknown_state_action_is_404(client, directory):
    client.force_login(directory.admin)
    assert client.post(reverse("accounts:user_state", args=[directory.eng_user.pk, "explode"])).status_code == 404


def test_cannot_deactivate_self(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:user_state", args=[directory.admin.pk, "deactivate"]), follow=True)
    assert any("self_lockout" in m for m in messages_of(response))
    assert state_of(directory.admin) == UserState.ACTIVE


def test_last_admin_cannot_be_deactivated(client, directory, user_factory):
    # A Django superuser without the Cloud Admin role may change the admin, but not remove the last one.
    root = user_factory("root", org=directory.acme, roles=["console-user"], django_admin=True)
    client.force_login(root)
    response = client.post(reverse("accounts:user_state", args=[directory.admin.pk, "deactivate"]), follow=True)
    assert response.status_code == 200
    assert any("last_admin" in m for m in messages_of(response))
    assert state_of(directory.admin) == UserState.ACTIVE


def test_cross_org_admin_cannot_deactivate_a_cloud_admin(client, directory, user_factory):
    cross = user_factory("cross", org=directory.acme, roles=["cross-org-admin"])
    client.force_login(cross)
    response = client.post(reverse("accounts:user_state", args=[directory.admin.pk, "deactivate"]), follow=True)
    assert "Only a Customer Cloud Admin can change admin. (target_more_privileged)" in messages_of(response)
    assert state_of(directory.admin) == UserState.ACTIVE


# ---- move -----------------------------------------------------------------------------------


def test_move_user(client, directory):
    client.force_login(directory.eng_admin)
    user = directory.eng_user
    response = client.get(reverse("accounts:user_move", args=[user.pk]))
    assert set(response.context["form"].fields["org"].queryset) == {directory.platform}
    client.post(reverse("accounts:user_move", args=[user.pk]), {"org": directory.platform.pk})
    user.profile.refresh_from_db()
    assert user.profile.org == directory.platform
    assert AuditEvent.objects.filter(action="user.moved", target_id=str(user.pk)).exists()


def test_org_admin_cannot_move_user_out_of_subtree(client, directory):
    client.force_login(directory.eng_admin)
    response = client.post(reverse("accounts:user_move", args=[directory.eng_user.pk]),
                           {"org": directory.sales.pk})
    assert "invalid_choice" in error_codes(response, "org")


# ---- roles ----------------------------------------------------------------------------------


def _role_pk(slug):
    from accounts.models import Role

    return Role.objects.get(slug=slug).pk


def test_assign_roles_with_checkboxes(client, directory):
    client.force_login(directory.admin)
    user = directory.eng_user
    response = client.post(reverse("accounts:user_roles", args=[user.pk]),
                           {"roles": [_role_pk("help-desk"), _role_pk("console-user")]})
    assert response.status_code == 302
    assert {g.role.slug for g in user.groups.all()} == {"help-desk", "console-user"}
    assert AuditEvent.objects.filter(action="user.role_added", new_value="Help Desk").exists()


def test_self_demotion_is_refused(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:user_roles", args=[directory.admin.pk]),
                           {"roles": [_role_pk("console-user")]})
    assert response.status_code == 200
    assert "self_role_change" in error_codes(response, "roles")
    assert directory.admin.groups.filter(role__slug=CUSTOMER_CLOUD_ADMIN).exists()


def test_org_admin_cannot_change_roles_of_a_more_privileged_user(client, directory, user_factory):
    """The privilege rule (issue 7 §1): an Identity Management Administrator holds manage_identity
    everywhere, which an Org Admin does not, so the Org Admin may not change their roles at all."""
    boss = user_factory("boss", org=directory.platform, roles=["identity-management-administrator"])
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:user_roles", args=[boss.pk]))
    assert response["Location"] == reverse("accounts:user_detail", args=[boss.pk])
    client.post(reverse("accounts:user_roles", args=[boss.pk]), {"roles": [_role_pk("user-modify")]})
    assert {g.role.slug for g in boss.groups.all()} == {"identity-management-administrator"}
    page = client.get(reverse("accounts:user_detail", args=[boss.pk]))
    assert "(target_more_privileged)" in " ".join(messages_of(page))
    assert reverse("accounts:user_roles", args=[boss.pk]) not in page.content.decode()


def test_org_admin_cannot_grant_cloud_admin(client, directory):
    client.force_login(directory.eng_admin)
    response = client.post(reverse("accounts:user_roles", args=[directory.eng_user.pk]),
                           {"roles": [_role_pk(CUSTOMER_CLOUD_ADMIN)]})
    assert "invalid_choice" in error_codes(response, "roles")
    assert not directory.eng_user.groups.filter(role__slug=CUSTOMER_CLOUD_ADMIN).exists()


def test_manager_without_assign_roles_gets_403(client, directory, user_factory):
    manager = user_factory("manager", org=directory.engineering, roles=["org-manager"])
    client.force_login(manager)
    assert client.get(reverse("accounts:user_roles", args=[directory.eng_user.pk])).status_code == 403


# ---- bulk -----------------------------------------------------------------------------------


def test_bulk_block_reports_refused_rows(client, directory):
    client.force_login(directory.admin)
    ids = [directory.eng_user.pk, directory.sales_user.pk, directory.admin.pk]
    response = client.post(reverse("accounts:user_bulk_state"), {"action": "block", "ids": ids}, follow=True)
    msgs = messages_of(response)
    assert "Blocked 2 users." in msgs
    assert any(m.startswith("admin:") and "self_lockout" in m for m in msgs)
    assert state_of(directory.eng_user) == UserState.BLOCKED
    assert state_of(directory.sales_user) == UserState.BLOCKED
    assert state_of(directory.admin) == UserState.ACTIVE

    response = client.post(reverse("accounts:user_bulk_state"), {"action": "unblock", "ids": ids}, follow=True)
    assert "Unblocked 2 users." in messages_of(response)


def test_bulk_block_by_org_admin_skips_users_out_of_scope(client, directory):
    client.force_login(directory.eng_admin)
    ids = [directory.eng_user.pk, directory.sales_user.pk]
    response = client.post(reverse("accounts:user_bulk_state"), {"action": "block", "ids": ids}, follow=True)
    msgs = messages_of(response)
    assert "Blocked 1 user." in msgs
    assert any("not found" in m for m in msgs)
    assert state_of(directory.sales_user) == UserState.ACTIVE


def test_bulk_block_refusal_from_service_scope(client, directory, user_factory):
    """A help desk agent sees everyone but may not block: each row is refused with a reason."""
    agent = user_factory("agent", org=directory.acme, roles=["help-desk", "org-manager"])
    client.force_login(agent)
    ids = [directory.eng_user.pk, directory.sales_user.pk, directory.member.pk]
    response = client.post(reverse("accounts:user_bulk_state"), {"action": "block", "ids": ids}, follow=True)
    msgs = messages_of(response)
    assert "Blocked 3 users." in msgs  # org-manager of Acme covers its whole subtree

    response = client.post(reverse("accounts:user_bulk_state"), {"action": "block", "ids": [directory.admin.pk]},
                           follow=True)
    assert any("out_of_scope" in m for m in messages_of(response))


def test_bulk_needs_manage_users_and_post(client, directory):
    client.force_login(directory.auditor)
    assert client.post(reverse("accounts:user_bulk_state"), {"action": "block",
                                                             "ids": [directory.eng_user.pk]}).status_code == 403
    client.force_login(directory.admin)
    assert client.get(reverse("accounts:user_bulk_state")).status_code == 405


def test_bulk_without_selection(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:user_bulk_state"), {"action": "block"}, follow=True)
    assert "Select at least one user." in messages_of(response)
