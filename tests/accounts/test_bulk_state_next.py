"""``POST /users/bulk-state/`` sends the admin back only to a local path; anything else goes to the users
list (review finding: ``next=x`` or unicode gave a 500 NoReverseMatch through ``redirect()``)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

USERS = "/users/"


@pytest.mark.parametrize("given, expected", [
    ("x", None), ("accounts:user_list", None), ("ünïcödé", None), ("user_detail", None),
    ("https://evil.example/", None), ("//evil.example/", None), ("/\\evil.example", None),
    ("javascript:alert(1)", None), ("", None),
    ("/users/?state=locked", "/users/?state=locked"),
])
def test_next_is_a_local_path_or_the_users_list(admin_client, user_factory, given, expected):
    target = user_factory("target")
    response = admin_client.post(reverse("accounts:user_bulk_state"),
                                 {"action": "block" if given else "nonsense", "ids": [target.pk], "confirmed": "1", "next": given})
    assert response.status_code == 302
    assert response["Location"] == (expected or reverse("accounts:user_list"))
    assert reverse("accounts:user_list") == USERS
