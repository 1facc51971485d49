"""System checks for settings that would make idm unsafe or broken."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_base_url(app_configs, **kwargs):
    errors = []
    base = getattr(settings, "IDM_BASE_URL", "")
    if not base.startswith("https://"):
        errors.append(Warning(
            "IDM_BASE_URL is not https://; SAML and session cookies need TLS in production.",
            hint="Set IDM_BASE_URL=https://idm.example.com and serve idm behind TLS.", id="idm.W001",
        ))
    return errors


@register()
def check_database(app_configs, **kwargs):
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
        return [Error(f"Unsupported database engine {engine}.", hint="Use PostgreSQL or SQLite.", id="idm.E001")]
    return []


@register(Tags.security)
def check_trusted_proxies(app_configs, **kwargs):
    """X-Forwarded-For is read only as far as ``IDM_TRUSTED_PROXIES`` proxies go (accounts/client_ip.py)."""
    count = getattr(settings, "IDM_TRUSTED_PROXIES", 0)
    if not isinstance(count, int) or count < 0:
        return [Error("IDM_TRUSTED_PROXIES must be 0 or a positive number of proxies.",
                      hint="Set it to the number of proxies in front of idm that append to X-Forwarded-For.",
                      id="idm.E020")]
    if count == 0 and getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        return [Warning("IDM_BEHIND_PROXY is set but IDM_TRUSTED_PROXIES is 0: audit records and the sign-in "
                        "throttle will see the proxy's address for every client.",
                        hint="Set IDM_TRUSTED_PROXIES to the number of proxies in front of idm (usually 1).",
                        id="idm.W020")]
    return []


@register(Tags.database)
def check_username_collisions(app_configs, databases=None, **kwargs):
    """Users whose names are one name once normalised (NFKC, lower case): made before idm normalised
    usernames (review F9), e.g. "Émile"/"émile" on SQLite or "ſam"/"sam" on PostgreSQL. Sign-in
    refuses such a name rather than pick one; rename or merge the accounts.
    Run with ``manage.py check --database default``."""
    if not databases:
        return []
    from collections import defaultdict

    from django.contrib.auth.models import User
    from django.db import DatabaseError

    from accounts.identity.validators import username_key

    groups: dict[str, list[str]] = defaultdict(list)
    try:
        for name in User.objects.values_list("username", flat=True).iterator(chunk_size=5000):
            groups[username_key(name)].append(name)
    except DatabaseError:
        return []  # not migrated yet: nothing to compare
    clashes = sorted(names for names in groups.values() if len(names) > 1)
    if not clashes:
        return []
    shown = "; ".join(", ".join(repr(n) for n in sorted(names)) for names in clashes[:10])
    return [Warning(
        f"{len(clashes)} username(s) are held by more than one user once normalised: {shown}"
        f"{' …' if len(clashes) > 10 else ''}.",
        hint="Rename all but one of each group on its user page; until then sign-in refuses those names.",
        id="idm.W030",
    )]


@register(Tags.database)
def check_mixed_script_usernames(app_configs, databases=None, **kwargs):
    """Users whose names mix look-alike alphabets ("аdmin" with a Cyrillic "а"), made before the
    identity service refused them (second review, N9). They keep working; an admin decides whether
    each is a real person's name or an impersonation and renames or blocks it.
    Run with ``manage.py check --database default``."""
    if not databases:
        return []
    from django.contrib.auth.models import User
    from django.db import DatabaseError

    from accounts.identity.validators import is_mixed_script

    try:
        names = sorted(n for n in User.objects.values_list("username", flat=True).iterator(chunk_size=5000)
                       if is_mixed_script(n))
    except DatabaseError:
        return []  # not migrated yet: nothing to check
    if not names:
        return []
    shown = ", ".join(repr(n) for n in names[:20])
    return [Warning(
        f"{len(names)} username(s) mix look-alike alphabets (Latin with Cyrillic or Greek letters): {shown}"
        f"{' …' if len(names) > 20 else ''}.",
        hint="Open each user: rename it to one alphabet or block it if it imitates another account; new "
             "names like these are refused (username_mixed_script).",
        id="idm.W031",
    )]
