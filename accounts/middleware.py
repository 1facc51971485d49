"""Per-request context for audit records: a request id and the client IP."""

from __future__ import annotations

import uuid

from django.conf import settings


class RequestContextMiddleware:
    """Sets ``request.request_id`` (from X-Request-ID when sane, else random) and ``request.client_ip``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and request.headers.get("X-Forwarded-For"):
            # Behind a trusted proxy the left-most address is the client.
            request.client_ip = request.headers["X-Forwarded-For"].split(",")[0].strip()
        else:
            request.client_ip = request.META.get("REMOTE_ADDR")
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
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
