"""The request id and job id of what is running now, for log records (see ``ops.logformat``)."""

from __future__ import annotations

import contextvars

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("idm_log_context", default=None)


def bind(**values: str) -> contextvars.Token:
    """Add ``values`` (request_id, job_id) to the context; pass the token to :func:`reset`."""
    return _context.set({**(_context.get() or {}), **{k: v for k, v in values.items() if v}})


def reset(token: contextvars.Token) -> None:
    _context.reset(token)


def current() -> dict:
    return _context.get() or {}


# The client's user agent, for sign-in audit events (ops.signals.complete_sign_in_event); not logged.
user_agent: contextvars.ContextVar[str] = contextvars.ContextVar("idm_user_agent", default="")
