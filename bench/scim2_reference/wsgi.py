"""WSGI entry of the django-scim2 reference server (bench only)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scim2_reference.settings")
application = get_wsgi_application()
