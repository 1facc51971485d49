"""With a real Celery worker on Redis: /readyz sees it (and its absence), and task runs are recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ops.models import JobRun
from tests.celery_helpers import BASE_DIR, celery_worker_process, test_redis_url  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHECK = "import json; from ops.health import check_worker; c = check_worker(); print(json.dumps(c.as_dict()))"


def worker_check_from_another_process() -> dict:
    """Run ``check_worker`` in a fresh process configured for the test Redis, as a web server would."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(REDIS_URL=test_redis_url(), IDM_READYZ_WORKER_TIMEOUT="1.5")
    out = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", CHECK], env=env,
                         cwd=BASE_DIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_readyz_sees_a_running_worker_then_reports_it_stopped(celery_worker_process):  # noqa: F811
    assert worker_check_from_another_process() == {"status": "ok", "workers": 1}
    result = celery_worker_process.client.send_task("idm.ping")
    assert result.get(timeout=30) == "pong"
    # The result is stored before task_postrun runs: wait for the row to say how the run ended.
    deadline = time.monotonic() + 15
    while (run := JobRun.objects.get(task="idm.ping")).status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.status == "ok" and run.last_success_at is not None and run.duration_seconds is not None
    celery_worker_process.process.terminate()
    celery_worker_process.process.wait(timeout=30)
    assert worker_check_from_another_process() == {"status": "fail", "workers": 0, "error": "no worker answered"}
