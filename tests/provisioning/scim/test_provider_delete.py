"""Deleting a SCIM provider (issue 9: "add / edit / disable / delete"): only while it owns no user
and no group; otherwise refused with ``provider_in_use`` (disable it instead), nothing removed."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.exceptions import ConflictError
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.scim.models import ScimRequest, ScimToken

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def test_a_provider_without_users_or_groups_is_deleted_with_its_credentials(provider, scim):
    source, token = provider
    providers.basic_enable(actor=ACTOR, source=source)
    assert scim.get("/Users").status_code == 200
    providers.provider_delete(actor=ACTOR, source=source)
    assert not Source.objects.filter(pk=source.pk).exists()
    assert not ScimToken.objects.exists() and not ScimRequest.objects.exists()
    assert scim.get("/Users").status_code == 401
    event = AuditEvent.objects.get(action="scim_provider_deleted")
    assert event.old_value == {"name": "Okta", "slug": "okta"} and event.actor_label == "tests"


@pytest.mark.parametrize("owns", ["user", "group", "deleted user"])
def test_a_provider_that_owns_anything_is_not_deleted(provider, scim, owns):
    source, _ = provider
    if owns == "group":
        assert scim.post("/Groups", {"displayName": "Eng"}).status_code == 201
    else:
        uid = scim.post("/Users", {"userName": "ann"}).doc["id"]
        if owns == "deleted user":  # DELETE keeps the user, and so its owner
            assert scim.delete(f"/Users/{uid}").status_code == 204
    with pytest.raises(ConflictError) as refused:
        providers.provider_delete(actor=ACTOR, source=source)
    assert refused.value.code == "provider_in_use" and "disable it instead" in refused.value.message
    assert Source.objects.filter(pk=source.pk).exists() and scim.get("/Users").status_code == 200
    assert not AuditEvent.objects.filter(action="scim_provider_deleted").exists()


def test_console_and_command_delete(admin_client, provider, scim, root_org):
    source, _ = provider
    uid = scim.post("/Users", {"userName": "ann"}).doc["id"]
    refused = admin_client.post(f"/provisioning/scim/{source.pk}/delete/")
    assert refused.status_code == 409 and "disable it instead" in refused.content.decode()
    assert Source.objects.filter(pk=source.pk).exists() and scim.get(f"/Users/{uid}").status_code == 200
    empty = providers.provider_create(actor=ACTOR, name="Spare").source
    response = admin_client.post(f"/provisioning/scim/{empty.pk}/delete/")
    assert response.status_code == 302 and not Source.objects.filter(pk=empty.pk).exists()
    call_command("scim_provider", "create", "Spare2", stdout=io.StringIO())
    call_command("scim_provider", "delete", "Spare2", stdout=io.StringIO())
    assert not Source.objects.filter(name="Spare2").exists()
    with pytest.raises(CommandError, match="provider_in_use"):
        call_command("scim_provider", "delete", "Okta", stdout=io.StringIO())
