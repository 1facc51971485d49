"""Identity provider changes and org sign-in changes are judged with the admin lock held (third review,
H1), on two real PostgreSQL connections: an Identity Management Administrator's metadata upload (or an
Org Admin pointing an org at a provider) made while a Cloud Admin grants one of the provider's users a
role the actor does not hold waits for that grant and is refused.

Read before the grant committed, the check would see a plain user and let the change through: the
actor would then control how a Cross Org Admin signs in."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.identity.orgs import org_update_settings
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, AuthMethod, IdentityChange, Mode
from sso.models import IdentityProvider
from sso.services import provider_save
from tests.concurrency import race_held_open

pytestmark = pytest.mark.django_db(transaction=True)


def _race(grant, change) -> dict[str, str]:
    """Run ``grant`` in one session (held open until ``change`` has started in another); the outcomes."""
    granted, changed = race_held_open(grant, change)
    return {k: v for k, v in (("grant", granted), ("change", changed)) if v is not None}


def _grant(admin_user, user, *roles):
    return lambda: apply_identity_change(
        change=IdentityChange(user_id=user.pk, roles=frozenset(roles), mode=Mode.UPDATE),
        actor=Actor.for_user(admin_user))


def _set_roles(admin_user, sso_user_factory, sso_org):
    sara = sso_user_factory("sara.sales", roles=["console-user"])
    return _grant(admin_user, sara, "console-user", "cross-org-admin")


def _assign_role(admin_user, sso_user_factory, sso_org):  # roles_add: the console's "assign role"
    from accounts.console_actions import role_assign

    sara = sso_user_factory("sara.sales", roles=["console-user"])
    return lambda: role_assign(actor=Actor.for_user(admin_user), user=sara, role="cross-org-admin")


def _create_admin(admin_user, sso_user_factory, sso_org):  # a new Cross Org Admin in the SSO org
    return lambda: apply_identity_change(
        change=IdentityChange(username="sara.sales", email="sara@example.com", org_id=sso_org.pk,
                              roles=frozenset({"console-user", "cross-org-admin"}), mode=Mode.CREATE),
        actor=Actor.for_user(admin_user))


@pytest.fixture
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions and an advisory lock (SQLite has one writer)")


@pytest.mark.parametrize("grant", [_set_roles, _assign_role, _create_admin])
def test_metadata_change_waits_for_a_role_grant_and_sees_it(needs_postgres, grant, user_factory, sso_user_factory,
                                                           sso_org, admin_user, provider, attacker_idp):
    ivan = user_factory("ivan.identity", roles=["identity-management-administrator"])
    before = provider.metadata_xml

    def swap_certificate():
        mine = IdentityProvider.objects.get(pk=provider.pk)
        provider_save(actor=Actor.for_user(ivan), provider=mine, metadata_xml=attacker_idp.metadata())

    outcome = _race(grant(admin_user, sso_user_factory, sso_org), swap_certificate)
    assert outcome == {"grant": "ok", "change": "provider_more_privileged"}, outcome
    provider.refresh_from_db()
    assert provider.metadata_xml == before


def test_pointing_an_org_at_a_provider_waits_for_a_role_grant_and_sees_it(needs_postgres, user_factory,
                                                                         org_factory, admin_user, provider):
    sales = org_factory("Sales")
    olivia = user_factory("olivia", org=sales, roles=["org-admin"])
    hank = user_factory("hank", org=sales, roles=["console-user"])

    def point_sales_at_the_provider():
        org_update_settings(actor=Actor.for_user(olivia), org=sales.__class__.objects.get(pk=sales.pk),
                            auth_method=AuthMethod.SSO, auth_provider=provider)

    outcome = _race(_grant(admin_user, hank, "console-user", "help-desk"), point_sales_at_the_provider)
    assert outcome == {"grant": "ok", "change": "target_more_privileged"}, outcome
    sales.refresh_from_db()
    assert sales.auth_provider_id is None


def test_break_glass_change_waits_for_a_role_grant_and_sees_it(needs_postgres, user_factory, sso_user_factory,
                                                              admin_user, provider):
    """Making someone break-glass changes how they sign in: judged after the admin lock, like the rest."""
    from sso.services import break_glass_set

    ivan = user_factory("ivan.identity", roles=["identity-management-administrator"])
    sara = sso_user_factory("sara.sales", roles=["console-user"])

    def make_sara_break_glass():
        break_glass_set(actor=Actor.for_user(ivan), provider=IdentityProvider.objects.get(pk=provider.pk),
                        users=[sara])

    outcome = _race(_grant(admin_user, sara, "console-user", "cross-org-admin"), make_sara_break_glass)
    assert outcome == {"grant": "ok", "change": "target_more_privileged"}, outcome
    assert not provider.break_glass_users.exists()
