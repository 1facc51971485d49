"""The deferred-join paginator returns exactly what a plain OFFSET paginator would."""

from __future__ import annotations

import pytest
from django.core.paginator import Paginator

from accounts import selectors
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import IdentityChange
from accounts.pagination import DeferredJoinPaginator

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sort", ["username", "-username", "name", "-created", "org"])
def test_pages_match_plain_pagination(admin_user, root_org, system_actor, sort):
    apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(username=f"p{i:03d}", last_name=f"L{i % 7}", org_id=root_org.pk) for i in range(53)])
    users = selectors.user_list(viewer=admin_user, sort=sort)
    plain, deferred = Paginator(users, 10), DeferredJoinPaginator(users, 10)
    assert deferred.num_pages == plain.num_pages == 6
    for number in range(1, 7):
        assert [u.pk for u in deferred.page(number)] == [u.pk for u in plain.page(number)]
    # Rows come with their profile and org already loaded.
    first = deferred.page(2)[0]
    assert "profile" in first._state.fields_cache


def test_user_without_profile_is_listed_but_has_no_detail(admin_user, django_user_model):
    bare = django_user_model.objects.create_user("bare.superuser")  # what createsuperuser makes
    assert bare in selectors.user_list(viewer=admin_user)
    assert selectors.user_get(viewer=admin_user, user_id=bare.pk) is None


def test_users_page_renders_with_a_profileless_user(admin_client, django_user_model):
    from django.urls import reverse

    django_user_model.objects.create_user("bare.superuser")
    response = admin_client.get(reverse("accounts:user_list"))
    assert response.status_code == 200 and "bare.superuser" in response.content.decode()
