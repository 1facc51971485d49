"""Where a "next" value may send the browser: a path on this site, never another host.

One check for every redirect that takes its target from the request or the session (the sign-in
page's ``next``, SAML RelayState, the path a required action interrupted, the bulk-action "back"
link). A value is refused when it, or its percent-decoded form, could be read as another host:
``//host`` or ``/\\host`` is a scheme-relative URL to browsers, and a stored ``/%2F%2Fhost`` becomes
``//host`` once Django decodes the request path and hands it back through ``get_full_path()``
(review 3, M1).
"""

from __future__ import annotations

from urllib.parse import unquote

from django.utils.http import url_has_allowed_host_and_scheme


def local_path(value: object, default: str) -> str:
    """``value`` if it is a path on this site, else ``default``."""
    if not isinstance(value, str) or not value.startswith("/"):
        return default
    decoded = unquote(value)
    for form in (value, decoded):
        if form.startswith("//") or "\\" in form or any(ord(c) < 32 or ord(c) == 127 for c in form):
            return default
    if not url_has_allowed_host_and_scheme(value, allowed_hosts=set(), require_https=False):
        return default
    return value
