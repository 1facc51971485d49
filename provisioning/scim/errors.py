"""SCIM error documents (RFC 7644 §3.12): one exception type every layer raises, one renderer."""

from __future__ import annotations

import json

from django.http import HttpResponse

from accounts.exceptions import IdentityError

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
CONTENT_TYPE = "application/scim+json"

# Codes the identity service gives a refused change that are SCIM "uniqueness" conflicts (409).
CONFLICT_CODES = frozenset({"username_taken", "username_duplicate_in_batch", "external_id_taken",
                            "external_id_duplicate_in_batch", "conflict", "group_exists"})

# What a provider is told about a clash with someone else's resource. Fixed text, so the answer does
# not say whether the holder is a local user or another provider's, nor how it is spelled (F11 of
# the 2026-11-30 review); the console and audit keep the full message.
CONFLICT_DETAILS = {
    "username_taken": "userName is already taken.",
    "external_id_taken": "externalId is already taken.",
}


# Guards' refusals (``PolicyDenied`` codes) as a journal records them: the provider may not make this
# change, which SCIM calls "mutability" (as ``from_identity`` does for a raised ``PolicyDenied``).
POLICY_CODES = frozenset({"out_of_scope", "target_more_privileged", "role_not_from_source", "cloud_admin",
                          "last_admin", "last_admin_sso", "break_glass", "role_not_assignable",
                          "owned_by_other_source", "adoption_not_allowed", "self_lockout"})


class ScimError(Exception):
    """An error answered as a SCIM error document with ``status`` and (for 400/409) ``scim_type``."""

    def __init__(self, status: int, detail: str, scim_type: str = "", headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    @classmethod
    def from_identity(cls, error: IdentityError) -> ScimError:
        """The SCIM form of a domain error (its ``status`` and ``scim_type``; no database text)."""
        if error.code in CONFLICT_CODES:
            return cls(409, CONFLICT_DETAILS.get(error.code, error.message), "uniqueness")
        status = getattr(error, "status", 400) or 400
        if status == 403:  # a guard refused: in SCIM terms the attribute may not be changed
            return cls(400, error.message, "mutability")
        return cls(status, error.message, getattr(error, "scim_type", "") or ("invalidValue" if status == 400 else ""))

    @classmethod
    def from_refusal(cls, code: str, message: str) -> ScimError:
        """A refusal recorded in a run's journal (code and message only)."""
        if code in CONFLICT_CODES:
            return cls(409, CONFLICT_DETAILS.get(code, message), "uniqueness")
        if code.endswith("not_owner") or code in POLICY_CODES:
            return cls(400, message, "mutability")
        return cls(400, message, "invalidValue")

    def document(self) -> dict:
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def scim_response(body: dict | None, status: int = 200, headers: dict | None = None) -> HttpResponse:
    """A response with the SCIM media type (also for empty bodies)."""
    response = HttpResponse("" if body is None else json.dumps(body), status=status, content_type=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(error: ScimError) -> HttpResponse:
    return scim_response(error.document(), status=error.status, headers=error.headers)


def not_found(kind: str, scim_id: str) -> ScimError:
    return ScimError(404, f"{kind} {scim_id[:64]} not found.")
