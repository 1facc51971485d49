"""SCIM 2.0 endpoints at /scim/v2/ (RFC 7644): thin views over ``provisioning.scim.service``.

Every response, errors included, is ``application/scim+json``; every failure is a SCIM error
document (never a 500 page: an unexpected exception is logged and answered as a generic 500
document without its text). Authentication is a provider's bearer token
(``provisioning.scim.providers.authenticate``) or, when enabled for it, its HTTP basic credential
(``authenticate_basic``); a provider sees only its own resources.
Why these are idm's own views and not django-scim2's: see docs/scim.md.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.exceptions import IdentityError
from provisioning.scim import discovery, providers, service
from provisioning.scim import resources as res
from provisioning.scim.errors import ScimError, error_response, scim_response
from provisioning.scim.filters import compile_filter
from provisioning.scim.models import ScimRequest, ScimResource

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = getattr(settings, "IDM_SCIM_MAX_BODY_BYTES", 1_048_576)
MAX_RESULTS = discovery.MAX_RESULTS
MAX_JSON_DEPTH = 64
MAX_START_INDEX = 2**31 - 1  # past any real list; keeps OFFSET inside PostgreSQL's bigint
USER, GROUP = ScimResource.Kind.USER, ScimResource.Kind.GROUP


def _bearer(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# Both schemes a provider may use (RFC 7235 §4.1: one header, comma-separated challenges).
CHALLENGE = 'Bearer realm="idm SCIM", Basic realm="idm SCIM", charset="UTF-8"'


def _provider(request: HttpRequest):
    """The provider the request's credentials belong to (bearer token, or HTTP basic when the
    provider has it enabled), or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return providers.authenticate(_bearer(request))
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    client = getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR", "")
    return providers.authenticate_basic(username, password, client=str(client))


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past ``limit``."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def read_json(request: HttpRequest) -> Any:
    """The request body as JSON, or ``invalidSyntax``; over ``MAX_BODY_BYTES`` is 413; a string the
    database cannot store (NUL, lone surrogate) is ``invalidValue`` naming its attribute."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        raise ScimError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ScimError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ScimError(400, "The request body is not valid JSON.", "invalidSyntax") from None
    if _depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ScimError(400, "The request body is nested too deeply.", "invalidSyntax")
    res.check_storable(body)
    return body


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/scim/v2").rstrip("/")


def _check_version(request: HttpRequest, resource: ScimResource) -> None:
    """If-Match (RFC 7644 §3.14): a stale version is 412."""
    versions = _if_match_versions(request)
    if versions is not None and resource.version not in versions:
        raise ScimError(412, "The resource changed since the version given in If-Match.")


def _if_match_versions(request: HttpRequest) -> frozenset[int] | None:
    """The versions If-Match accepts (``W/"3"`` or ``"3"``); None when any will do (absent or ``*``)."""
    wanted = request.META.get("HTTP_IF_MATCH")
    if wanted is None:
        return None
    tags = {t.strip() for t in wanted.split(",")}
    if "*" in tags:
        return None
    numbers = (tag.removeprefix("W/").strip('"') for tag in tags)
    return frozenset(int(n) for n in numbers if n.isdigit() and len(n) < 10)


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ScimError(400, f"{name} must be an integer.", "invalidValue") from None


# --- lists ----------------------------------------------------------------------------------------


def _list(request: HttpRequest, kind: str, params: dict) -> HttpResponse:
    source = request.scim_source
    compiler = res.USER_FILTERS if kind == USER else res.GROUP_FILTERS
    queryset = res.live(source, kind)
    text = params.get("filter")
    if text:
        compiled = compile_filter(text, compiler)
        queryset = queryset.filter(compiled.q)
        if compiled.distinct:
            queryset = queryset.distinct()
    ordering = res.sort_order(kind, params.get("sortBy"), params.get("sortOrder"))
    if ordering:
        queryset = queryset.order_by(*ordering)
    start = min(max(1, params["startIndex"]), MAX_START_INDEX)
    count = min(max(0, params["count"]), MAX_RESULTS)
    related = "user" if kind == USER else "group"
    if not count:
        page = []
    elif start == 1:
        page = list(queryset.select_related(related)[:count])
    else:
        # Deep pages: skip rows on the (source, kind, id) index alone, then join only the page's rows.
        ids = list(queryset.values_list("pk", flat=True)[start - 1:start - 1 + count])
        rows = {r.pk: r for r in ScimResource.objects.filter(pk__in=ids).select_related(related)}
        page = [rows[pk] for pk in ids if pk in rows]
    # A first page that is not full holds every match (the usual "filter=userName eq" lookup): no COUNT.
    total = len(page) if start == 1 and 0 < count and len(page) < count else queryset.count()
    base = _base(request)
    attributes, excluded = params.get("attributes"), params.get("excludedAttributes")
    documents = []
    for resource in page:
        if kind == USER:
            doc = res.user_document(resource, base)
        else:
            members = None if res.excludes_members(attributes, excluded) else service.group_members(resource)
            doc = res.group_document(resource, base, members)
        documents.append(res.project(doc, attributes=attributes, excluded=excluded))
    return scim_response({"schemas": [res.LIST_RESPONSE], "totalResults": total, "startIndex": start,
                          "itemsPerPage": len(documents), "Resources": documents})


def _query_params(request: HttpRequest) -> dict:
    return {"filter": request.GET.get("filter"), "startIndex": _int_param(request, "startIndex", 1),
            "count": _int_param(request, "count", MAX_RESULTS), "attributes": request.GET.get("attributes"),
            "excludedAttributes": request.GET.get("excludedAttributes"), "sortBy": request.GET.get("sortBy"),
            "sortOrder": request.GET.get("sortOrder")}


def _search_params(body: Any) -> dict:
    """POST /.search body (RFC 7644 §3.4.3) as the same parameters a GET has."""
    if not isinstance(body, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    keyed = {str(k).lower(): v for k, v in body.items()}

    def number(name: str, default: int) -> int:
        value = keyed.get(name.lower(), default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScimError(400, f"{name} must be an integer.", "invalidValue")
        return value

    def text(name: str) -> str | None:
        value = keyed.get(name.lower())
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if value is not None and not isinstance(value, str):
            raise ScimError(400, f"{name} must be a string.", "invalidValue")
        return value

    return {"filter": text("filter"), "startIndex": number("startIndex", 1), "count": number("count", MAX_RESULTS),
            "attributes": text("attributes"), "excludedAttributes": text("excludedAttributes"),
            "sortBy": text("sortBy"), "sortOrder": text("sortOrder")}


# --- one resource ---------------------------------------------------------------------------------


def _one(request: HttpRequest, kind: str, resource: ScimResource, status: int = 200) -> HttpResponse:
    base = _base(request)
    attributes, excluded = request.GET.get("attributes"), request.GET.get("excludedAttributes")
    if kind == USER:
        doc = res.user_document(resource, base)
    else:
        resource.refresh_from_db()
        resource.group.refresh_from_db()
        members = None if res.excludes_members(attributes, excluded) else service.group_members(resource)
        doc = res.group_document(resource, base, members)
    headers = {"ETag": res.version_tag(resource)}
    if status == 201:
        headers["Location"] = doc["meta"]["location"]
    return scim_response(res.project(doc, attributes=attributes, excluded=excluded), status=status, headers=headers)


def _collection(kind: str) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        if request.method == "GET":
            return _list(request, kind, _query_params(request))
        if request.method == "POST":
            body = read_json(request)
            create = service.user_create if kind == USER else service.group_create
            resource = create(source=request.scim_source, body=body, request_id=request.request_id)
            return _one(request, kind, resource, status=201)
        raise ScimError(405, f"{request.method} is not allowed on /{kind}s.")

    return view


def _member(kind: str) -> Callable[..., HttpResponse]:
    def view(request: HttpRequest, scim_id: str) -> HttpResponse:
        source = request.scim_source
        if request.method == "GET":
            return _one(request, kind, res.by_id(source, kind, scim_id))
        if request.method not in ("PUT", "PATCH", "DELETE"):
            raise ScimError(405, f"{request.method} is not allowed on a {kind}.")
        body = read_json(request) if request.method != "DELETE" else None
        rid = request.request_id
        delta = service.member_delta(body) if kind == GROUP and request.method == "PATCH" else None
        if delta is not None:
            return _members_patch(request, source, scim_id, *delta)
        with transaction.atomic():
            resource = res.by_id(source, kind, scim_id, lock=True)
            _check_version(request, resource)
            if request.method == "DELETE":
                delete = service.user_delete if kind == USER else service.group_delete
                delete(source=source, resource=resource, request_id=rid)
                return scim_response(None, status=204)
            if request.method == "PUT":
                replace = service.user_replace if kind == USER else service.group_replace
                resource = replace(source=source, resource=resource, body=body, request_id=rid)
            else:
                patch = service.user_patch if kind == USER else service.group_patch
                resource = patch(source=source, resource=resource, body=body, base=_base(request), request_id=rid)
                if kind == GROUP and not _asks_for_attributes(request):
                    # RFC 7644 §3.5.2 allows 204; Okta and Entra expect it, and it spares listing 20k members.
                    return scim_response(None, status=204, headers={"ETag": res.version_tag(resource)})
            return _one(request, kind, resource)

    return view


def _members_patch(request: HttpRequest, source, scim_id: str, add: list[str], remove: list[str]) -> HttpResponse:
    """A group PATCH of member adds and removes only: the row lock comes last
    (``service.group_members_patch``)."""
    with transaction.atomic():
        resource = service.group_members_patch(source=source, resource=res.by_id(source, GROUP, scim_id), add=add,
                                               remove=remove, versions=_if_match_versions(request),
                                               request_id=request.request_id)
        if not _asks_for_attributes(request):
            return scim_response(None, status=204, headers={"ETag": res.version_tag(resource)})
        return _one(request, GROUP, resource)


def _asks_for_attributes(request: HttpRequest) -> bool:
    return bool(request.GET.get("attributes") or request.GET.get("excludedAttributes"))


def _search(kind: str | None) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            raise ScimError(405, "Searches are POSTed.")
        params = _search_params(read_json(request))
        if kind is None:  # the root .search: idm answers it for Users (the only searched type)
            return _list(request, USER, params)
        return _list(request, kind, params)

    return view


# --- the wrapper every endpoint goes through -------------------------------------------------------


# PostgreSQL's deadlock_detected and serialization_failure: the database rolled the transaction back
# and says trying again may work. Two writes locking the same group and user in opposite orders (a
# group PUT and a member PATCH) can meet this way; the client should see neither a 500 nor a failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
TRANSIENT_ATTEMPTS = 3


def _is_transient(error: OperationalError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


def _retrying_transient(func: Callable[..., HttpResponse], request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """``func``'s response, tried again (up to ``TRANSIENT_ATTEMPTS`` in all) when the database aborted
    its transaction as a deadlock victim or a serialization failure; then a 503 with Retry-After,
    which identity providers retry. Each SCIM write is one transaction, so a retry repeats it whole;
    inside a caller's transaction nothing is retried (its work is gone with the error)."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return func(request, *args, **kwargs)
        except OperationalError as error:
            if not _is_transient(error) or connection.in_atomic_block:
                raise
            logger.warning("SCIM request met a transient database conflict (attempt %d of %d): %s",
                           attempt, TRANSIENT_ATTEMPTS, getattr(error.__cause__, "sqlstate", ""))
            time.sleep(0.01 * attempt)
    raise ScimError(503, "The request met a concurrent change; try again.", headers={"Retry-After": "1"})


def scim_endpoint(func: Callable[..., HttpResponse], *, public: bool = False) -> Callable[..., HttpResponse]:
    """Authenticate, turn every error into a SCIM error document, and log the request."""

    @csrf_exempt
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        started = time.monotonic()
        request.scim_source = _provider(request)
        if not hasattr(request, "request_id"):
            request.request_id = ""
        if request.scim_source is None and not public:
            # Unauthenticated requests are not logged: anyone could fill the log.
            return error_response(ScimError(401, "A valid bearer token (or HTTP basic credential) is required.",
                                            headers={"WWW-Authenticate": CHALLENGE}))
        scim_type = ""
        try:
            response = _retrying_transient(func, request, *args, **kwargs)
        except ScimError as error:
            response, scim_type = error_response(error), error.scim_type
        except IdentityError as error:
            converted = ScimError.from_identity(error)
            response, scim_type = error_response(converted), converted.scim_type
        except IntegrityError:
            # A concurrent write won the race (same userName, same external id): a conflict, without
            # the database's text.
            response, scim_type = error_response(ScimError(409, "The resource conflicts with one created at "
                                                                "the same time.", "uniqueness")), "uniqueness"
        except Exception:  # never a Django error page: log it, answer a SCIM 500 without details
            logger.exception("SCIM request failed")
            response = error_response(ScimError(500, "The request could not be completed."))
        if request.scim_source is not None:
            _log_request(request, response.status_code, scim_type, started)
        return response

    return view


def _log_request(request: HttpRequest, status: int, scim_type: str, started: float) -> None:
    """One ``ScimRequest`` row, committed without waiting for the WAL flush on PostgreSQL.

    The request log is troubleshooting data: losing its last rows in a database crash is acceptable,
    while waiting for a durable commit (an fsync, several ms on a busy disk) made it the dearest part
    of a filter-eq GET, which writes nothing else (issue 9). The request's own writes were committed
    durably before this. ``SET LOCAL`` and the INSERT go as one multi-statement query, which
    PostgreSQL runs as one implicit transaction: one round trip, and the setting ends with it.
    """
    from accounts.logging import redact_query  # a password or token a client put in the URL is not kept

    row = ScimRequest(source=request.scim_source, method=request.method[:10],
                      path=redact_query(request.get_full_path())[:500],
                      status=status, scim_type=scim_type[:32], request_id=request.request_id[:64],
                      duration_ms=int((time.monotonic() - started) * 1000))
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        row.save()  # never relax an enclosing transaction's commit
        return
    fields = [f for f in ScimRequest._meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    # Only the model's own table and column names are pasted in; every value is a bound parameter.
    sql = (f"SET LOCAL synchronous_commit TO OFF; INSERT INTO {quote(ScimRequest._meta.db_table)} "  # noqa: S608
           f"({', '.join(quote(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))})")
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


users = scim_endpoint(_collection(USER))
user = scim_endpoint(_member(USER))
groups = scim_endpoint(_collection(GROUP))
group = scim_endpoint(_member(GROUP))
users_search = scim_endpoint(_search(USER))
groups_search = scim_endpoint(_search(GROUP))
root_search = scim_endpoint(_search(None))


def unknown(request: HttpRequest) -> HttpResponse:
    """Any other path under /scim/v2/: a SCIM 404 document."""
    raise ScimError(404, "No such SCIM endpoint.")
