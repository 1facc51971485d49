"""Console pages: Identity management -> Authentication (identity providers). Needs ``manage_identity``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import requires
from accounts.exceptions import IdentityError
from accounts.identity.types import Actor, Source
from accounts.params import int_param
from sso import keys, services, setup_test
from sso.config import acs_url, sp_entity_id
from sso.console_errors import plain_metadata_error
from sso.forms import BreakGlassForm, ProviderForm, ProviderMetadataForm, ProviderNameForm
from sso.metadata import expiring_certs, metadata_warnings
from sso.models import IdentityProvider
from sso.policy import may_administer_provider, users_beyond_trust
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
    provider = get_object_or_404(IdentityProvider.objects.select_related("trust_set_by"), pk=pk)
    beyond, jit_beyond = users_beyond_trust(provider)
    return render(request, "sso/provider_detail.html", {
        "p": provider, "orgs": provider.organizations.all(), "expiring": expiring_certs(provider.metadata_summary),
        "metadata_warnings": metadata_warnings(provider.metadata_summary, provider.metadata_xml),
        "sp_entity_id": sp_entity_id(provider), "acs_url": acs_url(provider), "sp": _sp_urls(request, provider),
        "break_glass": provider.break_glass_users.order_by("username"), "sp_keys": keys.key_status(),
        "may_change": may_administer_provider(_actor(request), provider),
        "users_beyond_trust": beyond, "jit_beyond_trust": jit_beyond,
    })


def _sp_urls(request, provider: IdentityProvider) -> dict:
    """idm's own SAML values for one provider, as absolute URLs the IdP admin copies."""
    from sso.config import slo_url

    return {"sp_entity_id": sp_entity_id(provider), "acs_url": acs_url(provider), "slo_url": slo_url(provider),
            # The entity id is the metadata's own URL (IDM_BASE_URL based, as the IdP must reach it).
            "metadata_url": sp_entity_id(provider),
            "metadata_download": reverse("sso:metadata", args=[provider.pk]) + "?download=1"}


def _metadata_error(form, exc: IdentityError, url: str = "") -> None:
    """A metadata refusal as a plain sentence (no Python exception text); the code stays as data-code."""
    form.add_error(None, ValidationError(plain_metadata_error(exc, url=url), code=exc.code))


@requires_manage_identity
def provider_edit(request, pk: int | None = None):
    """Everything about a provider on one page, in four groups; new providers start in the guided setup."""
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
            _metadata_error(form, exc, url=instance.metadata_url if fetch else "")
        else:
            _saved_message(request, f"Saved {instance.name}.", instance if (metadata_xml or fetch) else None)
            return redirect("sso:provider_detail", pk=instance.pk)
    return render(request, "sso/provider_form.html", {
        "form": form, "p": provider, "sp": _sp_urls(request, provider) if provider else None})


# --------------------------------------------------------------------------------------------
# Guided setup: name -> idm's SP values to copy -> the IdP's metadata -> test sign-in.
# idm's entity id and ACS URL contain the provider's id, so the provider exists (turned off, with
# no metadata, used by no org) from step 1 on; the IdP admin gets idm's values before idm needs theirs.


@requires_manage_identity
def provider_setup_start(request):
    """Step 1: name the provider. Creates it turned off until its metadata is loaded."""
    form = ProviderNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        draft = form.save(commit=False)
        draft.enabled = False
        try:
            draft = provider_save(actor=_actor(request), provider=draft)
        except IdentityError as exc:
            form.add_error(None, ValidationError(exc.message, code=exc.code))
        else:
            return redirect("sso:provider_setup", pk=draft.pk)
    return render(request, "sso/provider_setup.html", {"step": 1, "name_form": form})


@requires_manage_identity
def provider_setup(request, pk: int):
    """Steps 2 and 3: idm's SP values with copy buttons, then the IdP's metadata (URL or upload)."""
    provider = get_object_or_404(IdentityProvider, pk=pk)
    was_enabled, was_draft = provider.enabled, not provider.metadata_xml
    form = ProviderMetadataForm(request.POST or None, request.FILES or None, instance=provider)
    if request.method == "POST" and form.is_valid():
        instance = form.save(commit=False)
        metadata_xml = form.cleaned_data.get("metadata_file") or None
        fetch = not metadata_xml
        if was_draft:
            instance.enabled = True  # usable once the IdP is known; no org uses it until an admin says so
        try:
            instance = provider_save(actor=_actor(request), provider=instance, metadata_xml=metadata_xml,
                                     fetch=fetch)
        except IdentityError as exc:
            instance.enabled = was_enabled
            _metadata_error(form, exc, url=instance.metadata_url if fetch else "")
        else:
            _saved_message(request, f"Loaded the metadata of {instance.name}.", instance)
            return redirect("sso:provider_test", pk=instance.pk)
    step = 3 if request.method == "POST" or request.GET.get("step") == "3" else 2
    return render(request, "sso/provider_setup.html", {
        "step": step, "p": provider, "sp": _sp_urls(request, provider), "form": form})


@requires_manage_identity
def provider_test(request, pk: int):
    """Step 4: GET explains, POST starts one SP-initiated sign-in that returns to the result page."""
    provider = get_object_or_404(IdentityProvider, pk=pk)
    if request.method == "POST":
        try:
            return setup_test.start(request, provider)
        except ValueError as exc:
            messages.error(request, str(exc), extra_tags="code:test_not_possible")
            return redirect("sso:provider_test", pk=pk)
    return render(request, "sso/provider_setup.html", {
        "step": 4, "p": provider, "sp": _sp_urls(request, provider),
        "result": setup_test.result_for(request, provider)})


@requires_manage_identity
def provider_test_result(request, pk: int):
    """What the IdP asserted in this admin's last test sign-in, and how idm maps it."""
    provider = get_object_or_404(IdentityProvider, pk=pk)
    result = setup_test.result_for(request, provider)
    if result is None:
        messages.info(request, "No test sign-in result yet (results are kept for ten minutes). Start one below.")
        return redirect("sso:provider_test", pk=pk)
    return render(request, "sso/provider_setup.html", {
        "step": 4, "p": provider, "sp": _sp_urls(request, provider), "result": result, "show_result": True})


@require_POST
@requires_manage_identity
def provider_refresh(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    if metadata_refresh(provider=provider, actor=_actor(request)):
        _saved_message(request, "Metadata refreshed.", provider)
    else:
        messages.error(request, provider.metadata_error or "This provider has no metadata URL.")
    return redirect("sso:provider_detail", pk=pk)


@require_POST
@requires_manage_identity
def provider_confirm_trust(request, pk: int):
    """"Confirm trust": the signed-in admin vouches for the provider's metadata and mapping as they are
    (fourth review F2); judged as a change of the provider by ``sso.policy``."""
    provider = get_object_or_404(IdentityProvider, pk=pk)
    try:
        services.provider_confirm_trust(actor=_actor(request), provider=provider)
    except IdentityError as exc:
        messages.error(request, exc.message, extra_tags=f"code:{exc.code}")
    else:
        messages.success(request, f"Confirmed {provider.name}: it signs in every user you may change.")
    return redirect("sso:provider_detail", pk=pk)


@requires_manage_identity
def provider_delete(request, pk: int):
    provider = get_object_or_404(IdentityProvider, pk=pk)
    if request.method == "POST":
        try:
            services.provider_delete(actor=_actor(request), provider=provider)
        except IdentityError as exc:
            messages.error(request, exc.message, extra_tags=f"code:{exc.code}")
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
        messages.error(request, exc.message, extra_tags=f"code:{exc.code}")
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
