"""Per-request context for audit records (a request id and the client address) and the
``Cache-Control`` of signed-in responses."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils.cache import add_never_cache_headers

from accounts.client_ip import client_address


class RequestContextMiddleware:
    """Sets ``request.request_id`` (from X-Request-ID when sane, else random) and ``request.client_ip``.

    ``client_ip`` trusts exactly ``IDM_TRUSTED_PROXIES`` proxies (``accounts.client_ip``); it is a
    valid address or ``None``, never the raw header.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        request.client_ip = client_address(
            remote_addr=request.META.get("REMOTE_ADDR"),
            forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR"),
            trusted_proxies=int(getattr(settings, "IDM_TRUSTED_PROXIES", 0)),
        )
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class NoStoreWhenSignedInMiddleware:
    """``Cache-Control: no-store`` (Django's never-cache set) on every response to a signed-in user.

    Console pages and exports hold personal data; neither the browser's cache nor a shared proxy may
    keep them after sign-out (issue 7 §5). Static files never get here (WhiteNoise answers first).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if getattr(user, "is_authenticated", False):
            add_never_cache_headers(response)
        return response


TIME_ZONE_COOKIE = "idm_tz"


class UserTimeZoneMiddleware:
    """Shows times in the viewer's time zone: the browser reports it in the ``idm_tz`` cookie (set by
    static/idm/console.js); unknown or missing zones fall back to ``TIME_ZONE``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from django.utils import timezone

        name = request.COOKIES.get(TIME_ZONE_COOKIE, "")
        zone = None
        if name and len(name) <= 64 and all(c.isalnum() or c in "/_+-" for c in name):
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                zone = None
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
