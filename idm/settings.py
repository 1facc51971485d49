"""Django settings for idm.

Everything configurable comes from the environment (see docs/configuration.md); each variable is
read once in this module through ``idm.env`` and has a safe default, so a fresh checkout runs on an
embedded SQLite database with no other server.
"""

from __future__ import annotations

from urllib.parse import urlparse

import dj_database_url

from idm.env import BASE_DIR, env_bool, env_int, env_list, env_str, secret_key, var_dir

VAR_DIR = var_dir()

SECRET_KEY = secret_key()
DEBUG = env_bool("IDM_DEBUG", False)

IDM_BASE_URL = env_str("IDM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_base = urlparse(IDM_BASE_URL)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [_base.hostname or "127.0.0.1", "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [f"{_base.scheme}://{_base.netloc}"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djangosaml2",
    "django_scim",
    "accounts",
    "sso",
    "provisioning",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.sessions.UserSessionMiddleware",  # ended sessions stay ended (issue 7 §5)
    "accounts.middleware.RequestContextMiddleware",
    "accounts.middleware.NoStoreWhenSignedInMiddleware",
    "accounts.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.credentials.middleware.RequiredActionsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ops.middleware.SecurityHeadersMiddleware",
    "ops.middleware.RequestObservabilityMiddleware",
]

ROOT_URLCONF = "idm.urls"
WSGI_APPLICATION = "idm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.console",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://idm@127.0.0.1:5432/idm; default: an SQLite file in var/.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'idm.sqlite3'}"),
        conn_max_age=env_int("IDM_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the Celery worker and beat share one file; IMMEDIATE transactions
    # take the write lock up front instead of failing with "database is locked" on upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, for the test database: Celery worker processes started by tests
    # (and the live server) must see the same data. IDM_TEST_SQLITE lets parallel runs differ.
    DATABASES["default"]["TEST"] = {"NAME": env_str("IDM_TEST_SQLITE", str(VAR_DIR / "test.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis when configured; shared across workers, e.g. for SAML replay protection) -----
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "idm_cache",
        }
    }

# --- Authentication -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "accounts.backends.ConsoleModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Password rules from the product description (code42-features.md §1.3), as Django validators.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.password_validation.CharacterClassValidator"},
    {"NAME": "accounts.password_validation.NoWhitespaceValidator"},
    {"NAME": "accounts.password_validation.RepeatedCharacterValidator", "OPTIONS": {"max_repeat": 2}},
    {"NAME": "accounts.password_validation.CommonWordValidator"},
    {"NAME": "accounts.password_validation.PasswordHistoryValidator", "OPTIONS": {"history": 5}},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("IDM_SESSION_AGE", 8 * 3600)
CSRF_COOKIE_HTTPONLY = True
_secure = _base.scheme == "https"
SESSION_COOKIE_SECURE = env_bool("IDM_SECURE_COOKIES", _secure)
CSRF_COOKIE_SECURE = env_bool("IDM_SECURE_COOKIES", _secure)
SECURE_SSL_REDIRECT = env_bool("IDM_SSL_REDIRECT", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("IDM_BEHIND_PROXY") else None
# Proxies in front of idm that append to X-Forwarded-For; 0 = the header is ignored (accounts/client_ip.py).
IDM_TRUSTED_PROXIES = env_int("IDM_TRUSTED_PROXIES", 0)
# HSTS (sent by SecurityMiddleware on HTTPS requests only): a year by default when the base URL is https.
SECURE_HSTS_SECONDS = env_int("IDM_HSTS_SECONDS", 31_536_000 if _secure else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("IDM_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_str("IDM_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(VAR_DIR / "media")}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Email (invitations, password reset) ----------------------------------------------------
# With no mail server (IDM_EMAIL_HOST unset) mail is kept in the console's Outbox (ops.mail) instead.
EMAIL_HOST = env_str("IDM_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("IDM_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("IDM_EMAIL_USER")
EMAIL_HOST_PASSWORD = env_str("IDM_EMAIL_PASSWORD")
EMAIL_USE_TLS = env_bool("IDM_EMAIL_TLS", True)
EMAIL_TIMEOUT = 20
EMAIL_BACKEND = env_str("IDM_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"
                        if env_str("IDM_EMAIL_HOST") else "ops.mail.OutboxEmailBackend")
DEFAULT_FROM_EMAIL = env_str("IDM_FROM_EMAIL", "idm@localhost")

# --- Celery ---------------------------------------------------------------------------------
# Redis when REDIS_URL is set; otherwise kombu's filesystem transport in var/, so the embedded
# default needs no broker server.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    _broker = VAR_DIR / "celery"
    for _sub in ("in", "processed", "results", "control"):
        (_broker / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "in"),
        "data_folder_out": str(_broker / "in"),
        "processed_folder": str(_broker / "processed"),
        "store_processed": False,
        "control_folder": str(_broker / "control"),  # default is ./control in the working directory
    }
    CELERY_RESULT_BACKEND = f"file://{_broker / 'results'}"
CELERY_TASK_ALWAYS_EAGER = env_bool("IDM_CELERY_EAGER", False)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "bulk-upload-expire-previews": {"task": "accounts.bulk_upload.expire_previews", "schedule": 3600},
    # Database caches never drop expired rows by themselves (accounts/cache_expiry.py).
    "accounts-expire-cache-rows": {"task": "accounts.expire_cache_rows", "schedule": 3600},
}

# --- Logging: never log secrets (passwords, tokens, SAML messages are not logged) ------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "accounts.logging.RedactSecretsFilter"},
                "one_line_403": {"()": "accounts.logging.OneLineForbiddenFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                   "json": {"()": "ops.logformat.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["one_line_403", "redact"],
                             "formatter": "json" if env_str("IDM_LOG_FORMAT") == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": env_str("IDM_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "saml2": {"level": "WARNING"}, "xmlschema": {"level": "WARNING"}},
}

# Celery keeps the handlers above (JSON lines included) instead of installing its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- idm --------------------------------------------------------------------------------------
# Application settings with defaults live in accounts/app_settings.py (IDM_* names).
IDM_BULK_BATCH_SIZE = env_int("IDM_BULK_BATCH_SIZE", 2000)

# --- SCIM (django-scim2); completed by provisioning ------------------------------------------
SCIM_SERVICE_PROVIDER = {
    "NETLOC": _base.netloc or "127.0.0.1:8000",
    "AUTHENTICATION_SCHEMES": [
        {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": "Bearer token per provider"}
    ],
}

# --- SSO (sso app) ----------------------------------------------------------------------------
# SAML 2.0 sign-in through djangosaml2, configured per request from the database (docs/sso.md).
# Password sign-in refuses users of SSO orgs (break-glass users excepted): IdmModelBackend replaces
# ConsoleModelBackend (same behaviour otherwise).
AUTHENTICATION_BACKENDS = [
    "sso.backends.IdmModelBackend" if b == "accounts.backends.ConsoleModelBackend" else b
    for b in AUTHENTICATION_BACKENDS
]
# Directory password sign-in (issue 10): django-auth-ldap's backend, configured per directory from the
# database (provisioning.ldap.backends; docs/directory-sync.md). It answers only for users a directory
# with "password sign-in" owns, so local users keep the model backend's answer. No AUTH_LDAP_* settings.
AUTHENTICATION_BACKENDS += ["provisioning.ldap.backends.IdmLDAPBackend", "sso.backends.IdmSaml2Backend"]
SAML_CONFIG_LOADER = "sso.config.config_loader"
SAML_CREATE_UNKNOWN_USER = False  # JIT creation is per provider, through the identity service
SAML_ATTRIBUTE_MAPPING: dict = {}  # per provider (sso.attributes); djangosaml2 never writes user fields
SAML_USE_NAME_ID_AS_USERNAME = True
SAML_IGNORE_LOGOUT_ERRORS = True  # a failed SLO round trip still ends the local session
SAML_LOGOUT_REQUEST_PREFERRED_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SAML_CSP_HANDLER = ""  # no django-csp; the POST-binding page sets no CSP of its own
SAML_DEFAULT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SAML_SESSION_COOKIE_NAME = "idm_saml"  # unused: our views use the ordinary session (sso/views.py)
SAML_ALLOWED_HOSTS: list[str] = []  # only local paths after sign-in/out (sso.views.safe_next)
IDM_SSO_METADATA_REFRESH_HOURS = env_int("IDM_SSO_METADATA_REFRESH_HOURS", 6)
IDM_SSO_SP_KEY_FILE = env_str("IDM_SSO_SP_KEY_FILE")
IDM_SSO_SP_CERT_FILE = env_str("IDM_SSO_SP_CERT_FILE")
IDM_SSO_XMLSEC_BINARY = env_str("IDM_SSO_XMLSEC_BINARY", "/usr/bin/xmlsec1")
# Provisioning: blocked users whose source grace period is over are deactivated by this sweep.
IDM_PROVISIONING_SWEEP_SECONDS = env_int("IDM_PROVISIONING_SWEEP_SECONDS", 60)
CELERY_BEAT_SCHEDULE["provisioning-deactivate-due"] = {
    "task": "provisioning.tasks.deactivate_due_users",
    "schedule": IDM_PROVISIONING_SWEEP_SECONDS,
}
# Directory sync: beat looks for due directories (each has its own interval, default 12 h).
IDM_DIRECTORY_DISPATCH_SECONDS = env_int("IDM_DIRECTORY_DISPATCH_SECONDS", 60)
IDM_DIRECTORY_LOCK_SECONDS = env_int("IDM_DIRECTORY_LOCK_SECONDS", 300)
IDM_DIRECTORY_SECRET_KEY = env_str("IDM_DIRECTORY_SECRET_KEY")
# Who is emailed about a held or failed directory sync (comma-separated); empty: the Cloud Admins.
IDM_DIRECTORY_ALERT_EMAILS = env_str("IDM_DIRECTORY_ALERT_EMAILS")
CELERY_BEAT_SCHEDULE["provisioning-dispatch-directories"] = {
    "task": "provisioning.tasks.dispatch_due_directories",
    "schedule": IDM_DIRECTORY_DISPATCH_SECONDS,
}
# Metadata URLs are fetched from public addresses only (SSRF); test IdPs on loopback need the switch,
# an internal IdP its network (comma-separated CIDRs).
IDM_SSO_METADATA_ALLOW_PRIVATE = env_bool("IDM_SSO_METADATA_ALLOW_PRIVATE", False)
IDM_SSO_METADATA_ALLOWED_NETWORKS = tuple(n.strip() for n in env_str("IDM_SSO_METADATA_ALLOWED_NETWORKS").split(",")
                                          if n.strip())
CELERY_BEAT_SCHEDULE["sso-metadata-refresh"] = {
    "task": "sso.tasks.refresh_all_metadata",
    "schedule": IDM_SSO_METADATA_REFRESH_HOURS * 3600,
}
# Expired SSO state rows (outstanding AuthnRequests of anonymous sign-in starts...) are deleted on a schedule.
CELERY_BEAT_SCHEDULE["sso-purge-expired-state"] = {"task": "sso.tasks.purge_expired_state", "schedule": 15 * 60}
# SAML replay and request state gets its own cache: the default DatabaseCache culls a third of its
# rows beyond MAX_ENTRIES (300), which would forget assertion ids and let a response be replayed.
# Redis: run it with an eviction policy that never drops keys early (noeviction or volatile-ttl).
_security_cache = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "sso"}
    if REDIS_URL else
    {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "idm_sso_cache",
     "OPTIONS": {"MAX_ENTRIES": 10_000_000, "CULL_FREQUENCY": 0}}
)
CACHES["sso"] = _security_cache
# Sign-in throttling counters (accounts/throttle.py) share the non-culling store, own prefix.
CACHES["security"] = {**_security_cache, "KEY_PREFIX": "security"}
IDM_SIGNIN_MAX_FAILURES = env_int("IDM_SIGNIN_MAX_FAILURES", 10)
IDM_SIGNIN_MAX_FAILURES_PER_IP = env_int("IDM_SIGNIN_MAX_FAILURES_PER_IP", 50)
IDM_SIGNIN_LOCKOUT_SECONDS = env_int("IDM_SIGNIN_LOCKOUT_SECONDS", 900)

# --- Operations (ops app: health, metrics, backups, audit retention; defaults in ops/app_settings.py)
IDM_METRICS_TOKEN = env_str("IDM_METRICS_TOKEN")
IDM_READYZ_WORKER_TIMEOUT = float(env_str("IDM_READYZ_WORKER_TIMEOUT", "1") or 1)
IDM_BACKUP_DIR = env_str("IDM_BACKUP_DIR", str(VAR_DIR / "backups"))
IDM_BACKUP_KEEP_DAILY = env_int("IDM_BACKUP_KEEP_DAILY", 7)
IDM_BACKUP_KEEP_WEEKLY = env_int("IDM_BACKUP_KEEP_WEEKLY", 4)
IDM_BACKUP_MAX_AGE_HOURS = env_int("IDM_BACKUP_MAX_AGE_HOURS", 26)
IDM_AUDIT_RETENTION_DAYS = env_int("IDM_AUDIT_RETENTION_DAYS", 90)
IDM_OUTBOX_DAYS = env_int("IDM_OUTBOX_DAYS", 30)
CELERY_BEAT_SCHEDULE["ops-backup-daily"] = {"task": "ops.backup_daily", "schedule": 24 * 3600}
CELERY_BEAT_SCHEDULE["ops-audit-purge"] = {"task": "ops.audit_purge", "schedule": 24 * 3600}
CELERY_BEAT_SCHEDULE["ops-dashboard-warm"] = {"task": "ops.dashboard_warm", "schedule": 1800}
# Credential links (accounts/credentials/tokens.py): reset links 1 hour, invitations 7 days.
IDM_PASSWORD_RESET_TIMEOUT = env_int("IDM_PASSWORD_RESET_TIMEOUT", 3600)
IDM_INVITATION_TIMEOUT = env_int("IDM_INVITATION_TIMEOUT", 7 * 24 * 3600)
IDM_PASSWORD_RESET_MAX_REQUESTS = env_int("IDM_PASSWORD_RESET_MAX_REQUESTS", 5)
