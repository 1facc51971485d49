"""Template context for the console: what the signed-in user may see."""

from __future__ import annotations

from accounts.access import Access


def console(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"access": Access.of(user)}
