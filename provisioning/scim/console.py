"""Console: Identity management -> Provisioning -> SCIM providers.

Add a provider (its token is shown once, on the page that answers the POST, never stored in
plain text), rotate its token (the previous one keeps working for the overlap window), turn its
optional HTTP basic credential on, rotate or off (the password is shown once too), disable or
enable it, delete it while it owns no user or group, and read its request log. Same service as ``manage.py scim_provider``.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.exceptions import IdentityError
from accounts.identity.types import Actor
from accounts.logging import redact_query
from accounts.models import Organization
from provisioning.forms import TokenRotateForm
from provisioning.models import Source
from provisioning.policy import may_administer_source
from provisioning.scim import providers
from provisioning.scim.models import ScimRequest
from provisioning.views import requires_manage_identity

LOG_PAGE = 200


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, request=request)


def _page(request: HttpRequest, *, shown: providers.ProviderCredentials | None = None, token_for: Source | None = None,
          token: str = "", basic: providers.BasicCredentials | None = None, status: int = 200) -> HttpResponse:
    since = timezone.now() - timedelta(hours=24)
    rows = (Source.objects.filter(kind=Source.Kind.SCIM)
            .annotate(last_request=Max("scim_requests__created_at"),
                      requests_24h=Count("scim_requests", filter=Q(scim_requests__created_at__gte=since)),
                      errors_24h=Count("scim_requests", filter=Q(scim_requests__created_at__gte=since,
                                                                  scim_requests__status__gte=400)))
            .prefetch_related("scim_tokens", "scim_basic_credentials").order_by("name"))
    now = timezone.now()
    rows = list(rows)
    for row in rows:  # the HTTP basic username while a password of it is valid, else ""
        row.basic_on = next((c.username for c in row.scim_basic_credentials.all()
                             if c.expires_at is None or c.expires_at > now), "")
    # No Cache-Control here: NoStoreWhenSignedInMiddleware already marks every signed-in page no-store,
    # so the page that shows a token is not cached either (tested).
    actor = _actor(request)
    # Rotate / disable only where the actor holds the provider's powers (review F1a); the rest is hidden.
    administrable = {p.pk for p in rows if may_administer_source(actor, p)}
    return render(request, "provisioning/scim_providers.html", {
        "providers": rows, "administrable": administrable, "orgs": Organization.objects.order_by("path", "name"),
        "base_url": providers.base_url(), "shown": shown, "token_for": token_for, "token": token, "basic": basic,
        "now": now,
    }, status=status)


@requires_manage_identity
def provider_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@requires_manage_identity
@require_POST
def provider_add(request: HttpRequest) -> HttpResponse:
    org_id = request.POST.get("org") or None
    org = Organization.objects.filter(pk=org_id).first() if org_id and org_id.isdigit() else None
    try:
        creds = providers.provider_create(actor=_actor(request), name=request.POST.get("name", ""), org=org)
    except IdentityError as error:
        messages.error(request, error.message)
        return _page(request, status=400)
    return _page(request, shown=creds, token_for=creds.source, token=creds.token)


def _overlap(request: HttpRequest) -> timedelta | None:
    """The validated overlap of a token or basic-password rotation, or ``None`` with the form's error
    shown (finite, 0–720 hours: review F8)."""
    form = TokenRotateForm(request.POST)
    if form.is_valid():
        return form.overlap()
    error = form.errors.as_data()["overlap_hours"][0]
    messages.error(request, f"{error.messages[0]} ({error.code or 'invalid'})")
    return None


@requires_manage_identity
@require_POST
def provider_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk, kind=Source.Kind.SCIM)
    overlap = _overlap(request)
    if overlap is None:
        return _page(request, status=400)
    try:
        token = providers.token_rotate(actor=_actor(request), source=source, overlap=overlap)
    except IdentityError as error:
        messages.error(request, f"{error.message} ({error.code})")
        return _page(request, status=403)
    return _page(request, token_for=source, token=token)


@requires_manage_identity
@require_POST
def provider_basic(request: HttpRequest, pk: int) -> HttpResponse:
    """HTTP basic for a provider: ``action`` enable, rotate (with an overlap) or disable."""
    source = get_object_or_404(Source, pk=pk, kind=Source.Kind.SCIM)
    action = request.POST.get("action")
    try:
        if action == "enable":
            creds = providers.basic_enable(actor=_actor(request), source=source)
        elif action == "rotate":
            overlap = _overlap(request)
            if overlap is None:
                return _page(request, status=400)
            creds = providers.basic_rotate(actor=_actor(request), source=source, overlap=overlap)
        elif action == "disable":
            providers.basic_disable(actor=_actor(request), source=source)
            messages.success(request, f"HTTP basic is off for {source.name}.")
            return redirect("provisioning:scim_providers")
        else:
            messages.error(request, "Choose enable, rotate or disable.")
            return _page(request, status=400)
    except IdentityError as error:
        messages.error(request, error.message)
        return _page(request, status=400)
    return _page(request, token_for=source, basic=creds)


@requires_manage_identity
@require_POST
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a provider that owns no user or group (otherwise the refusal says to disable it)."""
    source = get_object_or_404(Source, pk=pk, kind=Source.Kind.SCIM)
    try:
        providers.provider_delete(actor=_actor(request), source=source)
    except IdentityError as error:
        messages.error(request, error.message)
        return _page(request, status=409)
    messages.success(request, f"{source.name} deleted.")
    return redirect("provisioning:scim_providers")


@requires_manage_identity
@require_POST
def provider_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk, kind=Source.Kind.SCIM)
    try:
        providers.provider_set_enabled(actor=_actor(request), source=source, enabled=not source.enabled)
    except IdentityError as error:
        messages.error(request, f"{error.message} ({error.code})")
        return redirect("provisioning:scim_providers")
    messages.success(request, f"{source.name} {'enabled' if source.enabled else 'disabled'}.")
    return redirect("provisioning:scim_providers")


@requires_manage_identity
def provider_log(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk, kind=Source.Kind.SCIM)
    rows = ScimRequest.objects.filter(source=source).order_by("-created_at", "-id")
    if request.GET.get("errors"):
        rows = rows.filter(status__gte=400)
    rows = list(rows[:LOG_PAGE])
    for row in rows:  # rows logged before paths were redacted on write (review 3 L1)
        row.path = redact_query(row.path)
    return render(request, "provisioning/scim_log.html", {"source": source, "rows": rows,
                                                          "errors_only": bool(request.GET.get("errors"))})
