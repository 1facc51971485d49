"""Run a real Celery worker process against real Redis, for tests that need one.

Two ways in:

* ``running_worker(env=...)``: a context manager that starts ``celery -A idm worker --pool solo -c 1`` in
  a subprocess with ``env`` on top of this process's environment, waits until it answers a control
  ping, yields a :class:`WorkerProcess`, and stops it by pid afterwards. It touches no database, so
  a test that only needs the broker (``tests/test_celery_worker.py``) uses it directly.
* the ``celery_worker_process`` fixture: the same worker, but pointed at the pytest-django *test*
  database through ``DATABASE_URL``, so tasks see rows the test wrote. Make it available with
  ``pytest_plugins = ["tests.celery_helpers"]`` in the top-level ``tests/conftest.py``, or import it
  into one test module (ruff then needs both noqa codes)::

      from tests.celery_helpers import celery_worker_process  # noqa: F401

      @pytest.mark.worker
      def test_sync_task_runs_in_worker(celery_worker_process):  # noqa: F811
          User.objects.create(username="alice")
          result = celery_worker_process.client.send_task("provisioning.tasks.ldap_sync_all")
          assert result.get(timeout=30) == ...

  The fixture requests ``transactional_db``: rows must be *committed* for another process to see
  them, which the ordinary ``db`` fixture (one rolled-back transaction per test) never does. It stops
  the worker before pytest-django flushes the tables. Define a fixture named ``celery_worker_env``
  returning a dict to pass more environment variables (for example ``{"IDM_LOG_LEVEL": "DEBUG"}``).

Which test database the worker sees:

* PostgreSQL (``DATABASE_URL=postgres://...``): pytest-django creates ``test_<name>``, e.g. ``test_idm``;
  ``connection.settings_dict["NAME"]`` holds it once the test database exists.
* SQLite: Django's test database is in memory unless ``DATABASES["default"]["TEST"]["NAME"]`` names a
  file, and a memory database is invisible to another process. ``idm/settings.py`` must therefore set
  a file name for tests (e.g. ``var/test.sqlite3``); the fixture fails with that hint otherwise.

Redis: ``IDM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/9``). That one database number is
flushed before each worker starts, so never point it at a database holding anything else.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/9"


def test_redis_url() -> str:
    """The Redis database reserved for tests (``IDM_TEST_REDIS_URL``)."""
    return os.environ.get("IDM_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


# Not a test, despite the name.
test_redis_url.__test__ = False  # type: ignore[attr-defined]


def flush_test_redis(url: str) -> None:
    """Empty the test Redis database, failing with a hint when Redis is not reachable."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}); start it or run scripts/test.sh, which does.")
    finally:
        client.close()


def client_app(url: str) -> Celery:
    """A Celery app that only *sends* tasks and reads results, on the broker the worker uses.

    A separate app, rather than reconfiguring ``idm.celery_app``, so no test leaks broker settings
    (or ``task_always_eager``) into the tests that run after it.
    """
    app = Celery(f"idm-test-client-{uuid.uuid4().hex[:8]}", set_as_current=False)
    app.conf.update(
        broker_url=url,
        result_backend=url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return app


@dataclass
class WorkerProcess:
    """A running worker: its process, node name, log file and a client app for the same broker."""

    process: subprocess.Popen
    hostname: str
    log_path: Path
    client: Celery

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the worker has written to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace")


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop the worker by its pid: SIGTERM (warm shutdown), then SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _wait_ready(worker: WorkerProcess, timeout: float) -> None:
    """Block until the worker answers a control ping; fail with its log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"Celery worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
        replies = worker.client.control.ping(destination=[worker.hostname], timeout=1.0)
        if replies:
            return
    pytest.fail(f"Celery worker did not answer within {timeout:.0f}s:\n{worker.log()[-4000:]}")


@contextlib.contextmanager
def running_worker(
    *, env: dict[str, str] | None = None, redis_url: str | None = None, ready_timeout: float = 60
) -> Iterator[WorkerProcess]:
    """Start ``celery -A idm worker --pool solo -c 1`` on ``redis_url`` and stop it (by pid) on exit.

    ``env`` is laid over this process's environment; ``REDIS_URL`` defaults to ``redis_url`` so the
    worker's broker and result backend are the test Redis database. The caller flushes Redis.
    """
    url = redis_url or test_redis_url()
    hostname = f"idm-test-{uuid.uuid4().hex[:10]}@localhost"
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "idm.settings"),
        "REDIS_URL": url,
        **(env or {}),
    }
    # The worker must really consume from the broker, whatever the test process's settings say.
    child_env.pop("IDM_CELERY_EAGER", None)
    command = [
        sys.executable, "-m", "celery", "-A", "idm", "worker",
        "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
        "--hostname", hostname, "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    log_file = tempfile.NamedTemporaryFile(prefix="idm-celery-worker-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    process = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    worker = WorkerProcess(process=process, hostname=hostname, log_path=log_path, client=client_app(url))
    try:
        _wait_ready(worker, ready_timeout)
        yield worker
    finally:
        _stop(process)
        worker.client.close()
        log_path.unlink(missing_ok=True)


def test_database_url() -> str:
    """``DATABASE_URL`` for the pytest-django test database (call once the test database exists)."""
    from django.db import connection

    settings_dict = connection.settings_dict
    name = str(settings_dict["NAME"])
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            pytest.fail(
                "The SQLite test database is in memory, which a worker process cannot see: set "
                "DATABASES['default']['TEST'] = {'NAME': str(VAR_DIR / 'test.sqlite3')} in idm/settings.py."
            )
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{quote(name, safe='')}"
    pytest.fail(f"celery_worker_process does not know how to share a {connection.vendor} test database")


test_database_url.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def celery_worker_process(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[WorkerProcess]:
    """A real worker on the test Redis database and the pytest-django test database (committed rows).

    A fixture named ``celery_worker_env`` (in the test module or a conftest), when there is one,
    adds environment variables for the worker.
    """
    try:
        extra_env = request.getfixturevalue("celery_worker_env")
    except pytest.FixtureLookupError:
        extra_env = {}
    url = test_redis_url()
    flush_test_redis(url)
    env = {"REDIS_URL": url, "DATABASE_URL": test_database_url(), **extra_env}
    with running_worker(env=env, redis_url=url) as worker:
        yield worker


@contextlib.contextmanager
def running_beat(*, env: dict[str, str] | None = None, redis_url: str | None = None) -> Iterator[subprocess.Popen]:
    """Start ``celery -A idm beat`` with a throw-away schedule file on ``redis_url``; stop it by pid.

    Beat only publishes due tasks; pair it with ``running_worker`` on the same Redis database.
    Shorten a schedule through its setting's environment variable in ``env``.
    """
    url = redis_url or test_redis_url()
    workdir = Path(tempfile.mkdtemp(prefix="idm-celery-beat-"))
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "idm.settings"),
        "REDIS_URL": url,
        **(env or {}),
    }
    child_env.pop("IDM_CELERY_EAGER", None)
    log_path = workdir / "beat.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "idm", "beat", "--loglevel", "INFO",
             "--schedule", str(workdir / "schedule"), "--pidfile", ""],
            cwd=BASE_DIR, env=child_env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        _stop(process)
        for path in workdir.iterdir():
            path.unlink(missing_ok=True)
        workdir.rmdir()
