"""Review 4 F1 through SCIM: an address a provider set is good for reset links while the provider
may still change the user's sign-in fields (every role with powers came from it); once an admin
grants a role by hand, the provider's address gets no link until an admin who may change the user
confirms it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.credentials.email_trust import email_trust
from accounts.models import AuditEvent
from tests.accounts.test_privilege_rise import grant_roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hasher")]

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def forgot(identifier: str) -> None:
    resp = Client().post("/sign-in/forgot/", {"identifier": identifier})
    assert resp.status_code == 200 and resp.context["done"]


def test_provider_address_is_unconfirmed_once_the_user_holds_a_role_granted_by_hand(admin_user, scim):
    created = scim.post("/Users", {"schemas": [USER], "userName": "sam.scim", "password": "Scim-Pass-1234",
                                   "emails": [{"value": "sam@idp-controlled.example", "primary": True}]})
    assert created.status_code == 201, created.doc
    sam = User.objects.get(username="sam.scim")
    trust = email_trust(sam)
    assert trust.trusted and trust.set_by == "Okta"
    forgot("sam.scim")
    assert [m.to for m in mail.outbox] == [["sam@idp-controlled.example"]]
    mail.outbox.clear()

    grant_roles(admin_user, sam, "org-admin")

    assert email_trust(sam).reason == "role_not_from_source"
    forgot("sam.scim")
    assert mail.outbox == []
    assert AuditEvent.objects.filter(action="auth.password_reset_requested", target_id=str(sam.pk),
                                     new_value__reason="email_unconfirmed").count() == 1
    admin = Client()
    admin.force_login(admin_user)
    assert admin.post(reverse("accounts:user_confirm_email", args=[sam.pk])).status_code == 302
    forgot("sam.scim")
    assert [m.to for m in mail.outbox] == [["sam@idp-controlled.example"]]
