"""Review 3 H2: a set-password link or temporary password obtained before a promotion must not work
after it. Raising a user's privilege (through any front door: all go through the identity service)
voids their invitation, their reset links and a pending temporary password, and audits it.

Reproduced through the real pages: an Org Admin of Engineering gets a link for an Engineering user,
a Cloud Admin then grants that user Cross Org Admin, and the Org Admin tries the old link.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.credentials.models import Invitation, RequiredAction
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, UserState
from accounts.models import AuditEvent, Role
from tests.accounts.console_support import messages_of
from tests.accounts.link_support import open_link, submit_link

pytestmark = pytest.mark.usefixtures("fast_hasher")

NEW_PASSWORD = "Brand-New-Pass-77"
LINK = re.compile(r"http://[^\s]+/(?:sign-in/reset|invitation)/[^\s]+/")


def grant_roles(admin, user, *slugs: str):
    """The Cloud Admin's "Roles" page: the user keeps the roles held and gets ``slugs``."""
    client = Client()
    client.force_login(admin)
    held = set(user.groups.filter(role__isnull=False).values_list("role__slug", flat=True))
    ids = [str(pk) for pk in Role.objects.filter(slug__in=held | set(slugs)).values_list("pk", flat=True)]
    resp = client.post(reverse("accounts:user_roles", args=[user.pk]), {"roles": ids})
    assert resp.status_code == 302, resp.content
    assert set(user.groups.filter(role__isnull=False).values_list("role__slug", flat=True)) == held | set(slugs)


def voided_events(user):
    return list(AuditEvent.objects.filter(action="user.credentials_voided", target_id=str(user.pk)))


@pytest.fixture
def invited(user_factory, directory):
    return user_factory("zed.two", org=directory.engineering, password=None, email="zed@example.com")


def test_invitation_link_from_before_a_promotion_is_void_after_it(directory, invited):
    eve = Client()
    eve.force_login(directory.eng_admin)  # Org Admin of Engineering
    resp = eve.post(reverse("accounts:user_invitation", args=[invited.pk]), {"how": "copy"})
    path = urlsplit(resp.context["link"]).path
    holder = Client()
    assert open_link(holder, path).status_code == 200  # live before the promotion, and opened

    grant_roles(directory.admin, invited, "cross-org-admin")

    again = eve.post(reverse("accounts:user_invitation", args=[invited.pk]), {"how": "copy"}, follow=True)
    assert any("target_more_privileged" in m for m in messages_of(again))
    anon = Client()
    assert anon.get(path).status_code == 400
    # The browser that opened the link before the promotion holds its token: it is void there too.
    used = holder.post(reverse("accounts:invitation_accept", args=[path.split("/")[2], "set-password"]),
                       {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert used.status_code == 400 and not used.context.get("done")
    assert submit_link(Client(), path, NEW_PASSWORD).status_code == 400
    invited.refresh_from_db()
    assert not invited.has_usable_password() and invited.profile.state == UserState.INVITED
    assert not Invitation.objects.filter(user=invited).exists()
    [event] = voided_events(invited)
    assert event.actor_label == directory.admin.username
    assert event.new_value == {"invitation": True, "reset_links": True, "temporary_password": False}
    # A Cloud Admin (who outranks the new role) sends a fresh invitation, and it works.
    admin = Client()
    admin.force_login(directory.admin)
    fresh = urlsplit(admin.post(reverse("accounts:user_invitation", args=[invited.pk]),
                                {"how": "copy"}).context["link"]).path
    assert submit_link(anon, fresh, NEW_PASSWORD).context["done"]


def test_reset_link_from_before_a_promotion_is_void_after_it(directory):
    target = directory.eng_user
    eve = Client()
    eve.force_login(directory.eng_admin)
    assert eve.post(reverse("accounts:user_reset_link", args=[target.pk])).status_code == 302
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    assert open_link(Client(), path).status_code == 200

    grant_roles(directory.admin, target, "cross-org-admin")

    anon = Client()
    assert anon.get(path).status_code == 400
    assert submit_link(anon, path, NEW_PASSWORD).status_code == 400
    target.refresh_from_db()
    assert not target.check_password(NEW_PASSWORD)
    [event] = voided_events(target)
    assert event.new_value == {"invitation": False, "reset_links": True, "temporary_password": False}
    # The user asks for a new link themselves: it works.
    assert Client().post("/sign-in/forgot/", {"identifier": target.username}).status_code == 200
    fresh = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    assert submit_link(anon, fresh, NEW_PASSWORD).context["done"]


def test_temporary_password_from_before_a_promotion_no_longer_signs_in(directory):
    target = directory.eng_user
    eve = Client()
    eve.force_login(directory.eng_admin)
    temp = eve.post(reverse("accounts:user_temporary_password", args=[target.pk])).context["password"]

    grant_roles(directory.admin, target, "cross-org-admin")

    target.refresh_from_db()
    assert not target.has_usable_password()
    assert not RequiredAction.objects.filter(user=target, kind="change_password").exists()
    attacker = Client()
    attacker.post("/sign-in/", {"username": target.username})
    resp = attacker.post("/sign-in/", {"username": target.username, "password": temp})
    assert resp.status_code == 400 and "_auth_user_id" not in attacker.session
    [event] = voided_events(target)
    assert event.new_value == {"invitation": False, "reset_links": True, "temporary_password": True}


def test_session_signed_in_with_the_temporary_password_ends_at_the_promotion(directory):
    target = directory.eng_user
    eve = Client()
    eve.force_login(directory.eng_admin)
    temp = eve.post(reverse("accounts:user_temporary_password", args=[target.pk])).context["password"]
    attacker = Client()
    attacker.post("/sign-in/", {"username": target.username})
    assert attacker.post("/sign-in/", {"username": target.username, "password": temp}).status_code == 302

    grant_roles(directory.admin, target, "cross-org-admin")

    # The required password change would have let the holder of the temporary password choose one.
    resp = attacker.post("/account/new-password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert resp.status_code == 302 and resp["Location"].startswith(reverse("accounts:login"))
    target.refresh_from_db()
    assert not target.check_password(NEW_PASSWORD)


def test_a_change_that_does_not_raise_privilege_keeps_links(directory, user_factory):
    target = user_factory("eng.modifier", org=directory.engineering, roles=["user-modify"])
    eve = Client()
    eve.force_login(directory.eng_admin)
    eve.post(reverse("accounts:user_reset_link", args=[target.pk]))
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    temp_target = user_factory("eng.orgadmin", org=directory.engineering, roles=["org-admin"])
    temp = eve.post(reverse("accounts:user_temporary_password", args=[temp_target.pk])).context["password"]

    # A sign-in role (no power over others), and a move of an Org Admin further down their subtree.
    grant_roles(directory.admin, target, "console-user", "desktop-user")
    actor = Actor.for_user(directory.admin)
    result = apply_identity_changes(changes=[IdentityChange(user_id=temp_target.pk, org_id=directory.platform.pk)],
                                    actor=actor)
    assert result.results[0].status == "updated"

    assert open_link(Client(), path).status_code == 200
    temp_target.refresh_from_db()
    assert temp_target.check_password(temp)
    assert not AuditEvent.objects.filter(action="user.credentials_voided").exists()


def test_move_to_an_org_outside_the_old_reach_voids_links_of_an_org_admin(directory, user_factory):
    target = user_factory("plat.admin", org=directory.platform, roles=["org-admin"])
    eve = Client()
    eve.force_login(directory.eng_admin)  # may change an Org Admin of Platform (inside Engineering)
    assert eve.post(reverse("accounts:user_reset_link", args=[target.pk])).status_code == 302
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path

    actor = Actor.for_user(directory.admin)
    apply_identity_changes(changes=[IdentityChange(user_id=target.pk, org_id=directory.acme.pk)], actor=actor)

    assert Client().get(path).status_code == 400  # Org Admin of Acme: more than the Engineering admin holds
    assert len(voided_events(target)) == 1


def test_bulk_promotion_voids_in_a_few_queries(directory, user_factory, django_assert_max_num_queries):
    from accounts.credentials import service

    users = [user_factory(f"bulk{i}", org=directory.engineering, password=None) for i in range(30)]
    actor = Actor.for_user(directory.admin)
    for user in users:
        service.invite(actor=Actor.for_user(directory.eng_admin), user=user, base_url="http://t", email=False)
    changes = [IdentityChange(user_id=u.pk, roles_add=frozenset({"cross-org-admin"})) for u in users]
    baseline = [IdentityChange(user_id=u.pk, roles_remove=frozenset({"desktop-user"})) for u in users]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as plain:
        apply_identity_changes(changes=baseline, actor=actor)
    with CaptureQueriesContext(connection) as rising:
        apply_identity_changes(changes=changes, actor=actor)
    assert len(rising) - len(plain) <= 8  # voiding is per batch, not per user
    assert not Invitation.objects.filter(user__in=users).exists()
    assert AuditEvent.objects.filter(action="user.credentials_voided").count() == 30


def test_a_promotion_that_sets_the_password_keeps_that_password(directory):
    """The actor who promotes and sets the password in one change may change the user at the new
    level: their password stays; the earlier temporary password's requirement still has to be met."""
    target = directory.eng_user
    eve = Client()
    eve.force_login(directory.eng_admin)
    eve.post(reverse("accounts:user_temporary_password", args=[target.pk]))
    change = IdentityChange(user_id=target.pk, password=NEW_PASSWORD, roles_add=frozenset({"cross-org-admin"}))
    assert apply_identity_changes(changes=[change], actor=Actor.for_user(directory.admin)).results[0].status == "updated"
    target.refresh_from_db()
    assert target.check_password(NEW_PASSWORD)
    [event] = voided_events(target)
    assert event.new_value == {"invitation": False, "reset_links": True, "temporary_password": False}


def test_rises_compares_old_and_new_powers_by_the_privilege_rule():
    from accounts.identity.privilege import powers_from_roles, rises

    def powers(*roles, path="/1/2/", superuser=False):
        return powers_from_roles(list(roles), org_path=path, superuser=superuser)

    plain = powers(("console-user", ["console_access"], "org"))
    org_admin = ("org-admin", ["console_access", "manage_users", "reset_passwords"], "org")
    cross = ("cross-org-admin", ["console_access", "manage_users", "reset_passwords"], "global")
    assert not rises(before=plain, after=powers(("desktop-user", ["desktop_access"], "org")))  # sign-in only
    assert rises(before=plain, after=powers(org_admin))
    assert rises(before=powers(org_admin), after=powers(cross))
    assert not rises(before=powers(cross), after=powers(cross, org_admin))
    assert not rises(before=powers(org_admin), after=powers(org_admin, path="/1/2/3/"))  # further down
    assert rises(before=powers(org_admin), after=powers(org_admin, path="/1/"))  # further up
    assert rises(before=powers(cross), after=powers(cross, superuser=True))
    assert not rises(before=powers(cross, superuser=True), after=powers(cross))


def test_a_covered_role_added_to_a_cross_org_admin_voids_nothing(directory, user_factory):
    target = user_factory("cross.admin", org=directory.engineering, roles=["cross-org-admin"])
    eve = Client()
    eve.force_login(directory.admin)
    eve.post(reverse("accounts:user_reset_link", args=[target.pk]))
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    grant_roles(directory.admin, target, "org-admin")
    assert open_link(Client(), path).status_code == 200
    assert not voided_events(target)
