"""Prometheus metrics: the counters idm exports at /metrics, and one place to add more.

Other apps add a metric with :func:`counter` / :func:`histogram` (idempotent: importing a module twice,
or two apps asking for the same name, returns the same object), for example in SCIM::

    from ops.metrics import counter
    SCIM_REQUESTS = counter("idm_scim_requests_total", "SCIM requests", ["resource", "method", "status"])
    SCIM_REQUESTS.labels(resource="Users", method="POST", status="201").inc()

Labels must stay low-cardinality (a view name, a result code), never a username or an address.
Several gunicorn or Celery processes on one host: set ``PROMETHEUS_MULTIPROC_DIR`` (``scripts/run.sh``
uses ``var/prometheus``) so /metrics adds up every process, Celery's included.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

_lock = threading.Lock()
_metrics: dict[str, Counter | Histogram] = {}


def counter(name: str, documentation: str, labels: list[str] | tuple[str, ...] = ()) -> Counter:
    """The counter ``name`` (created on first use)."""
    with _lock:
        if name not in _metrics:
            _metrics[name] = Counter(name, documentation, list(labels))
        return _metrics[name]  # type: ignore[return-value]


def histogram(name: str, documentation: str, labels: list[str] | tuple[str, ...] = (),
              buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS) -> Histogram:
    """The histogram ``name`` (created on first use)."""
    with _lock:
        if name not in _metrics:
            _metrics[name] = Histogram(name, documentation, list(labels), buckets=buckets)
        return _metrics[name]  # type: ignore[return-value]


REQUESTS = counter("idm_http_requests_total", "HTTP requests by view and status", ["view", "method", "status"])
SIGN_INS = counter("idm_sign_ins_total", "Sign-in attempts by method and result", ["method", "result"])
SIGN_IN_THROTTLED = counter("idm_sign_ins_throttled_total", "Sign-ins refused by the throttle")
SAML_FAILURES = counter("idm_saml_failures_total", "Refused SAML sign-ins by reason", ["reason"])
UPLOAD_ROWS = counter("idm_upload_rows_total", "Bulk upload rows by result", ["result"])
TASK_DURATION = histogram("idm_celery_task_duration_seconds", "Celery task run time", ["task"],
                          buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
TASK_FAILURES = counter("idm_celery_task_failures_total", "Celery tasks that raised", ["task"])
# For provisioning (SCIM, directory sync) to fill in; exported from the start so dashboards can exist.
SCIM_REQUESTS = counter("idm_scim_requests_total", "SCIM requests", ["resource", "method", "status"])
SYNC_CHANGES = counter("idm_directory_sync_changes_total", "Directory sync changes", ["source", "result"])


def exposition() -> bytes:
    """The text exposition of every metric (all processes of this host in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
