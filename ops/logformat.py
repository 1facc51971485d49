"""JSON log lines (``IDM_LOG_FORMAT=json``): one object per record with the request and job id.

The redaction filter (``accounts.logging.RedactSecretsFilter``) runs before this formatter on the
handler, so the message is already cleaned; exceptions are formatted then redacted too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from accounts.logging import redact
from ops import logcontext


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, request_id, job_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(logcontext.current())
        # django.request logs the response after the middleware chain has returned: take the id from
        # the request it passes along.
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        if request_id:
            data["request_id"] = request_id
        for key in ("request_id", "job_id", "status_code"):
            value = getattr(record, key, None)
            if value:
                data[key] = value
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)
