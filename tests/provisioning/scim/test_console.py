"""Console: Identity management -> Provisioning -> SCIM providers (add, token once, rotate, disable, log)."""

from __future__ import annotations

import re

import pytest

from accounts.models import AuditEvent
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.scim.models import ScimRequest

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r'<code id="scim-token">(idm_scim_[A-Za-z0-9_-]+)</code>')


def test_pages_need_manage_identity(client, user_factory, provider):
    client.force_login(user_factory("plain", roles=["console-user"]))
    source, _ = provider
    assert client.get("/provisioning/scim/").status_code == 403
    assert client.post("/provisioning/scim/add/", {"name": "X"}).status_code == 403
    assert client.post(f"/provisioning/scim/{source.pk}/rotate/").status_code == 403
    assert client.get(f"/provisioning/scim/{source.pk}/log/").status_code == 403


def test_add_shows_the_token_once_and_it_works(admin_client, org_factory):
    org = org_factory("Sales")
    response = admin_client.post("/provisioning/scim/add/", {"name": "PingOne", "org": org.pk})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    html = response.content.decode()
    token = TOKEN.search(html).group(1)
    source = Source.objects.get(name="PingOne")
    assert source.fixed_org == org and providers.authenticate(token) == source
    assert "http://127.0.0.1:8000/scim/v2" in html
    again = admin_client.get("/provisioning/scim/").content.decode()
    assert token not in again and TOKEN.search(again) is None
    assert token[:13] in again  # the hint
    duplicate = admin_client.post("/provisioning/scim/add/", {"name": "pingone", "org": org.pk})
    assert duplicate.status_code == 400 and "A source named &#x27;pingone&#x27; exists." in duplicate.content.decode()


def test_rotate_disable_and_log(admin_client, provider, scim):
    source, old = provider
    scim.get("/Users")
    scim.get("/Users?filter=nope")
    response = admin_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
    new = TOKEN.search(response.content.decode()).group(1)
    assert providers.authenticate(new) == source and providers.authenticate(old) is None
    assert AuditEvent.objects.filter(action="scim_token_rotated", actor_label="admin").count() == 1
    page = admin_client.get("/provisioning/scim/").content.decode()
    assert "<td class=\"num\">2</td>" in page and "<td class=\"num\">1</td>" in page  # requests, errors
    log = admin_client.get(f"/provisioning/scim/{source.pk}/log/").content.decode()
    assert "/scim/v2/Users?filter=nope" in log and "invalidFilter" in log
    errors = admin_client.get(f"/provisioning/scim/{source.pk}/log/?errors=1").content.decode()
    assert "invalidFilter" in errors and "<code>/scim/v2/Users</code>" not in errors
    assert admin_client.post(f"/provisioning/scim/{source.pk}/toggle/").status_code == 302
    source.refresh_from_db()
    assert source.enabled is False and providers.authenticate(new) is None
    assert ScimRequest.objects.count() == 2
