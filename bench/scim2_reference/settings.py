"""Settings of the django-scim2 reference server (bench only; see the package docstring)."""

import os

import dj_database_url

SECRET_KEY = "bench-only-not-a-secret"  # noqa: S105 - a throwaway server on loopback
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django_scim",
    "scim2_reference",
]
# django-scim2's README: its auth check goes after the middleware that logs the user in.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_scim.middleware.SCIMAuthCheckMiddleware",
]
ROOT_URLCONF = "scim2_reference.urls"
AUTH_USER_MODEL = "scim2_reference.User"
DATABASES = {"default": dj_database_url.parse(os.environ["SCIM2_REFERENCE_DATABASE_URL"], conn_max_age=60)}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "AUTHENTICATION_SCHEMES": [{"type": "oauth2", "name": "Session", "description": "Django session"}],
}
