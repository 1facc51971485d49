"""Settings from the environment: safe defaults, a kept secret key, a clean deploy check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(args, env_extra, tmp_path):
    dropped = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")  # browser tests set the last
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"IDM_VAR_DIR": str(tmp_path / "var")}, **env_extra)
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_secret_key_generated_once_and_kept_private(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = _manage(["shell", "-c", code], {}, tmp_path)
    second = _manage(["shell", "-c", code], {}, tmp_path)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert first.stdout.strip().splitlines()[-1] == second.stdout.strip().splitlines()[-1] == key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_secret_key_lost_race_reads_the_winners_key(tmp_path, monkeypatch):
    """Two processes start side by side on a fresh checkout (CI runs SQLite and PostgreSQL at once):
    both see no key file, the other one writes it first. The late one must use that key, whole, and
    not fail with FileExistsError (seen in CI on a clean clone) nor leave a temporary file behind."""
    from pathlib import Path

    from idm import env

    monkeypatch.setenv("IDM_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key_file = tmp_path / "var" / "secret_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("the-winners-key")
    real_exists = Path.exists
    # This process checked before the winner wrote: it saw no file.
    monkeypatch.setattr(Path, "exists", lambda self: False if self == key_file else real_exists(self))
    assert env.secret_key() == "the-winners-key"
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret_key"]


def test_debug_off_by_default_and_sqlite_default(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG, settings.DATABASES['default']['ENGINE'])"
    out = _manage(["shell", "-c", code], {}, tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "False django.db.backends.sqlite3"


def test_check_deploy_is_clean_when_configured_for_production(tmp_path):
    env = {
        "SECRET_KEY": "x" * 30 + "-production-secret-key-with-enough-entropy-0123456789",
        "IDM_BASE_URL": "https://idm.example.com",
        "ALLOWED_HOSTS": "idm.example.com",
        "IDM_HSTS_SECONDS": "31536000",
        "IDM_SSL_REDIRECT": "1",
    }
    out = _manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_check_deploy_warns_on_plain_http(tmp_path):
    out = _manage(["check", "--deploy"], {}, tmp_path)
    assert "idm.W001" in out.stdout + out.stderr
