"""SCIM endpoint fixtures: a provider with its token, and a client that speaks SCIM to /scim/v2/."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.identity.types import Actor
from provisioning.scim import providers

SCIM_JSON = "application/scim+json"


class ScimClient:
    """A Django test client with the provider's bearer token; bodies are sent as SCIM JSON."""

    def __init__(self, token: str):
        self.client = Client()
        self.token = token

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None, token: str | None = None,
             **headers):
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token or self.token}"} if (token or self.token) else {}
        response = getattr(self.client, method.lower())(f"/scim/v2{path}", data=data, content_type=SCIM_JSON,
                                                         **auth, **headers)
        response.doc = json.loads(response.content) if response.content else None
        return response

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def provider(db, root_org):
    """``(source, token)`` of a fresh SCIM provider named "Okta"."""
    creds = providers.provider_create(actor=Actor.system("tests"), name="Okta")
    return creds.source, creds.token


@pytest.fixture
def scim(provider) -> ScimClient:
    return ScimClient(provider[1])


@pytest.fixture
def other_scim(db, root_org) -> ScimClient:
    """A second provider's client (scope tests)."""
    return ScimClient(providers.provider_create(actor=Actor.system("tests"), name="Entra").token)
