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
