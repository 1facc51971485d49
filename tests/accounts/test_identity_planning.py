"""Planning is pure (issue 7 §2): a refused change claims no username or link, adds no phantom admin
and mutates no loaded object, so it cannot help a later change of the same batch."""

from __future__ import annotations

import pytest

from accounts.exceptions import IdentityError
from accounts.identity.loading import BatchState, RoleIndex
from accounts.identity.orgs import OrgIndex
from accounts.identity.planner import plan_change
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, ExternalLink, IdentityChange, Mode, Source, UserState
from accounts.models import ExternalIdentity
from accounts.roles import CUSTOMER_CLOUD_ADMIN

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("refused_row", ["reactivate_then_bad_org", "grant_admin_then_unknown_group"])
def test_refused_row_adds_no_phantom_admin(refused_row, admin_user, user_factory, system_actor):
    """Row 1 would make a second admin but is refused later in its own plan; row 2 then removes the
    only real admin. Before the fix, row 1 had already added its user to the batch's admin set."""
    if refused_row == "reactivate_then_bad_org":
        other = user_factory("old-admin", roles=[CUSTOMER_CLOUD_ADMIN], state=UserState.DEACTIVATED)
        row1 = IdentityChange(user_id=other.pk, state=UserState.ACTIVE, org_id=999_999, ref=1)
    else:
        other = user_factory("helper")
        row1 = IdentityChange(user_id=other.pk, roles_add=frozenset({CUSTOMER_CLOUD_ADMIN}),
                              groups_add=frozenset({999_999}), ref=1)
    result = apply_identity_changes(actor=system_actor, changes=[
        row1, IdentityChange(user_id=admin_user.pk, state=UserState.DEACTIVATED, ref=2),
    ])
    assert [r.status for r in result.results] == ["refused", "refused"]
    assert result.results[0].error.code in ("org_not_found", "unknown_group")
    assert result.results[1].error.code == "last_admin"
    admin_user.refresh_from_db()
    assert admin_user.is_active and admin_user.profile.state == UserState.ACTIVE


def test_invited_admin_does_not_count_as_active(admin_user, user_factory, system_actor):
    user_factory("invited-admin", roles=[CUSTOMER_CLOUD_ADMIN], password=None)  # no password: invited
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=admin_user.pk,
                                                                        state=UserState.DEACTIVATED))
    assert err.value.code == "last_admin"


def test_last_admin_cannot_be_put_back_to_invited(admin_user, system_actor):
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=admin_user.pk,
                                                                        state=UserState.INVITED))
    assert err.value.code == "last_admin"


def test_refused_create_does_not_claim_its_username(admin_user, root_org):
    actor = Actor.for_user(admin_user)
    result = apply_identity_changes(actor=actor, changes=[
        # refused after the username check: only setup commands may grant Django admin
        IdentityChange(username="neo", org_id=root_org.pk, django_admin=True, mode=Mode.CREATE, ref=1),
        IdentityChange(username="Neo", org_id=root_org.pk, mode=Mode.CREATE, ref=2),
    ])
    assert [r.status for r in result.results] == ["refused", "created"]
    assert result.results[0].error.code == "django_admin_system_only"


def test_refused_rename_does_not_claim_its_username(user_factory, system_actor):
    first, second = user_factory("first"), user_factory("second")
    result = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(user_id=first.pk, username="trinity", email="not-an-email", ref=1),
        IdentityChange(user_id=second.pk, username="trinity", ref=2),
    ])
    assert [r.status for r in result.results] == ["refused", "updated"]
    assert result.results[0].error.code == "email_invalid"
    second.refresh_from_db()
    assert second.username == "trinity"


def test_accepted_claims_still_hold_within_the_batch(user_factory, system_actor, root_org):
    first, second = user_factory("first"), user_factory("second")
    result = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(user_id=first.pk, username="trinity", ref=1),
        IdentityChange(user_id=second.pk, username="TRINITY", ref=2),
        IdentityChange(username="link1", org_id=root_org.pk, link=ExternalLink("saml", "idp", "x"), ref=3),
        IdentityChange(username="link2", org_id=root_org.pk, link=ExternalLink("saml", "idp", "x"), ref=4),
    ])
    assert [r.status for r in result.results] == ["updated", "refused", "created", "refused"]
    assert result.results[1].error.code == "username_duplicate_in_batch"
    assert result.results[3].error.code == "external_id_duplicate_in_batch"


def test_refused_create_does_not_claim_its_link(admin_user, root_org):
    actor = Actor.for_user(admin_user)
    link = ExternalLink(source=Source.SAML, provider="idp", external_id="ext-1")
    result = apply_identity_changes(actor=actor, changes=[
        IdentityChange(username="a1", org_id=root_org.pk, link=link, django_admin=True, mode=Mode.CREATE, ref=1),
        IdentityChange(username="a2", org_id=root_org.pk, link=link, mode=Mode.CREATE, ref=2),
    ])
    assert [r.status for r in result.results] == ["refused", "created"]
    assert ExternalIdentity.objects.get(external_id="ext-1").user.username == "a2"


def test_refused_plan_leaves_batch_state_untouched(user_factory, system_actor, admin_user):
    """The planner itself: a refused plan changes neither the loaded objects nor the claims."""
    user = user_factory("linked")
    apply_identity_change(actor=system_actor, change=IdentityChange(
        user_id=user.pk, link=ExternalLink(Source.SAML, "idp", "old-id")))
    change = IdentityChange(user_id=user.pk, username="renamed", email="bad", roles_add=frozenset(
        {CUSTOMER_CLOUD_ADMIN}), link=ExternalLink(Source.SAML, "idp", "new-id"))
    state = BatchState([change], system_actor, OrgIndex(), RoleIndex())
    loaded = state.by_id[user.pk]
    admins_before = set(state.active_admins)
    with pytest.raises(IdentityError):
        plan_change(change, state)
    assert state.claimed_usernames == {} and state.claimed_links == {}
    assert state.active_admins == admins_before
    assert loaded.user.username == "linked" and loaded.links[(Source.SAML, "idp")].external_id == "old-id"
    assert state.by_id[user.pk] is loaded

    # The same change without the bad email is planned on copies, and only accept() records it.
    good = IdentityChange(user_id=user.pk, username="renamed", roles_add=frozenset({CUSTOMER_CLOUD_ADMIN}),
                          link=ExternalLink(Source.SAML, "idp", "new-id"))
    plan = plan_change(good, state)
    assert loaded.user.username == "linked" and loaded.links[(Source.SAML, "idp")].external_id == "old-id"
    assert state.claimed_usernames == {} and user.pk not in state.active_admins
    state.accept(plan)
    assert state.claimed_usernames == {"renamed": ("user", user.pk)}
    assert (Source.SAML, "idp", "new-id") in state.claimed_links
    assert user.pk in state.active_admins
    assert state.by_id[user.pk].links[(Source.SAML, "idp")].external_id == "new-id"
