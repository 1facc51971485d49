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
