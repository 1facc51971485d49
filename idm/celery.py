"""The Celery application: tasks come from each app's ``tasks.py``; beat reads CELERY_BEAT_SCHEDULE."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idm.settings")

app = Celery("idm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# idm is not an installed app; register its own tasks (idm.ping health check) explicitly.
app.autodiscover_tasks(["idm"])
