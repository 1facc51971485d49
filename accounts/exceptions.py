"""Domain errors. Each carries a stable ``code`` that every channel renders its own way
(form errors, console messages, per-line upload reports, SCIM error documents, SSO error pages)."""

from __future__ import annotations


class IdentityError(Exception):
    """A refused identity change: ``code`` (snake_case), a plain ``message``, the ``field`` at fault."""

    status = 400  # HTTP-ish status for API channels (SCIM).
    scim_type: str | None = "invalidValue"

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, field={self.field!r})"

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationFailed(IdentityError):
    """Input that is malformed or breaks a rule (bad email, weak password, bad org name)."""


class ConflictError(IdentityError):
    """The change collides with existing data (username taken, external id linked elsewhere)."""

    status = 409
    scim_type = "uniqueness"


class NotFound(IdentityError):
    """The user, org, role or group named by the change does not exist."""

    status = 404
    scim_type = None


class PolicyDenied(IdentityError):
    """A policy guard refused the change (last admin, not owner, out of scope, self-demotion)."""

    status = 403
    scim_type = "mutability"


class MappingError(IdentityError):
    """Directory data could not be mapped to an org or role; the message says how to fix the rule."""
