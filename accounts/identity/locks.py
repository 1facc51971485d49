"""The admin lock: one PostgreSQL advisory lock (held to the end of the transaction) serialises every
change that could take a Customer Cloud Admin out of the active admins or out of the admins who can
sign in with a password: user batches (``service``), org auth settings and moves (``orgs``) and the
break-glass list (``sso.services``). Each takes it *before* reading the admins (lock first, then read),
so the second of two concurrent writers sees what the first committed.

It also serialises the checks that judge the powers of a whole set of users (third review, H1):
identity provider changes (``sso.policy``) and org sign-in changes (``orgs.check_may_change_sign_in``)
read those powers under it, and a user batch that could grant a role with powers beyond sign-in
(``service._gives_powers``: ``roles`` or ``roles_add``, on create or update) takes it too.

SQLite has one writer at a time and needs nothing.
"""

from __future__ import annotations

from django.db import connection

ADMIN_LOCK_KEY = 0x1D4_AD41  # arbitrary, fixed


def admin_lock() -> None:
    """Take the admin lock for the current transaction (call inside ``transaction.atomic``)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMIN_LOCK_KEY])
