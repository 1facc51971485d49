"""Sign-in, sign-out, own password, home page and the server-side refusals every console page shares."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.identity.types import UserState
from accounts.models import AuditEvent
from tests.accounts.console_support import messages_of
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

PROTECTED = ["accounts:home", "accounts:account", "accounts:user_list", "accounts:org_list", "accounts:role_list",
             "accounts:audit_list", "accounts:audit_export", "accounts:password_change", "accounts:user_create"]


@pytest.mark.parametrize("name", PROTECTED)
def test_anonymous_is_redirected_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_sign_in_asks_username_first_then_password_for_local_orgs(client, directory):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' not in html
    assert "csrfmiddlewaretoken" in html
    response = client.post(reverse("accounts:login"), {"username": "admin"})
    assert 'name="password"' in response.content.decode()


def test_sign_in_with_password_lands_on_home(client, directory):
    response = client.post(reverse("accounts:login"), {"username": "admin", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:home")
    assert AuditEvent.objects.filter(action="auth.login_succeeded", actor_label="admin").exists()


def test_sign_in_with_wrong_password_shows_error(client, directory):
    response = client.post(reverse("accounts:login"), {"username": "admin", "password": "Wrong-Pass-123"})
    assert response.status_code == 400
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_blocked_user_cannot_sign_in(client, user_factory, fast_hasher):
    user_factory("blocked.one", state=UserState.BLOCKED)
    response = client.post(reverse("accounts:login"), {"username": "blocked.one", "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_sign_out_needs_post(client, directory):
    client.force_login(directory.member)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session


def test_console_user_sees_my_account_only(client, directory):
    client.force_login(directory.member)
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "My account" in html and directory.member.username in html
    assert reverse("accounts:user_list") not in html
    assert reverse("accounts:audit_list") not in html
    for name in ("accounts:user_list", "accounts:org_list", "accounts:role_list", "accounts:audit_list",
                 "accounts:user_create"):
        response = client.get(reverse(name))
        assert response.status_code == 403, name
        assert "You don't have access" in response.content.decode()


def test_admin_home_is_dashboard_with_counts(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 200
    counts = {c["state"]: c["count"] for c in response.context["counts"]}
    assert counts["active"] == 7  # admin, eng.admin, auditor, member, eng.user, plat.user, sales.user
    assert response.context["org_count"] == 5
    html = response.content.decode()
    for name in ("accounts:user_list", "accounts:org_list", "accounts:role_list", "accounts:audit_list"):
        assert reverse(name) in html


def test_org_admin_dashboard_counts_own_subtree(client, directory):
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:home"))
    assert response.context["total"] == 3  # eng.admin, eng.user, plat.user
    assert response.context["org_count"] == 2
    assert reverse("accounts:audit_list") not in response.content.decode()


def test_password_change_checks_old_password(client, directory):
    client.force_login(directory.member)
    response = client.post(reverse("accounts:password_change"), {
        "old_password": "not-it", "new_password1": "Brand-New-Pass-9", "new_password2": "Brand-New-Pass-9",
    })
    assert response.status_code == 200
    assert "password_incorrect" in {e.code for e in response.context["form"].errors.as_data()["old_password"]}


def test_password_change_enforces_rules(client, directory):
    client.force_login(directory.member)
    response = client.post(reverse("accounts:password_change"), {
        "old_password": TEST_PASSWORD, "new_password1": "password1", "new_password2": "password1",
    })
    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]


def test_password_change_goes_through_service_and_keeps_session(client, directory):
    client.force_login(directory.member)
    response = client.post(reverse("accounts:password_change"), {
        "old_password": TEST_PASSWORD, "new_password1": "Brand-New-Pass-9", "new_password2": "Brand-New-Pass-9",
    }, follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:account")
    assert "Your password has been changed." in messages_of(response)
    directory.member.refresh_from_db()
    assert directory.member.check_password("Brand-New-Pass-9")
    # Still signed in (session hash updated), and the change is audited by the service.
    assert client.get(reverse("accounts:account")).status_code == 200
    assert AuditEvent.objects.filter(action="user.password_changed", target_id=str(directory.member.pk),
                                     actor_label="member").exists()


def test_forbidden_page_is_friendly(client, directory):
    client.force_login(directory.auditor)
    response = client.get(reverse("accounts:user_list"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Traceback" not in html and "You don't have access" in html


def test_desktop_only_user_cannot_sign_in_to_console(client, user_factory):
    from django.urls import reverse

    from tests.conftest import TEST_PASSWORD

    user_factory("desk", roles=["desktop-user"])
    response = client.post(reverse("accounts:login"), {"username": "desk", "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "console access" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_org_admin_cannot_grant_global_help_desk(user_factory, org_factory):
    from accounts.access import Access
    from accounts.models import Role

    eng = org_factory("Engineering")
    access = Access(user_factory("oa", org=eng, roles=["org-admin"]))
    assert not access.can_assign_role(Role.objects.get(slug="help-desk"))
    assert access.can_assign_role(Role.objects.get(slug="org-manager"))
