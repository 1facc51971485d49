"""Console pages for directories (Identity management → Provisioning): add, edit, test connection,
and the Sync now / Dry run / Apply anyway buttons. Thin: the services validate and audit, the sync
runs in a Celery worker (``provisioning.tasks.sync_directory``) and appears in the source's runs."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import requires
from accounts.exceptions import IdentityError
from accounts.forms import add_identity_error
from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from provisioning.journal import run_actor
from provisioning.ldap.directories import directory_create, directory_update
from provisioning.ldap.forms import DirectoryForm, LinkForm
from provisioning.ldap.linking import link_existing_users, preview_linking
from provisioning.ldap.probe import probe_directory
from provisioning.models import Directory
from provisioning.tasks import sync_directory_task

requires_manage_identity = requires("manage_identity")
_FIELD_MAP = {"timeouts": "page_size", "interval": "interval_hours", "reconcile_every": "reconcile_hours",
              "full_every": "full_hours"}
SYNC_MODES = {"sync": "Sync", "dry_run": "Dry run", "force": "Apply anyway"}


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, request=request)


@requires_manage_identity
def directory_add(request: HttpRequest) -> HttpResponse:
    form = DirectoryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            directory = directory_create(actor=_actor(request), name=form.cleaned_data["name"], data=form.settings(),
                                         bind_password=form.cleaned_data["bind_password"],
                                         org=form.cleaned_data["org"])
        except IdentityError as exc:
            add_identity_error(form, exc, _FIELD_MAP)
        else:
            messages.success(request, f"Added {directory.source.name}. Test the connection, then sync.")
            return redirect("provisioning:source_detail", pk=directory.source_id)
    return render(request, "provisioning/directory_form.html", {"form": form, "directory": None})


@requires_manage_identity
def directory_edit(request: HttpRequest, pk: int) -> HttpResponse:
    directory = get_object_or_404(Directory.objects.select_related("source"), source_id=pk)
    form = DirectoryForm(request.POST or None, directory=directory)
    if request.method == "POST" and form.is_valid():
        try:
            directory_update(actor=_actor(request), directory=directory, data=form.settings(),
                             bind_password=form.cleaned_data["bind_password"] or None)
        except IdentityError as exc:
            add_identity_error(form, exc, _FIELD_MAP)
        else:
            messages.success(request, f"Saved {directory.source.name}.")
            return redirect("provisioning:source_detail", pk=pk)
    return render(request, "provisioning/directory_form.html", {"form": form, "directory": directory})


@require_POST
@requires_manage_identity
def directory_test(request: HttpRequest, pk: int) -> HttpResponse:
    directory = get_object_or_404(Directory.objects.select_related("source"), source_id=pk)
    return render(request, "provisioning/directory_test.html",
                  {"directory": directory, "report": probe_directory(directory)})


@require_POST
@requires_manage_identity
def directory_sync(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a run: ``mode`` sync, dry_run or force ("apply anyway" after a held run, audited)."""
    directory = get_object_or_404(Directory.objects.select_related("source"), source_id=pk)
    mode = request.POST.get("mode", "sync")
    if mode not in SYNC_MODES:
        messages.error(request, "Unknown sync mode.")
        return redirect("provisioning:source_detail", pk=pk)
    if directory.lock_expires_at is not None and directory.lock_expires_at > timezone.now():
        messages.error(request, f"A sync of {directory.source.name} is already running; wait for it to finish. "
                                "(already_running)")
        return redirect("provisioning:source_detail", pk=pk)
    actor = _actor(request)
    record_event(actor=actor, action="directory_sync_requested", target_type="source", target_id=pk,
                 target_label=directory.source.name, new={"mode": mode})
    transaction.on_commit(lambda: sync_directory_task.delay(
        directory.pk, dry_run=mode == "dry_run", force=mode == "force", started_by=actor.label))
    messages.success(request, f"{SYNC_MODES[mode]} started for {directory.source.name}; it appears under "
                              "Recent runs.")
    return redirect("provisioning:source_detail", pk=pk)


@requires_manage_identity
def directory_link(request: HttpRequest, pk: int) -> HttpResponse:
    """First-time linking of directory entries to existing idm users: preview (who would be linked,
    who not and why), then "link these" (planned again, linked through the identity service as one
    adoption run; the page redirects to its journal)."""
    directory = get_object_or_404(Directory.objects.select_related("source"), source_id=pk)
    form = LinkForm(request.POST or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        match_by = form.cleaned_data["match_by"]
        try:
            if request.POST.get("action") == "link":
                actor = _actor(request)
                run = link_existing_users(directory, match_by=match_by, actor=actor)
                record_event(actor=run_actor(actor, run), action="directory_users_linked", target_type="source",
                             target_id=pk, target_label=directory.source.name,
                             new={"run": run.run_id, "match_by": match_by, **run.counts})
                messages.success(request, f"Linked {run.counts['adopted']} user(s); the journal lists the others.")
                return redirect("provisioning:run_detail", run_id=run.run_id)
            preview = preview_linking(directory, match_by=match_by, actor=_actor(request))
        except IdentityError as exc:  # DirectoryError: bind, TLS, search — in plain words, with the code
            messages.error(request, f"{exc.message} ({exc.code})")
    return render(request, "provisioning/directory_link.html",
                  {"directory": directory, "source": directory.source, "form": form, "preview": preview})
