"""Health, readiness and metrics endpoints (no sign-in), and the console's operations pages."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.client_ip import MAX_HEADER_CHARS, client_address, parse_address
from ops.app_settings import ops_settings
from ops.health import readiness
from ops.metrics import exposition


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a slow database never restarts it."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, caches, a Celery worker, the last backup and scheduled jobs (ops.health)."""
    status, body = readiness(strict=request.GET.get("strict") in ("1", "true"))
    return JsonResponse(body, status=status)


def _is_loopback(address: str | None) -> bool:
    return address is not None and ipaddress.ip_address(address).is_loopback


def _metrics_allowed(request: HttpRequest) -> bool:
    """A bearer token when one is set; else only a loopback client, decided with the real client address.

    The real address is ``request.client_ip`` (``accounts.client_ip``: ``IDM_TRUSTED_PROXIES`` proxies
    trusted). A local proxy makes every request come from 127.0.0.1, so every forwarded hop must be
    loopback too: a request forwarded from outside is refused, whatever the proxy count.
    """
    token = ops_settings.metrics_token
    if token:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode())
    trusted = int(getattr(settings, "IDM_TRUSTED_PROXIES", 0))
    if settings.SECURE_PROXY_SSL_HEADER and trusted <= 0:
        return False  # behind a proxy we cannot see through: every client looks like loopback
    remote = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    client = getattr(request, "client_ip", None) or client_address(
        remote_addr=remote, forwarded_for=forwarded, trusted_proxies=trusted)
    if len(forwarded) > MAX_HEADER_CHARS:
        return False
    hops = [parse_address(e) for e in forwarded.split(",")] if forwarded.strip() else []
    return all(_is_loopback(a) for a in [client, parse_address(remote), *hops])


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: with IDM_METRICS_TOKEN a bearer token is required, else loopback clients only."""
    if not _metrics_allowed(request):
        return JsonResponse({"error": "metrics_forbidden",
                             "message": "Send Authorization: Bearer <IDM_METRICS_TOKEN>."}, status=403)
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4; charset=utf-8")


# --- Console: outbox (Customer Cloud Admins only: messages may hold set-password links) -------------


def _cloud_admin_only(view):
    from functools import wraps

    from django.contrib.auth.decorators import login_required
    from django.core.exceptions import PermissionDenied

    from accounts.access import Access

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not Access.of(request.user).is_cloud_admin:
            raise PermissionDenied("Customer Cloud Admins only")
        return view(request, *args, **kwargs)

    return wrapper


@_cloud_admin_only
@never_cache
def outbox(request: HttpRequest) -> HttpResponse:
    """Mail idm would have sent (no mail server configured), newest first, 50 a page."""
    from django.core.paginator import Paginator
    from django.shortcuts import render

    from ops.models import OutboxMessage

    page = Paginator(OutboxMessage.objects.all(), 50).get_page(request.GET.get("page"))
    return render(request, "ops/outbox.html", {
        "page": page, "mail_configured": settings.EMAIL_BACKEND != "ops.mail.OutboxEmailBackend"})


@_cloud_admin_only
@never_cache
def outbox_message(request: HttpRequest, pk: int) -> HttpResponse:
    from django.shortcuts import get_object_or_404, render

    from accounts.credentials.service import redact_credential_links
    from accounts.identity.types import Actor
    from ops.models import OutboxMessage

    message = get_object_or_404(OutboxMessage, pk=pk)
    # Reset and invitation links show only to an admin who may change that user's credentials.
    body = redact_credential_links(message.body, viewer=Actor.for_user(request.user, request=request))
    return render(request, "ops/outbox_message.html", {"message": message, "body": body})
