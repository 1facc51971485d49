"""Review 3 H2 through SCIM: a rule of the provider grants a role when the IdP puts the user in a
group; the reset link a Help Desk sent before is void afterwards (the grant goes through the identity
service like every other one)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from tests.accounts.link_support import open_link

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hasher")]

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LINK = re.compile(r"http://[^\s]+/(?:sign-in/reset|invitation)/[^\s]+/")


def test_scim_group_membership_granting_a_role_voids_an_earlier_reset_link(admin_client, provider, scim,
                                                                            user_factory):
    source, _ = provider
    assert admin_client.post(f"/provisioning/sources/{source.pk}/rules/", {
        "kind": "role", "position": "0", "condition": "member_of_group", "value": "Sales Managers",
        "roles": "org-manager", "save": "1"}).status_code == 302
    created = scim.post("/Users", {"schemas": [USER], "userName": "sam.scim", "password": "Scim-Pass-1234",
                                   "emails": [{"value": "sam@corp.example", "primary": True}]})
    assert created.status_code == 201, created.doc
    sam = User.objects.get(username="sam.scim")
    helpdesk = Client()
    helpdesk.force_login(user_factory("helpdesk", roles=["help-desk"]))
    assert helpdesk.post(reverse("accounts:user_reset_link", args=[sam.pk])).status_code == 302
    assert mail.outbox, "the Help Desk could send the link"
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    assert open_link(Client(), path).status_code == 200

    group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Sales Managers",
                                  "members": [{"value": created.doc["id"]}]})
    assert group.status_code == 201, group.doc
    assert sam.groups.filter(role__slug="org-manager").exists()

    assert Client().get(path).status_code == 400
    assert AuditEvent.objects.filter(action="user.credentials_voided", target_id=str(sam.pk)).count() == 1
