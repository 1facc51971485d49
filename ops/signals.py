"""Signal handlers of the ops app (Celery task runs are recorded for /readyz and metrics)."""
