"""Console pages: Identity management -> Provisioning (sources, their rules, run journals).

Thin: forms check input shape, ``provisioning.services`` validates and audits, ``preview`` reads.
Every page needs ``manage_identity``; rules granting admin roles need a Customer Cloud Admin
(enforced in the service, shown here). A bulk upload's run (journal) may also be read by whoever may
open the upload (``accounts.bulk_upload.access.may_view_upload``): its uploader, or a global
``manage_users`` admin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.access import Access
from accounts.bulk_upload.access import may_view_upload
from accounts.bulk_upload.models import BulkUpload
from accounts.csv_export import csv_lines, json_cell
from accounts.decorators import requires
from accounts.exceptions import IdentityError
from accounts.forms import add_identity_error
from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from accounts.models import UserProfile
from provisioning.adoption import apply_adoption, plan_adoption
from provisioning.forms import AdoptionForm, JournalFilterForm, RuleForm, SourceForm
from provisioning.journal import run_actor, start_run
from provisioning.ldap.history import sync_history
from provisioning.models import Directory, MappingRule, ProvisioningRun, Source
from provisioning.policy import check_rule_grants, may_administer_source
from provisioning.preview import preview_rules
from provisioning.progress import PHASES, progress_json
from provisioning.resolve import role_catalogue
from provisioning.rules import Condition, ConditionKind, Rule, RuleKind, validate_rule
from provisioning.services import actor_is_cloud_admin, rule_delete, rule_save, source_save
from provisioning.tasks import reapply_source_rules

requires_manage_identity = requires("manage_identity")
JOURNAL_PAGE = 100


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, request=request)


@requires_manage_identity
def source_list(request: HttpRequest) -> HttpResponse:
    sources = Source.objects.annotate(user_count=Count("profiles", distinct=True),
                                      rule_count=Count("rules", distinct=True))
    return render(request, "provisioning/source_list.html", {"sources": sources})


def _say_revoked(request: HttpRequest, count: int) -> None:
    if count:
        messages.warning(request, f"{count} credential(s) of this provider stopped working: they were issued by "
                         "someone who may not administer it with its new powers. Issue a new token and paste it "
                         "into the identity provider.")


@requires_manage_identity
def source_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk) if pk else None
    form = SourceForm(request.POST or None, instance=source)
    if request.method == "POST" and form.is_valid():
        try:
            saved = source_save(actor=_actor(request), source=form.save(commit=False))
        except IdentityError as exc:
            add_identity_error(form, exc)
        else:
            messages.success(request, f"Saved {saved.name}.")
            _say_revoked(request, saved.revoked_credentials)
            return redirect("provisioning:source_detail", pk=saved.pk)
    return render(request, "provisioning/source_form.html", {"form": form, "source": source})


@requires_manage_identity
def source_detail(request: HttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk)
    users = UserProfile.objects.filter(owner_source=source)
    directory = Directory.objects.filter(source=source).first()
    return render(request, "provisioning/source_detail.html", {
        "directory": directory, "history": sync_history(source) if directory else None,
        "source": source, "user_count": users.count(),
        "may_administer": may_administer_source(_actor(request), source),  # hide what would be refused (F1a)
        "sample_users": users.select_related("user", "org").order_by("user__username")[:10],
        "runs": source.runs.all()[:20], "rule_count": source.rules.count(),
        "last_sync": source.runs.filter(kind=ProvisioningRun.Kind.SYNC, dry_run=False)
        .exclude(status=ProvisioningRun.Status.RUNNING).first(),
    })


def _proposed_rules(source: Source, form: RuleForm, editing: MappingRule | None, cloud_admin: bool,
                    actor: Actor) -> tuple:
    """The source's rules as they would be if ``form`` were saved (validated like a save, not written)."""
    data = form.rule_input()
    try:
        kind, condition = RuleKind(data.kind), ConditionKind(data.condition)
    except ValueError:
        raise IdentityError("rule_kind_unknown", "Choose a rule kind and a condition.") from None
    proposed = validate_rule(
        Rule(kind, Condition(condition, attribute=data.attribute.strip(), value=data.value.strip()),
             position=data.position, org_id=data.target_org_id, roles=data.role_slugs),
        roles=role_catalogue(), saver_is_cloud_admin=cloud_admin,
    )
    check_rule_grants(actor=actor, source=source, role_slugs=data.role_slugs if kind == RuleKind.ROLE else (),
                      target_org=form.cleaned_data.get("target_org"))
    others = tuple(r for r in source.rule_set() if editing is None or r.rule_id != editing.pk)
    return (*others, proposed)


@requires_manage_identity
def source_rules(request: HttpRequest, pk: int, rule_pk: int | None = None) -> HttpResponse:
    """The rules editor: list, add or edit one rule, preview its effect before saving."""
    source = get_object_or_404(Source, pk=pk)
    editing = get_object_or_404(MappingRule, pk=rule_pk, source=source) if rule_pk else None
    actor = _actor(request)
    cloud_admin = actor_is_cloud_admin(actor)
    initial = RuleForm.initial_for(editing) if editing else None
    form = RuleForm(request.POST or None, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        try:
            if "preview" in request.POST:
                preview = preview_rules(source=source, rules=_proposed_rules(source, form, editing, cloud_admin, actor),
                                        org_policy=source.org_policy())
            else:
                saved = rule_save(actor=actor, source=source, data=form.rule_input(), rule=editing)
                messages.success(request, "Rule saved. Re-apply the rules to update the source's users.")
                _say_revoked(request, saved.revoked_credentials)
                return redirect("provisioning:source_rules", pk=source.pk)
        except IdentityError as exc:
            add_identity_error(form, exc, {"target_org": "target_org", "roles": "roles"})
    elif request.method == "GET" and request.GET.get("preview") == "current":
        preview = preview_rules(source=source, rules=source.rule_set(), org_policy=source.org_policy())
    rules = source.rules.prefetch_related("roles").select_related("target_org").order_by("kind", "position", "pk")
    return render(request, "provisioning/source_rules.html", {
        "source": source, "rules": rules, "form": form, "editing": editing, "preview": preview,
        "cloud_admin": cloud_admin,
    })


@require_POST
@requires_manage_identity
def rule_remove(request: HttpRequest, pk: int, rule_pk: int) -> HttpResponse:
    rule = get_object_or_404(MappingRule, pk=rule_pk, source_id=pk)
    try:
        rule_delete(actor=_actor(request), rule=rule)
    except IdentityError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(request, "Rule deleted.")
    return redirect("provisioning:source_rules", pk=pk)


@require_POST
@requires_manage_identity
def source_reapply(request: HttpRequest, pk: int) -> HttpResponse:
    """Start re-applying the source's rules to all its users (a Celery task); show the run's progress."""
    source = get_object_or_404(Source, pk=pk)
    run = start_run(kind=ProvisioningRun.Kind.RULES_REAPPLY, actor=_actor(request), source=source,
                    dry_run=request.POST.get("dry_run") == "1")
    record_event(actor=run_actor(_actor(request), run), action="provisioning_rules_reapply_started", target_type="source",
                 target_id=source.pk, target_label=source.name, new={"run": run.run_id, "dry_run": run.dry_run})
    transaction.on_commit(lambda: reapply_source_rules.delay(source.pk, run.run_id))
    return redirect("provisioning:run_detail", run_id=run.run_id)


@requires_manage_identity
def source_adopt(request: HttpRequest, pk: int) -> HttpResponse:
    """Adoption: preview who the source would take over (and who not, why), then apply it.

    *Apply* plans again from the same candidates (the preview may be stale) and adopts through the
    identity service as one run; the page redirects to the run's journal.
    """
    source = get_object_or_404(Source, pk=pk)
    form = AdoptionForm(request.POST or None)
    decisions = None
    if request.method == "POST" and form.is_valid():
        candidates = form.cleaned_data["candidates"]
        if request.POST.get("action") == "apply":
            if not source.adoption_enabled:
                messages.error(request, "Adoption is off for this source. (adoption_disabled)")
                return redirect("provisioning:source_adopt", pk=source.pk)
            actor = _actor(request)
            run = apply_adoption(source=source, candidates=candidates, actor=actor)
            record_event(actor=run_actor(actor, run), action="provisioning_adoption_applied", target_type="source",
                         target_id=source.pk, target_label=source.name, new={"run": run.run_id, **run.counts})
            messages.success(request, f"Adopted {run.counts['adopted']} user(s); see the journal for the others.")
            return redirect("provisioning:run_detail", run_id=run.run_id)
        decisions = plan_adoption(source=source, candidates=candidates, actor=_actor(request))
    adoptable = sum(d.adopt for d in decisions) if decisions else 0
    return render(request, "provisioning/source_adopt.html",
                  {"source": source, "form": form, "decisions": decisions, "adoptable": adoptable})


def _readable_run(request: HttpRequest, run_id: str) -> ProvisioningRun:
    """The run, if the viewer may read its journal: ``manage_identity`` reads every run; a bulk
    upload's run is also readable by whoever may open the upload (the upload pages' rule), and
    anyone else gets a 404 for it (as for the upload), or a 403 without either permission."""
    access = Access.of(request.user)
    runs = ProvisioningRun.objects.select_related("source")
    if access.has("manage_identity"):
        return get_object_or_404(runs, run_id=run_id)
    if not access.has("manage_users"):
        raise PermissionDenied("missing permission manage_identity")
    run = get_object_or_404(runs, run_id=run_id, kind=ProvisioningRun.Kind.BULK_UPLOAD)
    try:
        upload = BulkUpload.objects.filter(pk=uuid.UUID(run.run_id)).first()
    except ValueError:
        upload = None
    if upload is None or not may_view_upload(access, request.user, upload):
        raise Http404
    return run


@login_required
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """A run's journal, filtered, 100 entries a page."""
    run = _readable_run(request, run_id)
    form = JournalFilterForm(request.GET or None)
    entries = form.apply(run.entries.all())
    page = Paginator(entries, JOURNAL_PAGE).get_page(request.GET.get("page"))
    # A directory sync refuses entries whose username an existing, unlinked user has: point to linking.
    taken = 0
    if run.kind == ProvisioningRun.Kind.SYNC and run.source_id and Directory.objects.filter(
            source_id=run.source_id).exists():
        taken = run.entries.filter(result="refused", code="username_taken").count()
    return render(request, "provisioning/run_detail.html", {
        "run": run, "form": form, "page": page, "progress": progress_json(run),
        "phase_label": PHASES.get(run.progress_phase, run.progress_phase), "username_taken": taken})


@login_required
def run_progress(request: HttpRequest, run_id: str) -> JsonResponse:
    """The run's live progress as JSON, for the run page's poller (static/idm/run_progress.js)."""
    run = _readable_run(request, run_id)
    response = JsonResponse(progress_json(run))
    response["Cache-Control"] = "no-store"
    return response


JOURNAL_COLUMNS = ["run", "user", "subject", "old_value", "new_value", "result", "code", "message", "ref"]


def _journal_rows(run: ProvisioningRun, entries) -> Iterator[str]:
    # The one CSV writer and formula rule (accounts/csv_export.py).
    rows = ((run.run_id, e.user_label, e.subject, json_cell(e.old_value), json_cell(e.new_value), e.result, e.code,
             e.message, e.ref) for e in entries.iterator(chunk_size=2000))
    return csv_lines(JOURNAL_COLUMNS, rows)


@login_required
def run_export(request: HttpRequest, run_id: str) -> StreamingHttpResponse:
    """The filtered journal as CSV, streamed."""
    run = _readable_run(request, run_id)
    form = JournalFilterForm(request.GET or None)
    response = StreamingHttpResponse(_journal_rows(run, form.apply(run.entries.all())),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="idm-journal-{run.run_id[:12]}.csv"'
    return response
