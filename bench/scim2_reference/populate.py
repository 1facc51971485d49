"""Create the reference database's schema and ``--rows`` users like bench/scim.py's; print a
session cookie value for the load generator (Django session authentication, the library's default).

    SCIM2_REFERENCE_DATABASE_URL=postgres://…/idm_bench_…_scim2 python bench/scim2_reference/populate.py --rows N
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "scim2_reference.settings"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args()
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connection

    from scim2_reference.models import User

    unusable = make_password(None)  # no one signs in with these users
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    for offset in range(0, args.rows, 5000):
        User.objects.bulk_create([
            User(username=f"user{n}@bench.test", scim_username=f"user{n}@bench.test", scim_id=str(n + 1),
                 first_name="Bench", last_name=f"U{n}", email=f"user{n}@bench.test", password=unusable)
            for n in range(offset, min(args.rows, offset + 5000))])
    admin = User.objects.create(username="bench-admin", scim_id="admin", password=unusable)
    session = SessionStore()
    session.update({SESSION_KEY: str(admin.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: admin.get_session_auth_hash()})
    session.create()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    print(session.session_key)


if __name__ == "__main__":
    main()
