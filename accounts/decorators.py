"""View decorators shared by the console apps (accounts, bulk upload, sso)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from accounts.access import Access


def requires(perm: str) -> Callable:
    """Signed in and holding ``perm`` somewhere (403 otherwise); finer org checks happen in the view."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not Access.of(request.user).has(perm):
                raise PermissionDenied(f"missing permission {perm}")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
