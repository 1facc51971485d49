"""Response headers every page carries: a Content-Security-Policy and a few isolation headers.

Django's SecurityMiddleware already sends HSTS (under HTTPS), nosniff and Referrer-Policy, and
XFrameOptionsMiddleware frame denial; this adds what Django 5.2 lacks (CSP arrives only in 6.0).
"""

from __future__ import annotations

from ops.app_settings import ops_settings


class SecurityHeadersMiddleware:
    """Sets Content-Security-Policy (no 'unsafe-inline'), Cross-Origin-Opener-Policy and Permissions-Policy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", ops_settings.content_security_policy)
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        return response


class RequestObservabilityMiddleware:
    """Counts each request by view and status for /metrics and puts the request id in the log context.

    Placed after ``accounts.middleware.RequestContextMiddleware``, which sets ``request.request_id``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from ops import logcontext, metrics

        token = logcontext.bind(request_id=getattr(request, "request_id", ""))
        agent_token = logcontext.user_agent.set(request.headers.get("User-Agent", "")[:300])
        try:
            response = self.get_response(request)
        finally:
            logcontext.user_agent.reset(agent_token)
            logcontext.reset(token)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match and match.view_name else "unresolved"
        metrics.REQUESTS.labels(view=view[:80], method=request.method if request.method in _METHODS else "other",
                                status=str(response.status_code)).inc()
        return response


_METHODS = {"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"}
