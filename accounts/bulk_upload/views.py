"""Console pages of the bulk upload: upload -> preview -> confirm -> live progress -> report; the
users export; the set-password page for invited users. Thin: the work is in ``apply``/``validate``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import Access
from accounts.bulk_upload import conf
from accounts.bulk_upload.access import may_view_upload
from accounts.bulk_upload.apply import confirm_upload, create_upload, preview_report_csv
from accounts.bulk_upload.export import export_lines
from accounts.bulk_upload.invitations import invitable_users
from accounts.bulk_upload.invitations import invite_links as bulk_invite_links
from accounts.bulk_upload.journal import upload_run
from accounts.bulk_upload.models import BulkUpload
from accounts.bulk_upload.parser import OPERATIONS, template_csv
from accounts.bulk_upload.tasks import bulk_send_invitations, dispatch_hashing
from accounts.csv_export import csv_lines
from accounts.forms import OrgChoiceField, UserFilterForm, scoped_orgs
from accounts.identity.types import Actor
from accounts.models import Organization
from accounts.params import int_param


def _require(request, perm: str = "manage_users") -> Access:
    access = Access.of(request.user)
    if not access.has(perm):
        raise PermissionDenied
    return access


def _get_upload(request, pk) -> BulkUpload:
    access = _require(request)
    upload = get_object_or_404(BulkUpload.objects.select_related("created_by", "default_org"), pk=pk)
    if not may_view_upload(access, request.user, upload):
        raise Http404
    return upload


class UploadForm(forms.Form):
    """The upload dialog: file, operation, and the org new users go to when the file names none."""

    file = forms.FileField(label="File (CSV or TXT, UTF-8)")
    operation = forms.ChoiceField(choices=[(k, v["label"]) for k, v in OPERATIONS.items()], initial="upsert")
    org = OrgChoiceField(queryset=Organization.objects.none(), required=False,
                         label="Organization for new users", empty_label="None (every row names its org)",
                         help_text="Used when a row has no org column value.")

    def __init__(self, *args, access: Access, **kwargs):
        super().__init__(*args, **kwargs)
        # The org chooser is the tree, like the rest of the console ("— — Platform").
        self.fields["org"].queryset = scoped_orgs(access, "manage_users")


@login_required
def upload_start(request):
    """The upload dialog and the history of uploads."""
    access = _require(request)
    limit = conf.max_bytes()
    length = int_param(request.META.get("CONTENT_LENGTH"), max_digits=30) or 0
    if request.method == "POST" and length > limit + 65536:
        # Refuse before Django spools the body to disk.
        messages.error(request, f"The file is larger than {limit / 1048576:.0f} MB, the limit. Split it into "
                                "smaller files.")
        return redirect("bulk:start")
    form = UploadForm(request.POST or None, request.FILES or None, access=access)
    if request.method == "POST" and form.is_valid():
        file = form.cleaned_data["file"]
        upload, passwords = create_upload(
            file, file_name=file.name, size=file.size, operation=form.cleaned_data["operation"],
            default_org=form.cleaned_data["org"], user=request.user,
        )
        if passwords:
            dispatch_hashing(upload, passwords)
        del passwords
        return redirect("bulk:detail", pk=upload.pk)
    uploads = BulkUpload.objects.select_related("created_by")
    if not access.is_global("manage_users"):
        uploads = uploads.filter(created_by=request.user)
    return render(request, "bulk/start.html", {
        "form": form, "uploads": uploads[:20], "operations": OPERATIONS, "max_mb": limit // 1048576,
        "max_rows": conf.max_rows(),
    })


@login_required
def upload_detail(request, pk):
    """Preview (counts, errors, diffs, confirm), live progress, or the result with its report."""
    upload = _get_upload(request, pk)
    preview = upload.preview or {}
    show = conf.preview_show()
    errors = preview.get("errors", [])
    diffs = preview.get("diffs", [])
    invite_links, invited_count = [], 0
    if upload.status == BulkUpload.Status.DONE:
        invite_links = list(bulk_invite_links(upload, actor=Actor.for_user(request.user, request=request),
                                              base_url=request.build_absolute_uri("/"), limit=show))
        invited_count = len(invite_links) if len(invite_links) < show else sum(
            1 for _ in invitable_users(upload, admin=request.user))
    return render(request, "bulk/detail.html", {
        "upload": upload, "counts": preview.get("counts", {}), "errors": errors[:show], "errors_more": max(0, len(errors) - show),
        "diffs": diffs[:show], "diffs_more": max(0, len(diffs) - show), "delimiter_name": _delimiter_name(upload),
        "creates": preview.get("creates", [])[:show],
        "creates_more": max(0, preview.get("counts", {}).get("create", 0) - min(show, len(preview.get("creates", [])))),
        "operation_label": OPERATIONS.get(upload.operation, {}).get("label", upload.operation),
        "invite_links": invite_links, "invited_count": invited_count,
        "modes": BulkUpload.ApplyMode,
        # The apply's change journal (a provisioning run with the upload's id), once the apply started.
        "run": upload_run(upload) if upload.apply_started_at else None,
    })


def _delimiter_name(upload: BulkUpload) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}.get(upload.delimiter, upload.delimiter)


@login_required
@require_POST
def upload_confirm(request, pk):
    """Queue the apply in the background with the chosen mode, after re-checking it with the confirmer's rights."""
    upload = _get_upload(request, pk)
    mode = request.POST.get("mode", BulkUpload.ApplyMode.NO_ERRORS)
    if mode not in BulkUpload.ApplyMode.values:
        mode = BulkUpload.ApplyMode.NO_ERRORS
    if upload.status != BulkUpload.Status.PREVIEW:
        messages.error(request, "This upload was already applied or discarded.")
        return redirect("bulk:detail", pk=upload.pk)
    counts = upload.preview.get("counts", {})
    if mode == BulkUpload.ApplyMode.NO_ERRORS and counts.get("error"):
        messages.error(request, f"The file has {counts['error']} row(s) with errors. Fix them and upload again, "
                                "or choose \"apply all valid rows\".")
        return redirect("bulk:detail", pk=upload.pk)
    refused = confirm_upload(upload, user=request.user, mode=mode, request=request)
    if refused:
        shown = "; ".join(f"line {e.line}: {e.message}" for e in refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        messages.error(request, f"Nothing was applied: {len(refused)} row(s) that passed the preview are refused "
                                f"with your rights now — {shown}{more}. Ask an admin who may make these changes "
                                "to confirm, or upload a corrected file.")
    return redirect("bulk:detail", pk=upload.pk)


@login_required
@require_POST
def upload_cancel(request, pk):
    """Discard an upload that was not applied (its stored password hashes go with it)."""
    upload = _get_upload(request, pk)
    if upload.status == BulkUpload.Status.PREVIEW:
        upload.secrets.all().delete()
        BulkUpload.objects.filter(pk=upload.pk).update(status=BulkUpload.Status.CANCELLED)
        messages.info(request, "The upload was discarded; nothing was changed.")
    return redirect("bulk:start")


def progress_json(upload: BulkUpload) -> dict:
    """Progress for the console's poller: phase, done/total, percent, rate (rows/s), seconds left."""
    data = {
        "status": upload.status, "status_label": upload.get_status_display(),
        "hash_done": upload.hash_done, "hash_total": upload.hash_total,
        "rows_done": upload.rows_done, "rows_total": upload.rows_total,
        "finished": upload.status in (BulkUpload.Status.DONE, BulkUpload.Status.FAILED),
        "counts": {"created": upload.created_count, "updated": upload.updated_count,
                   "unchanged": upload.unchanged_count, "error": upload.error_count},
        "rate": None, "eta_seconds": None, "message": upload.message,
    }
    if upload.status == BulkUpload.Status.HASHING or (upload.status == BulkUpload.Status.QUEUED and upload.hash_total):
        done, total, since = upload.hash_done, upload.hash_total, upload.created_at
        data["phase"] = "Hashing passwords"
    else:
        done, total, since = upload.rows_done, upload.rows_total, upload.apply_started_at
        data["phase"] = "Applying rows"
    if data["finished"]:
        done = total
    data["done"], data["total"] = done, total
    data["percent"] = 100 if data["finished"] or not total else int(done * 100 / total)
    if since and done and not data["finished"]:
        elapsed = max((timezone.now() - since).total_seconds(), 0.001)
        rate = done / elapsed
        data["rate"] = round(rate, 1)
        data["eta_seconds"] = int((total - done) / rate) if rate else None
    return data


@login_required
def upload_status(request, pk):
    """JSON progress (polled every second by static/idm/bulk.js)."""
    return JsonResponse(progress_json(_get_upload(request, pk)))


@login_required
def upload_report(request, pk):
    """The result report CSV (after apply), or the preview as CSV (before)."""
    upload = _get_upload(request, pk)
    stem = upload.file_name.rsplit(".", 1)[0] or "upload"
    if upload.report:
        response = FileResponse(upload.report.open("rb"), content_type="text/csv; charset=utf-8",
                                as_attachment=True, filename=f"{stem}-result.csv")
        return response
    if not upload.source_file:
        raise Http404
    response = HttpResponse(preview_report_csv(upload), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{stem}-preview.csv"'
    return response


@login_required
def upload_template(request, operation):
    """An empty file with the operation's header line."""
    _require(request)
    if operation not in OPERATIONS:
        raise Http404
    response = HttpResponse(template_csv(operation), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="idm-users-{operation}-template.csv"'
    return response


@login_required
def users_export(request):
    """Stream the users the viewer may see in the upload format, with the users list's filters.

    The filters go through the list's own form, so the export holds exactly the users the list shows
    (org with sub-orgs, role, source, state, search) and bad values are ignored, never a 500.
    """
    access = _require(request, "view_directory")
    form = UserFilterForm(request.GET or None, access=access)
    response = StreamingHttpResponse(export_lines(viewer=request.user, **form.filters()),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="idm-users-{timezone.now():%Y%m%d-%H%M}.csv"'
    return response


@login_required
def invitations_csv(request, pk):
    """Invitation links of the users the upload invited whom the admin may change (username, email, link)."""
    upload = _get_upload(request, pk)
    links = bulk_invite_links(upload, actor=Actor.for_user(request.user, request=request),
                              base_url=request.build_absolute_uri("/"))
    rows = ((user.username, user.email, link) for user, link in links)
    response = StreamingHttpResponse(csv_lines(("username", "email", "link"), rows),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="invitations.csv"'
    return response


@login_required
@require_POST
def invitations_send(request, pk):
    """Email the links in the background (Django's email backend)."""
    upload = _get_upload(request, pk)
    bulk_send_invitations.delay(str(upload.pk), request.build_absolute_uri("/"), request.user.pk)
    messages.success(request, "Invitation emails are being sent to the invited users who have an email address.")
    return redirect("bulk:detail", pk=upload.pk)


def invite(request, uidb64, token):
    """Links of earlier versions: the credentials invitation page decides (its tokens carry the
    invitation's nonce and expiry), so old password-reset-token links no longer work."""
    return redirect("accounts:invitation_accept", uidb64=uidb64, token=token)
