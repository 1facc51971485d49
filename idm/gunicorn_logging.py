"""gunicorn's access log without secrets (review 3 L1): ``--logger-class idm.gunicorn_logging.RedactingLogger``.

The access log writes every request line. A set-password link's token (``/sign-in/reset/<uid>/<token>/``,
``/invitation/<uid>/<token>/``) is live until used, and a query string may carry a password or a token
that a client put there; both are replaced by ``[redacted]`` in the request line, the path, the query
and the Referer (the pages after a link was opened name it there). Everything else is gunicorn's own
``Logger``, so ``--access-logformat`` works as documented.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from accounts.logging import redact_decoded_path, redact_url

_URL_ATOMS = ("r", "U", "q", "f", "{referer}i", "{raw_uri}e", "{path_info}e", "{query_string}e",
              "{http_referer}e")


class RedactingLogger(Logger):
    """gunicorn ``Logger`` whose access-log atoms hold no set-password token or secret query value."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in _URL_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str) and value:
                atoms[name] = _redact(name, value)
        return atoms


def _redact(name: str, value: str) -> str:
    if name in ("q", "{query_string}e"):
        return redact_url(f"?{value}")[1:]
    if name == "{path_info}e":  # already decoded by gunicorn: any character but "/" is in a segment
        return redact_url(redact_decoded_path(value))
    if name == "r":  # "GET /path?query HTTP/1.1"
        method, sep, rest = value.partition(" ")
        uri, sep2, protocol = rest.rpartition(" ")
        if sep and sep2:
            return f"{method} {redact_url(uri)} {protocol}"
    return redact_url(value)
