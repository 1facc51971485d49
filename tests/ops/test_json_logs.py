"""IDM_LOG_FORMAT=json: one JSON object per line with the request id (and job id in tasks), secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import Client

from accounts.logging import RedactSecretsFilter
from ops import logcontext
from ops.logformat import JsonFormatter
from tests.celery_helpers import BASE_DIR


def _handler_output(records_logger: str, emit) -> list[dict]:
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(records_logger)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_record_is_one_json_object_with_context_and_redaction():
    token = logcontext.bind(request_id="req42", job_id="job7")
    try:
        lines = _handler_output("idm.test", lambda lg: lg.warning("user %s password=%s", "bob", "S3cret!"))
    finally:
        logcontext.reset(token)
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "WARNING" and line["logger"] == "idm.test"
    assert line["request_id"] == "req42" and line["job_id"] == "job7"
    assert "S3cret!" not in line["message"] and "bob" in line["message"]


def test_exception_text_is_redacted():
    def emit(lg):
        try:
            raise ValueError("token=abcdef123")
        except ValueError:
            lg.exception("failed")

    line = _handler_output("idm.test", emit)[0]
    assert "ValueError" in line["exc"] and "abcdef123" not in line["exc"]


@pytest.mark.django_db
def test_request_log_lines_carry_the_request_id():
    seen = []

    def emit(lg):
        response = Client().get("/no-such-page/", HTTP_X_REQUEST_ID="abc123def")
        seen.append(response["X-Request-ID"])

    lines = _handler_output("django.request", emit)
    assert seen == ["abc123def"]
    assert any(line["request_id"] == "abc123def" and "Not Found" in line["message"] for line in lines), lines


def test_settings_switch_to_json_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(IDM_LOG_FORMAT="json", IDM_VAR_DIR=str(tmp_path))
    code = "import logging; logging.getLogger('idm.x').warning('hello secret=zzz')"
    out = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", code], env=env,
                         cwd=BASE_DIR, capture_output=True, text=True, timeout=60)
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert line["logger"] == "idm.x" and line["message"] == "hello secret=[redacted]"
