"""The console: thin views over selectors (reads) and services (writes).

Every page checks ``Access`` server-side (menus only hide what the checks refuse). Writes go through
``accounts.console_actions`` / ``accounts.identity.orgs`` with ``Actor.for_user``; an ``IdentityError``
becomes a form error or a message with its code, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import console_actions, selectors
from accounts.access import Access
from accounts.csv_export import csv_lines, json_cell
from accounts.decorators import requires
from accounts.exceptions import IdentityError, PolicyDenied
from accounts.forms import (
    AuditFilterForm,
    OrgForm,
    OrgMoveForm,
    OrgSettingsForm,
    UserCreateForm,
    UserEditForm,
    UserFilterForm,
    UserMoveForm,
    UserRolesForm,
    add_identity_error,
    encode_loaded,
)
from accounts.identity import orgs as org_service
from accounts.identity.privilege import changeable_user_ids, check_may_change_user, may_change_user
from accounts.identity.types import Actor, UserState
from accounts.mfa import flow as mfa_flow
from accounts.models import Organization, Role
from accounts.pagination import DeferredJoinPaginator
from accounts.params import int_param
from accounts.redirects import local_path

PAGE_SIZE = 50


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, request=request)


def _access(request: HttpRequest) -> Access:
    return Access.of(request.user)


def _page(request: HttpRequest, queryset, size: int = PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def _report_error(request: HttpRequest, exc: IdentityError) -> None:
    """The error's sentence for people; its code rides along as ``data-code`` (partials/messages.html)."""
    messages.error(request, exc.message, extra_tags=f"code:{exc.code}")


# --------------------------------------------------------------------------------------------
# Sign-in, sign-out, own account


# Sign-in is sso.views.SignInView (username first, then password or the org's identity provider).
logout_view = auth_views.LogoutView.as_view()  # POST only (Django 5)


@requires("console_access")
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's own password: Django's form checks the old one, the service sets the new one."""
    from sso.signin import sso_provider_for

    provider = sso_provider_for(request.user)
    if provider is not None:
        messages.info(request, f"You sign in with {provider.name}: change your password there.")
        return redirect("accounts:account")
    form = PasswordChangeForm(user=request.user, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            console_actions.user_set_password(actor=_actor(request), user=request.user,
                                       password=form.cleaned_data["new_password1"])
        except IdentityError as exc:
            add_identity_error(form, exc, {"password": "new_password1"})
        else:
            request.user.refresh_from_db()
            update_session_auth_hash(request, request.user)
            messages.success(request, "Your password has been changed.")
            return redirect("accounts:account")
    return render(request, "accounts/password_change.html", {"form": form})


@requires("console_access")
def home(request: HttpRequest) -> HttpResponse:
    """Dashboard for directory viewers; everyone else lands on their own account."""
    access = _access(request)
    if not access.has("view_directory"):
        return account(request)
    from ops.dashboard import dashboard_context, user_counts  # charts, alerts, backups (issue 11)

    by_state, by_source = user_counts(access=access, users=selectors.user_list(viewer=request.user))
    counts = [
        {"state": s.value, "label": s.label, "count": by_state.get(s.value, 0),
         "url": f"{reverse('accounts:user_list')}?state={s.value}"}
        for s in UserState
    ]
    org_count = Organization.objects.filter(access.org_filter("view_directory")).count()
    recent = (selectors.audit_target_links(viewer=request.user, events=selectors.audit_event_list()[:8])
              if access.has("view_audit_log") else [])
    return render(request, "accounts/home.html", {
        "counts": counts, "total": sum(by_state.values()), "org_count": org_count, "recent": recent,
        **dashboard_context(access=access, by_source=by_source),
    })


@requires("console_access")
def account(request: HttpRequest) -> HttpResponse:
    """"My account": profile, org and roles of the signed-in user."""
    from sso.signin import sso_provider_for

    user = request.user
    profile = getattr(user, "profile", None)
    return render(request, "accounts/account.html", {
        # SSO users sign in at their identity provider: no password or two-factor here (issue 12).
        "sso_provider": sso_provider_for(user),
        "sign_ins": selectors.sign_in_history(user, limit=5),
        "profile": profile,
        "org_path": profile.org.ancestors() + [profile.org] if profile else [],
        "roles": selectors.user_roles(user),
        "mfa_device": mfa_flow.confirmed_device(user),
        "mfa_required": mfa_flow.org_requires(user),
    })


# --------------------------------------------------------------------------------------------
# Users

USER_COLUMNS = [("name", "Name"), ("username", "Username"), ("email", "Email"), ("org", "Organization"),
                ("created", "Created")]


def _sort_headers(current: str) -> list[dict]:
    out = []
    for key, label in USER_COLUMNS:
        if current == key:
            direction, next_sort = "ascending", f"-{key}"
        elif current == f"-{key}":
            direction, next_sort = "descending", key
        else:
            direction, next_sort = "", key
        out.append({"key": key, "label": label, "aria": direction, "next": next_sort})
    return out


# Up to this many search matches (a fifth of 100k users) sorting them beats walking the username
# index on PostgreSQL even when they are spread out; above it the walk finds a page quickly.
SORT_MATCHES_UP_TO = 20_000


@requires("view_directory")
def user_list(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    form = UserFilterForm(request.GET or None, access=access)
    sort = request.GET.get("sort", "username")
    if sort not in selectors.USER_SORTS:
        sort = "username"
    filters = form.filters()
    users = selectors.user_list(viewer=request.user, sort=sort, **filters)
    page = DeferredJoinPaginator(
        users, form.page_size(), count=lambda: selectors.user_list_count(viewer=request.user, **filters),
        # A search's matches may sit together in the sort order: sort them rather than walk the index.
        sort_matches_up_to=SORT_MATCHES_UP_TO if selectors.search_terms(filters.get("q", "")) else 0,
    ).get_page(request.GET.get("page"))
    can_bulk = access.has("manage_users")
    return render(request, "accounts/user_list.html", {
        "form": form, "page": page, "headers": _sort_headers(sort), "sort": sort,
        "filters_active": len([k for k in filters if k != "q"]),
        "can_bulk": can_bulk, "can_create": access.has("manage_users"),
        # Bulk block/unblock only offers the users the viewer may change (the privilege rule).
        "changeable": changeable_user_ids(request.user, page.object_list) if can_bulk else set(),
    })


def _local_next(request: HttpRequest, candidate: str) -> str:
    """``candidate`` if it is a path on this site, else the users list.

    Never handed to ``redirect()``: that would try ``x`` as a URL name (NoReverseMatch, a 500).
    """
    return local_path(candidate, reverse("accounts:user_list"))


@requires("manage_users")
@require_POST
def user_bulk_state(request: HttpRequest) -> HttpResponse:
    """Block or unblock the selected users after a confirmation page (``confirmed=1``); says how many
    changed, and reports each refused user by name and reason."""
    action = request.POST.get("action")
    back = _local_next(request, request.POST.get("next", ""))
    if action not in ("block", "unblock"):
        messages.error(request, "Choose Block or Unblock.")
        return HttpResponseRedirect(back)
    ids = [i for i in map(int_param, request.POST.getlist("ids")) if i is not None][:1000]
    if not ids:
        messages.error(request, "Select at least one user.")
        return HttpResponseRedirect(back)
    names = dict(selectors.user_list(viewer=request.user).filter(pk__in=ids).values_list("pk", "username"))
    missing = [i for i in ids if i not in names]
    if request.POST.get("confirmed") != "1":
        # Ask first: say how many users, and who, before blocking or unblocking them.
        return render(request, "accounts/user_bulk_confirm.html", {
            "action": action, "label": "Block" if action == "block" else "Unblock", "ids": list(names),
            "names": sorted(names.values(), key=str.lower), "missing": len(missing), "next": back,
        })
    state = UserState.BLOCKED if action == "block" else UserState.ACTIVE
    result = console_actions.users_set_state(actor=_actor(request), user_ids=list(names), state=state)
    counts = result.counts()
    done = counts["updated"]
    verb = "Blocked" if action == "block" else "Unblocked"
    if done:
        messages.success(request, f"{verb} {done} user{'s' if done != 1 else ''}.")
    if counts["unchanged"]:
        messages.info(request, f"{counts['unchanged']} already {'blocked' if action == 'block' else 'unblocked'}.")
    refused = [r for r in result.results if r.status == "refused"]
    for r in refused[:10]:
        messages.warning(request, f"{names.get(r.ref, r.ref)}: {r.error.message}", extra_tags=f"code:{r.error.code}")
    if len(refused) > 10:
        messages.warning(request, f"…and {len(refused) - 10} more refused.")
    if missing:
        messages.warning(request, f"{len(missing)} selected user(s) not found.")
    return HttpResponseRedirect(back)


def _visible_user(request: HttpRequest, pk: int):
    user = selectors.user_get(viewer=request.user, user_id=pk)
    if user is None:
        raise Http404("No such user.")
    return user


def _refuse_more_privileged(request: HttpRequest, user) -> HttpResponse | None:
    """The privilege rule at the front door: back to the user's page with who can do it, or ``None``."""
    try:
        check_may_change_user(_actor(request), user)
    except PolicyDenied as exc:
        _report_error(request, exc)
        return redirect("accounts:user_detail", pk=user.pk)
    return None


def _require_on(request: HttpRequest, perm: str, org: Organization) -> None:
    if not _access(request).can(perm, org):
        raise PermissionDenied(f"missing permission {perm} in {org}")


@requires("view_directory")
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = _visible_user(request, pk)
    access = _access(request)
    org = user.profile.org
    is_self = user.pk == request.user.pk
    events = selectors.audit_event_list(target_type="user", target_id=user.pk)
    # Hide what the privilege rule would refuse: credentials, sign-in, roles, org of a more privileged user.
    may_change = may_change_user(request.user, user)
    return render(request, "accounts/user_detail.html", {
        "subject": user, "profile": user.profile, "org_path": org.ancestors() + [org],
        "roles": selectors.user_roles(user),
        "links": user.external_identities.order_by("source", "provider"),
        "events": events[:25] if access.has("view_audit_log") else None,
        "events_more": access.has("view_audit_log") and events[25:26].exists(),
        "can_manage": access.can("manage_users", org) and not is_self and may_change,
        "may_change": may_change,
        "can_edit": access.can("manage_users", org) or access.can("modify_user_profile", org),
        "can_roles": access.can("assign_roles", org) and not is_self and may_change,
        "is_self": is_self,
        "mfa_device": mfa_flow.confirmed_device(user),
        "mfa_required": mfa_flow.org_requires(user),
        "can_reset_mfa": access.can("manage_mfa", org) and may_change,
        **_email_trust_context(request, user, may_change=may_change),
    })


def _email_trust_context(request: HttpRequest, user, *, may_change: bool) -> dict:
    """Whether the user's address is unconfirmed (review 4 F1: links are not sent to it) and whether
    the viewer may confirm it. Two queries, on this page only (never on lists)."""
    from accounts.credentials.email_trust import email_trust

    if not user.email:
        return {}
    trust = email_trust(user)
    if trust.trusted:
        return {}
    access = _access(request)
    org = user.profile.org
    return {"email_unconfirmed": trust, "can_confirm_email": may_change and user.pk != request.user.pk and (
        access.can("manage_users", org) or access.can("modify_user_profile", org))}


@requires("view_directory")
@require_POST
def user_confirm_email(request: HttpRequest, pk: int) -> HttpResponse:
    """"Confirm email": the admin vouches for the user's current address (``credentials.confirm_email``)."""
    from accounts.credentials.service import confirm_email

    user = _visible_user(request, pk)
    access, org = _access(request), user.profile.org
    if not (access.can("manage_users", org) or access.can("modify_user_profile", org)):
        raise PermissionDenied("may not edit this user")  # as Edit: the scope of an email change
    try:
        confirmed = confirm_email(actor=_actor(request), user=user)
    except IdentityError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(request, f"Confirmed {user.email} for {user.username}: password links may go to it."
                         if confirmed else f"{user.email} was already confirmed.")
    return redirect("accounts:user_detail", pk=user.pk)


@requires("manage_users")
def user_create(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    initial_org = None
    org_id = int_param(request.GET.get("org"))
    if org_id is not None:
        initial_org = Organization.objects.filter(pk=org_id).first()
    form = UserCreateForm(request.POST or None, access=access, initial_org=initial_org)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        values = dict(username=d["username"], org_id=d["org"].pk, email=d["email"], first_name=d["first_name"],
                      last_name=d["last_name"], password=d["password"] or None,
                      roles=[r.slug for r in d["roles"]], notes=d["notes"])
        try:
            result = console_actions.user_create(actor=_actor(request), **values)
        except IdentityError as exc:
            # Every field's error at once, not one per submit.
            for problem in console_actions.user_create_problems(actor=_actor(request), **values) or [exc]:
                add_identity_error(form, problem)
        else:
            if result.user.profile.state == UserState.INVITED:  # no password: send or copy the invitation
                messages.success(request, f"Created {result.user.username}. They are invited: send them "
                                 "their invitation by email, or copy the link.")
                return redirect("accounts:user_invitation", pk=result.user.pk)
            messages.success(request, f"Created {result.user.username}.")
            return redirect("accounts:user_detail", pk=result.user.pk)
    return render(request, "accounts/user_form.html", {"form": form, "title": "Create user"})


@requires("view_directory")
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _visible_user(request, pk)
    access = _access(request)
    org = user.profile.org
    can_manage = access.can("manage_users", org)
    if not (can_manage or access.can("modify_user_profile", org)):
        raise PermissionDenied("may not edit this user")
    initial = {"username": user.username, "email": user.email, "first_name": user.first_name,
               "last_name": user.last_name, "notes": user.profile.notes}
    form = UserEditForm(request.POST or None, initial=initial, can_rename=can_manage,
                        can_change_sign_in=may_change_user(request.user, user))
    if request.method == "GET" and user.email and not form.fields["email"].disabled:
        from accounts.credentials.email_trust import email_trust

        trust = email_trust(user)
        if not trust.trusted:  # review 4 F1: say what saving does before the admin does it
            form.fields["email"].help_text = (
                f"Unconfirmed: set by {trust.set_by or 'someone'}, who may not change {user.username} now, so no "
                "password links go to it. Check it with the user: saving confirms the address shown here.")
    if request.method == "POST" and form.is_valid():
        changes, conflicts = form.changes_since_loaded(initial)
        if conflicts:
            # Show the current values as the new baseline: saving again replaces them knowingly.
            data = request.POST.copy()
            data["loaded"] = encode_loaded(initial)
            form = UserEditForm(data, initial=initial, can_rename=can_manage,
                                can_change_sign_in=may_change_user(request.user, user))
            form.is_valid()
            for name in conflicts:
                form.add_error(name, ValidationError(
                    "Someone else changed this since you opened the page (now: %(now)s). "
                    "Save again to replace it with your value.",
                    code="changed_meanwhile", params={"now": initial[name] or "empty"}))
            return render(request, "accounts/user_form.html", {"form": form, "subject": user,
                                                                "title": f"Edit {user.username}"}, status=409)
        try:
            if changes:
                console_actions.user_update(actor=_actor(request), user=user, **changes)
        except IdentityError as exc:
            for problem in console_actions.user_update_problems(actor=_actor(request), user=user, **changes) or [exc]:
                add_identity_error(form, problem)
        else:
            confirmed = "email" not in changes and not form.fields["email"].disabled and _reconfirm_email(request, user)
            messages.success(request, "Saved." if changes or confirmed else "Nothing to change.")
            return redirect("accounts:user_detail", pk=user.pk)
    return render(request, "accounts/user_form.html", {"form": form, "subject": user,
                                                        "title": f"Edit {user.username}"})


def _reconfirm_email(request: HttpRequest, user) -> bool:
    """Saving a user's address unchanged vouches for it again (review 4 F1): a ``user.email_confirmed``
    event when it was unconfirmed and the admin may set it now; a refusal is shown, not raised."""
    from accounts.credentials.service import confirm_email

    if not user.email or user.pk == request.user.pk:
        return False
    try:
        confirmed = confirm_email(actor=_actor(request), user=user)
    except IdentityError as exc:
        messages.warning(request, f"The email address stays unconfirmed: {exc.message} ({exc.code})")
        return False
    if confirmed:
        messages.info(request, f"Confirmed {user.email}: password links may go to it again.")
    return confirmed


STATE_ACTIONS = {
    "block": (console_actions.user_block, "Block", "Blocked {}. They are signed out and cannot sign in."),
    "unblock": (console_actions.user_unblock, "Unblock", "Unblocked {}."),
    "deactivate": (console_actions.user_deactivate, "Deactivate", "Deactivated {}."),
    "reactivate": (console_actions.user_reactivate, "Reactivate", "Reactivated {}."),
}


@requires("manage_users")
def user_state(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Block / unblock / deactivate / reactivate: GET asks for confirmation, POST does it."""
    if action not in STATE_ACTIONS:
        raise Http404
    user = _visible_user(request, pk)
    _require_on(request, "manage_users", user.profile.org)
    if refused := _refuse_more_privileged(request, user):
        return refused
    func, label, done = STATE_ACTIONS[action]
    if request.method == "POST":
        try:
            result = func(actor=_actor(request), user=user)
        except IdentityError as exc:
            _report_error(request, exc)
        else:
            if result.status == "unchanged":
                messages.info(request, f"{user.username} was already in that state.")
            else:
                messages.success(request, done.format(user.username))
        return redirect("accounts:user_detail", pk=user.pk)
    return render(request, "accounts/user_confirm.html", {"subject": user, "action": action, "label": label})


@requires("manage_users")
def user_move(request: HttpRequest, pk: int) -> HttpResponse:
    user = _visible_user(request, pk)
    _require_on(request, "manage_users", user.profile.org)
    if refused := _refuse_more_privileged(request, user):
        return refused
    form = UserMoveForm(request.POST or None, access=_access(request), current=user.profile.org)
    if request.method == "POST" and form.is_valid():
        try:
            console_actions.user_move(actor=_actor(request), user=user, org_id=form.cleaned_data["org"].pk)
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            messages.success(request, f"Moved {user.username} to {form.cleaned_data['org'].name}.")
            return redirect("accounts:user_detail", pk=user.pk)
    return render(request, "accounts/user_move.html", {"form": form, "subject": user})


@requires("assign_roles")
def user_roles(request: HttpRequest, pk: int) -> HttpResponse:
    user = _visible_user(request, pk)
    _require_on(request, "assign_roles", user.profile.org)
    if refused := _refuse_more_privileged(request, user):
        return refused
    held = {r.slug for r in selectors.user_roles(user)}
    form = UserRolesForm(request.POST or None, access=_access(request), held=held)
    if request.method == "POST" and form.is_valid():
        try:
            result = console_actions.user_set_roles(actor=_actor(request), user=user, roles=form.target_slugs())
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            for warning in result.warnings:
                messages.info(request, warning[:1].upper() + warning[1:] + ".")
            messages.success(request, "Roles saved." if result.status != "unchanged" else "Roles unchanged.")
            return redirect("accounts:user_detail", pk=user.pk)
    return render(request, "accounts/user_roles.html", {"form": form, "subject": user})


# --------------------------------------------------------------------------------------------
# Organizations


def _org_for(request: HttpRequest, pk: int, perm: str) -> Organization:
    """An org the viewer can see (404 otherwise) and may use ``perm`` on (403 otherwise)."""
    access = _access(request)
    org = Organization.objects.filter(access.org_filter("view_directory"), pk=pk).first()
    if org is None:
        raise Http404("No such organization.")
    _require_on(request, perm, org)
    return org


@requires("view_directory")
def org_list(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    show = request.GET.get("show", "active")
    tree = selectors.org_tree(viewer=request.user)
    if show == "active":
        tree = [o for o in tree if o.is_active]
    elif show == "deactivated":
        tree = [o for o in tree if not o.is_active]
    base = min((o.depth for o in tree), default=0)
    for org in tree:
        org.can_manage = access.can("manage_orgs", org)
    return render(request, "accounts/org_list.html", {"tree": tree, "base_depth": base, "show": show})


@requires("view_directory")
def org_detail(request: HttpRequest, pk: int) -> HttpResponse:
    org = _org_for(request, pk, "view_directory")
    access = _access(request)
    eff = org_service.effective_settings(org)
    return render(request, "accounts/org_detail.html", {
        "org": org, "org_path": org.ancestors(), "eff": eff,
        "children": org.children.order_by("name"),
        "user_count": org.profiles.count(),
        "can_manage": access.can("manage_orgs", org),
        "can_add_users": access.can("manage_users", org) and org.is_active,
        "events": selectors.audit_event_list(target_type="org", target_id=org.pk)[:15]
        if access.has("view_audit_log") else None,
    })


@requires("manage_orgs")
def org_create(request: HttpRequest, pk: int) -> HttpResponse:
    parent = _org_for(request, pk, "manage_orgs")
    form = OrgForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = org_service.org_create(actor=_actor(request), parent=parent, **form.cleaned_data)
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            messages.success(request, f"Created {org.name}.")
            return redirect("accounts:org_detail", pk=org.pk)
    return render(request, "accounts/org_form.html", {"form": form, "parent": parent,
                                                       "title": f"New sub-organization of {parent.name}"})


@requires("manage_orgs")
def org_edit(request: HttpRequest, pk: int) -> HttpResponse:
    org = _org_for(request, pk, "manage_orgs")
    form = OrgForm(request.POST or None, initial={"name": org.name, "external_ref": org.external_ref,
                                                  "notes": org.notes})
    if request.method == "POST" and form.is_valid():
        try:
            org_service.org_update(actor=_actor(request), org=org, **form.cleaned_data)
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("accounts:org_detail", pk=org.pk)
    return render(request, "accounts/org_form.html", {"form": form, "org": org, "title": f"Edit {org.name}"})


@requires("manage_orgs")
def org_move(request: HttpRequest, pk: int) -> HttpResponse:
    org = _org_for(request, pk, "manage_orgs")
    if org.parent_id is None:
        messages.error(request, "The top-level organization cannot be moved.", extra_tags="code:org_root_move")
        return redirect("accounts:org_detail", pk=org.pk)
    form = OrgMoveForm(request.POST or None, access=_access(request), org=org)
    if request.method == "POST" and form.is_valid():
        try:
            org_service.org_move(actor=_actor(request), org=org, new_parent=form.cleaned_data["parent"])
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            messages.success(request, f"Moved {org.name} under {form.cleaned_data['parent'].name}.")
            return redirect("accounts:org_detail", pk=org.pk)
    return render(request, "accounts/org_move.html", {"form": form, "org": org})


ORG_ACTIONS = {
    "deactivate": ("Deactivate", "Deactivated {}."),
    "reactivate": ("Reactivate", "Reactivated {}."),
    "delete": ("Delete", "Deleted {}."),
}


@requires("manage_orgs")
def org_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Deactivate / reactivate / delete an org: GET asks for confirmation, POST does it."""
    if action not in ORG_ACTIONS:
        raise Http404
    org = _org_for(request, pk, "manage_orgs")
    label, done = ORG_ACTIONS[action]
    if request.method == "POST":
        parent_id = org.parent_id
        try:
            if action == "delete":
                org_service.org_delete(actor=_actor(request), org=org)
            else:
                org_service.org_set_active(actor=_actor(request), org=org, active=action == "reactivate")
        except IdentityError as exc:
            _report_error(request, exc)
            return redirect("accounts:org_detail", pk=org.pk)
        messages.success(request, done.format(org.name))
        if action == "delete":
            return redirect("accounts:org_detail", pk=parent_id) if parent_id else redirect("accounts:org_list")
        return redirect("accounts:org_detail", pk=org.pk)
    inside = selectors.org_subtree_user_counts(org)
    return render(request, "accounts/org_confirm.html", {"org": org, "action": action, "label": label,
                                                          "inside": inside})


@requires("manage_orgs")
def org_settings(request: HttpRequest, pk: int) -> HttpResponse:
    org = _org_for(request, pk, "manage_orgs")
    form = OrgSettingsForm(request.POST or None, org=org, access=_access(request))
    if request.method == "POST" and form.is_valid():
        try:
            changed = org_service.org_update_settings(actor=_actor(request), org=org, **form.service_kwargs())
        except IdentityError as exc:
            add_identity_error(form, exc, {"inherit_default_roles": "roles_inherit"})
        else:
            messages.success(request, "Settings saved." if changed else "Nothing to change.")
            return redirect("accounts:org_settings", pk=org.pk)
    org.refresh_from_db()
    eff = org_service.effective_settings(org)
    parent_eff = org_service.effective_settings(org.parent) if org.parent_id else None
    return render(request, "accounts/org_settings.html", {
        "form": form, "org": org, "eff": eff, "parent_eff": parent_eff,
    })


# --------------------------------------------------------------------------------------------
# Roles


@requires("view_directory")
def role_list(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    roles = list(selectors.role_list())
    if not access.is_global("view_directory"):
        # Org-scoped viewers see holder counts of their own subtree only.
        scoped = dict(selectors.user_list(viewer=request.user).order_by().values_list("groups")
                      .annotate(n=Count("pk")))
        for role in roles:
            role.holder_count = scoped.get(role.group_id, 0)
    for role in roles:
        role.perm_labels = sorted(p.name.removeprefix("Can ") for p in role.group.permissions.all())
    return render(request, "accounts/role_list.html", {"roles": roles})


@requires("view_directory")
def role_detail(request: HttpRequest, slug: str) -> HttpResponse:
    role = get_object_or_404(Role.objects.select_related("group"), slug=slug)
    holders = selectors.user_list(viewer=request.user, role=role)
    perms = sorted(p.name.removeprefix("Can ") for p in role.group.permissions.all())
    return render(request, "accounts/role_detail.html", {"role": role, "page": _page(request, holders),
                                                          "perm_labels": perms})


# --------------------------------------------------------------------------------------------
# Audit log


@requires("view_audit_log")
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    page = _page(request, selectors.audit_event_list(**form.filters()))
    return render(request, "accounts/audit_list.html", {
        "form": form, "page": page, "linked_events": selectors.audit_target_links(viewer=request.user, events=page),
    })


CSV_COLUMNS = ["time", "actor", "actor_type", "action", "target_type", "target_id", "target", "field",
               "old_value", "new_value", "source", "request_id", "job_id", "ip_address", "message"]


def _audit_rows(events) -> Iterator[str]:
    rows = ((e.created_at.isoformat(), e.actor_label, e.actor_type, e.action, e.target_type, e.target_id,
             e.target_label, e.field, json_cell(e.old_value), json_cell(e.new_value), e.source,
             e.request_id, e.job_id, e.ip_address, e.message) for e in events.iterator(chunk_size=2000))
    return csv_lines(CSV_COLUMNS, rows)


@requires("view_audit_log")
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered audit log as CSV (or JSON lines with ``?format=jsonl``), newest first, at most
    AUDIT_EXPORT_LIMIT events, streamed row by row (no full load into memory)."""
    from ops.audit_export import AUDIT_EXPORT_LIMIT, jsonl_rows

    form = AuditFilterForm(request.GET or None)
    events = selectors.audit_event_list(**form.filters())[:AUDIT_EXPORT_LIMIT]
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if request.GET.get("format") == "jsonl":
        response = StreamingHttpResponse(jsonl_rows(events), content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="idm-audit-{stamp}.jsonl"'
        return response
    response = StreamingHttpResponse(_audit_rows(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="idm-audit-{stamp}.csv"'
    return response
