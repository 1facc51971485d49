"""Project-level Celery tasks: health checks that need neither the database nor any app."""

from celery import shared_task


@shared_task(name="idm.ping")
def idm_ping() -> str:
    """Answer "pong": proves a worker is consuming from the broker and can return results."""
    return "pong"
