"""A real Celery worker process takes a task from real Redis and returns its result."""

import pytest

from tests.celery_helpers import flush_test_redis, running_worker, test_redis_url


@pytest.mark.worker
def test_worker_runs_ping_task_through_redis():
    url = test_redis_url()
    flush_test_redis(url)

    with running_worker(env={"REDIS_URL": url}, redis_url=url) as worker:
        result = worker.client.send_task("idm.ping")

        assert result.get(timeout=30) == "pong"
        assert worker.process.poll() is None, "the worker stopped while running the task"

    assert worker.process.returncode is not None, "the worker is still running after the test"
