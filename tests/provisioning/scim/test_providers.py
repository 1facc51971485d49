"""SCIM providers: token creation, hashing, rotation with an overlap window, the command line."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.identity.types import Actor
from accounts.models import AuditEvent
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.scim.models import ScimToken

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def test_create_stores_only_the_hash_and_authenticates(root_org):
    creds = providers.provider_create(actor=ACTOR, name="Okta")
    assert re.fullmatch(r"idm_scim_[A-Za-z0-9_-]{43}", creds.token)
    assert creds.base_url == "http://127.0.0.1:8000/scim/v2"
    row = ScimToken.objects.get(source=creds.source)
    assert row.token_hash == providers.hash_token(creds.token) != creds.token
    assert creds.token not in str(list(ScimToken.objects.values()))
    assert creds.source.kind == "scim" and creds.source.fixed_org == root_org and creds.source.slug == "okta"
    assert providers.authenticate(creds.token) == creds.source
    assert providers.authenticate(creds.token + "x") is None
    assert providers.authenticate("Bearer " + creds.token) is None
    assert AuditEvent.objects.filter(action="scim_token_created", target_id=str(creds.source.pk)).count() == 1


def test_rotation_keeps_the_old_token_for_the_overlap_then_not(root_org):
    creds = providers.provider_create(actor=ACTOR, name="Entra")
    new = providers.token_rotate(actor=ACTOR, source=creds.source, overlap=timedelta(hours=1))
    assert providers.authenticate(new) == creds.source
    assert providers.authenticate(creds.token) == creds.source  # inside the overlap
    ScimToken.objects.filter(token_hash=providers.hash_token(creds.token)).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert providers.authenticate(creds.token) is None
    assert providers.authenticate(new) == creds.source
    revoked = providers.token_rotate(actor=ACTOR, source=creds.source, overlap=timedelta(0))
    assert providers.authenticate(new) is None and providers.authenticate(revoked) == creds.source


def test_disabled_provider_authenticates_nobody(root_org):
    creds = providers.provider_create(actor=ACTOR, name="Ping")
    providers.provider_set_enabled(actor=ACTOR, source=creds.source, enabled=False)
    assert providers.authenticate(creds.token) is None


def test_duplicate_name_is_a_conflict(root_org):
    providers.provider_create(actor=ACTOR, name="Okta")
    with pytest.raises(Exception) as error:
        providers.provider_create(actor=ACTOR, name="okta")
    assert error.value.code == "provider_name_taken"


def test_command_prints_exactly_two_sourceable_lines(org_factory):
    org = org_factory("Sales")
    out = io.StringIO()
    call_command("scim_provider", "create", "OneLogin", "--org", "Sales", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "SCIM_BASE_URL=http://127.0.0.1:8000/scim/v2"
    token = lines[1].removeprefix("SCIM_TOKEN=")
    source = Source.objects.get(name="OneLogin")
    assert source.fixed_org == org and providers.authenticate(token) == source

    out = io.StringIO()
    call_command("scim_provider", "rotate-token", "OneLogin", stdout=out)
    (line,) = out.getvalue().splitlines()
    assert providers.authenticate(line.removeprefix("SCIM_TOKEN=")) == source
    assert providers.authenticate(token) == source  # 24 h overlap by default

    out = io.StringIO()
    call_command("scim_provider", "list", stdout=out)
    assert out.getvalue() == "onelogin\tOneLogin\tenabled\n"
    with pytest.raises(CommandError, match="provider_not_found"):
        call_command("scim_provider", "rotate-token", "Nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="org_not_found"):
        call_command("scim_provider", "create", "X", "--org", "Nowhere", stdout=io.StringIO())
