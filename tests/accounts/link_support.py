"""Opening emailed set-password links as a browser does (review 3 L1): the token URL moves the token
into the session and redirects to ``.../set-password/``, where the form lives."""

from __future__ import annotations


def open_link(client, path: str):
    """GET the link and follow it to the form: the form page (200), or the dead link's 400."""
    opened = client.get(path)
    if opened.status_code != 302:
        return opened
    return client.get(opened["Location"])


def submit_link(client, path: str, password: str, password2: str | None = None):
    """Open the link, then send the form: the answer to the POST (or the dead link's 400)."""
    opened = client.get(path)
    if opened.status_code != 302:
        return opened
    return client.post(opened["Location"], {"password1": password,
                                            "password2": password if password2 is None else password2})
