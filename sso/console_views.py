"""Console pages: Identity management -> Authentication (identity providers). Needs ``manage_identity``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.decorators import requires
from accounts.exceptions import IdentityError
from accounts.identity.types import Actor, Source
from accounts.params import int_param
from sso import keys, services
from sso.config import acs_url, sp_entity_id
from sso.forms import BreakGlassForm, ProviderForm
from sso.metadata import expiring_certs, metadata_warnings
from sso.models import IdentityProvider
from sso.services import break_glass_set, metadata_refresh, provider_save

requires_manage_identity = requires("manage_identity")


def _actor(request) -> Actor:
    return Actor.for_user(request.user, request=request)


def _saved_message(request, done: str, provider: IdentityProvider | None) -> None:
    """``done``, as a warning when the metadata just loaded for ``provider`` is accepted but unusable
    (or soon will be): expired ``validUntil``, no supported sign-in binding."""
    warnings = metadata_warnings(provider.metadata_summary, provider.metadata_xml) if provider else []
    if warnings:
        messages.warning(request, " ".join([done, *(w["summary"] for w in warnings)]))
    else:
        messages.success(request, done)


@requires_manage_identity
def provider_list(request):
    providers = IdentityProvider.objects.annotate(org_count=Count("organizations"))
    rows = [{"p": p, "expiring": expiring_certs(p.metadata_summary),
             "metadata_warnings": metadata_warnings(p.metadata_summary, p.metadata_xml)} for p in providers]
    return render(request, "sso/provider_list.html", {"rows": rows, "sp_keys": keys.key_status()})


@requires_manage_identity
def provider_detail(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    return render(request, "sso/provider_detail.html", {
        "p": provider, "orgs": provider.organizations.all(), "expiring": expiring_certs(provider.metadata_summary),
        "metadata_warnings": metadata_warnings(provider.metadata_summary, provider.metadata_xml),
        "sp_entity_id": sp_entity_id(provider), "acs_url": acs_url(provider),
        "break_glass": provider.break_glass_users.order_by("username"), "sp_keys": keys.key_status(),
    })


@requires_manage_identity
def provider_edit(request, pk: int | None = None):
    provider = get_object_or_404(IdentityProvider, pk=pk) if pk else None
    form = ProviderForm(request.POST or None, request.FILES or None, instance=provider)
    if request.method == "POST" and form.is_valid():
        instance = form.save(commit=False)
        url_changed = "metadata_url" in form.changed_data or (pk is None and instance.metadata_url)
        metadata_xml = form.cleaned_data.get("metadata_file") or None
        fetch = bool(url_changed and not metadata_xml)
        try:
            instance = provider_save(actor=_actor(request), provider=instance, metadata_xml=metadata_xml,
                                     fetch=fetch)
        except IdentityError as exc:
            form.add_error(None, f"{exc.message} ({exc.code})")
        else:
            _saved_message(request, f"Saved {instance.name}.", instance if (metadata_xml or fetch) else None)
            return redirect("sso:provider_detail", pk=instance.pk)
    return render(request, "sso/provider_form.html", {"form": form, "p": provider})


@require_POST
@requires_manage_identity
def provider_refresh(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    if metadata_refresh(provider=provider, actor=_actor(request)):
        _saved_message(request, "Metadata refreshed.", provider)
    else:
        messages.error(request, provider.metadata_error or "This provider has no metadata URL.")
    return redirect("sso:provider_detail", pk=pk)


@requires_manage_identity
def provider_delete(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    if request.method == "POST":
        try:
            services.provider_delete(actor=_actor(request), provider=provider)
        except IdentityError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
            return redirect("sso:provider_detail", pk=pk)
        messages.success(request, f"Deleted {provider.name}.")
        return redirect("sso:provider_list")
    return render(request, "sso/provider_delete.html", {"p": provider})


@requires_manage_identity
def provider_break_glass(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    initial = "\n".join(provider.break_glass_users.order_by("username").values_list("username", flat=True))
    form = BreakGlassForm(request.POST or None, initial={"usernames": initial})
    if request.method == "POST" and form.is_valid():
        try:
            break_glass_set(actor=_actor(request), provider=provider, users=form.cleaned_data["usernames"])
        except IdentityError as exc:
            form.add_error("usernames", forms.ValidationError(exc.message, code=exc.code))
        else:
            messages.success(request, "Break-glass users saved.")
            return redirect("sso:provider_detail", pk=pk)
    return render(request, "sso/provider_break_glass.html", {"p": provider, "form": form})


# SP signing key rollover: one key pair for all providers, so the actions are not per provider; the
# form says which page to return to.
_KEY_ACTIONS = {
    "add-next": (services.sp_key_add_next, "Next key added. It is now published in the SP metadata of every "
                 "provider; promote it once the IdPs have loaded the new metadata."),
    "promote": (services.sp_key_promote, "Next key promoted: idm now signs with it. The old key is retired."),
    "discard-next": (services.sp_key_discard_next, "Next key discarded."),
}


@require_POST
@requires_manage_identity
def sp_key_action(request, action: str):
    """Add, promote or discard the SP's next (rollover) signing key; each is audited by the service."""
    if action not in _KEY_ACTIONS:
        raise Http404("No such key action.")
    service, done = _KEY_ACTIONS[action]
    try:
        service(actor=_actor(request))
    except IdentityError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(request, done)
    provider_id = int_param(request.POST.get("provider"))
    if provider_id is not None and IdentityProvider.objects.filter(pk=provider_id).exists():
        return redirect("sso:provider_detail", pk=provider_id)
    return redirect("sso:provider_list")


@require_POST
@requires("manage_users")
def user_link_remove(request, user_pk: int, link_pk: int):
    """Remove a user's SSO link (user page, External identities), so their next SSO sign-in links the
    IdP account they now use. Scope and privilege are checked by ``accounts.identity.links``."""
    from accounts import selectors
    from accounts.identity.links import user_unlink

    user = selectors.user_get(viewer=request.user, user_id=user_pk)
    if user is None:
        raise Http404("No such user.")
    try:
        link = user_unlink(actor=_actor(request), user=user, link_id=link_pk, source=Source.SAML)
    except IdentityError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(request, f"Removed the link to {link.external_id} ({link.get_source_display()}).")
    return redirect("accounts:user_detail", pk=user.pk)
