"""The users list's fast paths (issue 12: ≤ 200 ms p95 at 100k users) give exactly what the plain
paths give: the profile-side count, the sorted-matches page of a search, the "Created" sort."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import selectors
from accounts.credentials.models import SignInLock
from accounts.identity.types import UserState
from accounts.models import Role
from accounts.pagination import DeferredJoinPaginator

pytestmark = pytest.mark.django_db

ON_POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def people(directory, user_factory, django_user_model):
    """The directory plus 24 users spread over its orgs, a blocked one, a locked one, a profileless one."""
    orgs = [directory.acme, directory.engineering, directory.platform, directory.sales]
    for i in range(24):
        user_factory(f"worker{i:02d}", org=orgs[i % 4], first_name=f"First{i % 5}", last_name=f"Last{i % 3}",
                     email=f"w{i:02d}@{'acme' if i % 2 else 'globex'}.example")
    user_factory("blocked.bob", org=directory.engineering, state=UserState.BLOCKED)
    SignInLock.objects.create(username="worker03", locked_until=timezone.now() + timedelta(minutes=5))
    django_user_model.objects.create_user("bare.superuser", email="bare@globex.example")
    return directory


FILTER_CASES = [
    {},
    {"q": "worker"},
    {"q": "first1 last2"},
    {"q": "globex"},
    {"q": "nobody-matches"},
    {"state": "blocked"},
    {"state": "locked"},
    {"source": "local"},
    {"role": "org-admin"},
]


@pytest.mark.parametrize("viewer", ["admin", "eng_admin"])
def test_count_matches_the_list(people, viewer):
    viewer = getattr(people, viewer)
    for case in FILTER_CASES:
        for org in (None, people.engineering):
            filters = dict(case, org=org)
            if "role" in filters:
                filters["role"] = Role.objects.get(slug=filters["role"])
            expected = selectors.user_list(viewer=viewer, **filters).count()
            assert selectors.user_list_count(viewer=viewer, **filters) == expected, filters


def test_count_over_profiles_is_used_when_a_filter_needs_profiles(people):
    with CaptureQueriesContext(connection) as ctx:
        n = selectors.user_list_count(viewer=people.eng_admin)
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"]]
    assert n == 16  # Engineering (eng.admin, eng.user, blocked.bob, 6 workers) + Platform (plat.user, 6 workers)
    assert len(counts) == 1 and counts[0].startswith('SELECT COUNT(*) AS "__count" FROM "accounts_userprofile"')
    # The Cloud Admin's unfiltered list also holds the profileless user: counted over auth_user.
    assert selectors.user_list_count(viewer=people.admin) == 33


@pytest.mark.parametrize("q", ["worker", "a", "example first1"])
def test_search_pages_match_plain_pagination(people, q):
    for sort in ("username", "-username", "name", "-name", "email", "created", "-created", "org"):
        users = selectors.user_list(viewer=people.admin, q=q, sort=sort)
        plain = Paginator(users, 4)
        fast = DeferredJoinPaginator(users, 4, count=lambda: selectors.user_list_count(viewer=people.admin, q=q),
                                     sort_matches_up_to=1000)
        pages = [fast.get_page(n) for n in range(1, plain.num_pages + 1)]
        assert fast.count == plain.count and fast.num_pages == plain.num_pages, sort
        for number, page in enumerate(pages, start=1):
            assert [u.pk for u in page] == [u.pk for u in plain.page(number)], (sort, number)
        assert fast.get_page(plain.num_pages + 5).number == plain.num_pages  # past the end: the last page
        assert fast.get_page("x").number == 1
        for odd in ("²", "9" * 30, "-1", "0", "2.0"):  # never a 500: Django's own handling of odd numbers
            assert fast.get_page(odd).number == plain.get_page(odd).number, odd


def test_search_page_is_one_query_that_also_counts_on_postgres(people):
    users = selectors.user_list(viewer=people.admin, q="worker", sort="-created")
    counted = []
    paginator = DeferredJoinPaginator(users, 5, sort_matches_up_to=1000, count=lambda: counted.append(1) or
                                      selectors.user_list_count(viewer=people.admin, q="worker"))
    with CaptureQueriesContext(connection) as ctx:
        page = paginator.get_page("2")
    expected = [u.pk for u in Paginator(users, 5).page(2)]
    assert [u.pk for u in page] == expected
    sqls = [q["sql"] for q in ctx.captured_queries]
    if ON_POSTGRES:
        assert paginator.count == 24 and page.number == 2 and not counted
        assert len(sqls) == 2 and "COUNT(*) OVER ()" in sqls[0] and "COUNT(" not in sqls[1]
    else:
        assert not any("OVER ()" in sql for sql in sqls) and counted == [1]


def test_more_matches_than_the_limit_walk_the_index(people):
    users = selectors.user_list(viewer=people.admin, q="worker")
    paginator = DeferredJoinPaginator(users, 5, sort_matches_up_to=10)  # 24 matches > 10
    with CaptureQueriesContext(connection) as ctx:
        page = paginator.get_page(1)
    assert [u.username for u in page] == [f"worker{i:02d}" for i in range(5)]
    assert paginator.count == 24
    assert sum('COUNT(*) AS "__count"' in q["sql"] for q in ctx.captured_queries) == 1


def test_created_sort_is_creation_order(people, django_user_model):
    newest = django_user_model.objects.order_by("-pk").first()
    users = selectors.user_list(viewer=people.admin, sort="-created")
    assert users.first() == newest
    assert selectors.user_list(viewer=people.admin, sort="created").first().username == "admin"


def test_users_page_query_count_does_not_grow_with_the_page(client, people):
    client.force_login(people.admin)
    url = reverse("accounts:user_list")
    client.get(url)  # warm the session row
    with CaptureQueriesContext(connection) as small:
        response = client.get(url, {"per_page": 25, "q": "worker"})
    with CaptureQueriesContext(connection) as large:
        client.get(url, {"per_page": 100})
    assert response.status_code == 200 and response.context["page"].paginator.count == 24
    assert len(small.captured_queries) <= 13 and len(large.captured_queries) <= 13


def test_quick_select_writes_what_djangos_select_writes(people):
    import re

    from django import forms

    from accounts.access import Access
    from accounts.forms import UserFilterForm

    data = {"org": str(people.sales.pk), "state": "blocked", "per_page": "100", "role": "org-admin",
            "source": "local", "q": "x"}
    for bound in ({}, data):
        form = UserFilterForm(bound, access=Access.of(people.admin))
        for name in ("org", "role", "source", "state", "per_page"):
            field = form[name]
            quick = str(field)
            django = forms.Select.render(field.field.widget, field.html_name, field.value(),
                                         attrs=field.build_widget_attrs({"id": field.auto_id}))
            assert quick == re.sub(r">\s+<", "><", django).strip(), name
            if bound:
                assert quick.count(" selected") == 1, name
