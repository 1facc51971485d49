"""Finding people: substring search, page sizes, source filter choices, audit links without dead ends."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode, Source
from accounts.models import AuditEvent
from accounts.selectors import SEARCH_FIELDS, search_terms, user_list, user_source_choices

pytestmark = pytest.mark.django_db


def usernames(response) -> list[str]:
    return sorted(u.username for u in response.context["page"])


@pytest.mark.parametrize("q, expected", [
    ("sales", ["sales.user"]),                    # inside a username, not at its start
    ("ELLER", ["sales.user"]),                    # inside a last name, any case
    ("user@", []),                                # no email contains it
    ("sam sel", ["sales.user"]),                  # every word must match, in any field
    ("sam engineer", []),
    ("ngineer", ["eng.user"]),
    ("  plat.  ", ["plat.user"]),
])
def test_search_finds_substrings(client, directory, q, expected):
    client.force_login(directory.admin)
    assert usernames(client.get(reverse("accounts:user_list"), {"q": q})) == expected


def test_search_finds_part_of_an_email(client, directory, user_factory):
    user_factory("zed", email="zed.zulu@acme-widgets.example", org=directory.sales)
    client.force_login(directory.admin)
    assert usernames(client.get(reverse("accounts:user_list"), {"q": "acme-wid"})) == ["zed"]
    assert usernames(client.get(reverse("accounts:user_list"), {"q": "zulu@"})) == ["zed"]


@pytest.mark.parametrize("field", SEARCH_FIELDS)
def test_search_looks_in_every_field(directory, user_factory, fast_hasher, field):
    """A word found in only one of the fields finds the user: fails if a field stops being searched."""
    values = {"username": "plain.one", "email": "plain.one@example.org", "first_name": "Plain", "last_name": "One"}
    values[field] = {"username": "has.qzx7w", "email": "has.qzx7w@example.org"}.get(field, "Qzx7wname")
    username = values.pop("username")
    user_factory(username, org=directory.sales, **values)
    user_factory("other.two", org=directory.sales, email="other.two@example.org", first_name="Other", last_name="Two")
    assert [u.username for u in user_list(viewer=directory.admin, q="QZX7W")] == [username]


def test_search_word_never_spans_two_fields(directory, user_factory, fast_hasher):
    """The fields are searched as one space-joined text; a word matches inside one field only."""
    user_factory("joe", org=directory.sales, email="joe@ex.org", first_name="Ann", last_name="Lee")
    for word in ("joejoe@", "ex.organn", "annlee"):
        assert not [u for u in user_list(viewer=directory.admin, q=word) if u.username == "joe"], word
    assert [u.username for u in user_list(viewer=directory.admin, q="org ann")] == ["joe"]  # two words, two fields


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL trigram index (migration 0011)")
def test_search_uses_the_trigram_index(directory):
    """The search expression is the indexed one (migration 0011): EXPLAIN names the index."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            pytest.skip("pg_trgm is not installed")
        # A test table is small enough to scan or walk in username order: only a bitmap scan is left.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = user_list(viewer=directory.admin, q="ser42").order_by().explain()
    assert "idm_user_search_trgm" in plan


def test_search_respects_scope(client, directory):
    client.force_login(directory.eng_admin)
    assert usernames(client.get(reverse("accounts:user_list"), {"q": ".user"})) == ["eng.user", "plat.user"]


def test_search_terms_are_capped_and_deduplicated():
    assert search_terms("  a  A b ") == ["a", "b"]
    assert search_terms("1 2 3 4 5 6 7") == ["1", "2", "3", "4", "5"]
    assert search_terms("") == []


@pytest.mark.parametrize("per_page, expected", [("25", 25), ("100", 30), ("200", 30), ("", 30), ("7", 30)])
def test_page_size_choice(client, admin_user, user_factory, fast_hasher, per_page, expected):
    for i in range(29):
        user_factory(f"p{i:02d}", password=None)
    client.force_login(admin_user)
    response = client.get(reverse("accounts:user_list"), {"per_page": per_page})
    assert response.status_code == 200
    assert len(response.context["page"]) == expected
    html = response.content.decode()
    for size in ("25", "50", "100", "200"):
        assert f'<option value="{size}"' in html


def test_bad_page_size_is_reported_not_applied(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("accounts:user_list"), {"per_page": "100000"})
    assert response.status_code == 200
    assert response.context["page"].paginator.per_page == 50
    assert "per_page" in response.context["form"].errors


def test_source_choices_are_owners_that_exist(directory):
    assert user_source_choices() == [("local", "Local directory")]
    actor = Actor(label="scim: okta", type="provider", source=Source.SCIM, provider="okta")
    apply_identity_change(change=IdentityChange(username="scim.sue", org_id=directory.acme.pk, mode=Mode.CREATE),
                          actor=actor)
    assert user_source_choices() == [("local", "Local directory"), ("scim:okta", "SCIM provisioning: okta")]


def test_source_filter_matches_provider_owned_users(client, directory):
    actor = Actor(label="scim: okta", type="provider", source=Source.SCIM, provider="okta")
    apply_identity_change(change=IdentityChange(username="scim.sue", org_id=directory.acme.pk, mode=Mode.CREATE),
                          actor=actor)
    client.force_login(directory.admin)
    url = reverse("accounts:user_list")
    assert usernames(client.get(url, {"source": "scim:okta"})) == ["scim.sue"]
    assert "scim.sue" not in usernames(client.get(url, {"source": "local"}))


def test_audit_viewer_sees_targets_as_plain_text(client, directory):
    """The auditor cannot open user pages: the audit log names users without linking to a 403."""
    user_pk = directory.sales_user.pk
    assert AuditEvent.objects.filter(target_type="user", target_id=str(user_pk)).exists()
    client.force_login(directory.auditor)
    html = client.get(reverse("accounts:audit_list"), {"target": "sales.user"}).content.decode()
    assert "sales.user" in html
    assert reverse("accounts:user_detail", args=[user_pk]) not in html
    client.force_login(directory.admin)
    html = client.get(reverse("accounts:audit_list"), {"target": "sales.user"}).content.decode()
    assert f'href="{reverse("accounts:user_detail", args=[user_pk])}"' in html


def test_org_admin_links_only_inside_subtree(client, directory, user_factory):
    client.force_login(directory.eng_admin)
    # An Org Admin with the audit role sees the whole log but links only to users it may open.
    user_factory("eng.auditor", org=directory.engineering, roles=["org-admin", "audit-log-viewer"])
    client.force_login(directory.eng_admin.__class__.objects.get(username="eng.auditor"))
    html = client.get(reverse("accounts:audit_list"), {"action": "user.created"}).content.decode()
    assert f'href="{reverse("accounts:user_detail", args=[directory.eng_user.pk])}"' in html
    assert reverse("accounts:user_detail", args=[directory.sales_user.pk]) not in html
    assert "sales.user" in html
