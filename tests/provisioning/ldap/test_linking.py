"""First-time linking against a real slapd: a sync never takes over an existing user; the console's
"Link existing users" previews who would be linked (and who not, why) and links through the
adoption service; the next sync then manages the linked users."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, ExternalIdentity
from provisioning.ldap.sync import sync_directory
from provisioning.models import JournalEntry, ProvisioningRun
from sso.models import IdentityProvider
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import make_directory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def existing(user_factory, source_factory, linked_user):
    """Users idm had before the directory: a plain local one, a Customer Cloud Admin, a break-glass
    user, one another source owns, and two sharing one email address."""
    glass = user_factory("gil", email="gil@corp.example")
    IdentityProvider.objects.create(name="IdP", entity_id="https://idp.example.com").break_glass_users.add(glass)
    return {
        "ann": user_factory("ann", email="ann@old.example", first_name="Old", last_name="Name"),
        "cora": user_factory("cora", roles=["customer-cloud-admin"], email="cora@corp.example"),
        "gil": glass,
        "sid": linked_user(source_factory("HR SCIM"), "sid"),
        "eve1": user_factory("eve.one", email="eve@example.org"),
        "eve2": user_factory("eve.two", email="eve@example.org"),
    }


def preview(client, directory, match_by: str) -> str:
    response = client.post(reverse("provisioning:directory_link", args=[directory.source_id]),
                           {"match_by": match_by, "action": "preview"})
    assert response.status_code == 200
    return response.content.decode()


def decisions(html: str) -> dict[str, str]:
    """Directory username -> decision code, from the preview table."""
    return {name: code for code, name in re.findall(r'<tr data-decision="(\w+)"><td>([\w.]+)', html)}


def test_sync_refuses_existing_users_until_they_are_linked_after_a_preview(admin_client, slapd_server, ou, root_org,
                                                                            existing):
    slapd_server.ldapadd(people_ldif(ou, "ann", "cora", "gil", "sid", "eve", "new"))
    directory = make_directory(slapd_server, ou, root_org)
    run = sync_directory(directory)
    # Today's behaviour, kept: the existing usernames are refused, never taken over; "new" is created,
    # "eve" too (her email is not a key a sync matches on).
    assert (run.counts["created"], run.counts["errors"]) == (2, 4)
    refused = set(JournalEntry.objects.filter(run=run, result="refused").values_list("code", flat=True))
    assert refused == {"username_taken"}
    ann = User.objects.get(username="ann")
    assert (ann.first_name, ann.email, ann.profile.owner_source_id, ann.profile.source) == (
        "Old", "ann@old.example", None, "local")
    assert not ExternalIdentity.objects.filter(user__username__in=["ann", "cora", "gil", "sid"],
                                               provider=directory.source.slug).exists()

    run_page = admin_client.get(reverse("provisioning:run_detail", args=[run.run_id])).content.decode()
    assert "4 entries of the directory have the username of an existing idm user" in run_page
    assert f'href="{reverse("provisioning:directory_link", args=[directory.source_id])}"' in run_page

    html = preview(admin_client, directory, "username")
    assert decisions(html) == {"ann": "adopt", "cora": "cloud_admin", "gil": "break_glass",
                               "sid": "owned_by_other_source"}
    assert "1 would be linked; 4 entries match an existing user; 0 match nobody" in html
    assert "Link 1 user</button>" in html
    assert not ExternalIdentity.objects.filter(user=ann, provider=directory.source.slug).exists()  # preview only

    response = admin_client.post(reverse("provisioning:directory_link", args=[directory.source_id]),
                                 {"match_by": "username", "action": "link"})
    link_run = ProvisioningRun.objects.get(kind=ProvisioningRun.Kind.ADOPTION)
    assert response["Location"] == reverse("provisioning:run_detail", args=[link_run.run_id])
    assert (link_run.counts["adopted"], link_run.counts["skipped"]) == (1, 3)
    assert set(JournalEntry.objects.filter(run=link_run, result="refused").values_list("code", flat=True)) == {
        "cloud_admin", "break_glass", "owned_by_other_source"}
    assert AuditEvent.objects.filter(action="directory_users_linked", target_id=str(directory.source_id)).count() == 1
    ann.refresh_from_db()
    assert ann.profile.owner_source_id == directory.source_id

    after = sync_directory(directory)
    assert after.counts["errors"] == 3  # cora, gil and sid are still refused
    ann = User.objects.get(pk=ann.pk)
    assert (ann.first_name, ann.email) == ("Ann", "ann@example.org")  # the directory manages her now
    assert User.objects.get(username="cora").email == "cora@corp.example"
    assert decisions(preview(admin_client, directory, "username")) == {
        "cora": "cloud_admin", "gil": "break_glass", "sid": "owned_by_other_source"}


def test_linking_by_email_reports_an_ambiguous_address(admin_client, slapd_server, ou, root_org, existing,
                                                       user_factory):
    slapd_server.ldapadd(people_ldif(ou, "eve", "zed"))
    directory = make_directory(slapd_server, ou, root_org)
    html = preview(admin_client, directory, "email")
    assert decisions(html) == {"eve": "match_ambiguous"}
    assert "Several existing users match" in html and "data-link-apply" not in html
    assert "0 would be linked; 1 entry match an existing user; 1 match nobody" in html
    bad = admin_client.post(reverse("provisioning:directory_link", args=[directory.source_id]),
                            {"match_by": "nickname", "action": "link"})
    assert bad.status_code == 200 and not ProvisioningRun.objects.exists()
    helpdesk = Client()
    helpdesk.force_login(user_factory("help.desk", roles=["help-desk"]))
    url = reverse("provisioning:directory_link", args=[directory.source_id])
    assert helpdesk.post(url, {"match_by": "email", "action": "link"}).status_code == 403
    assert helpdesk.get(url).status_code == 403 and not ProvisioningRun.objects.exists()
