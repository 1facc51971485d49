"""An email backend that keeps messages in the database outbox instead of sending them.

Settings pick it when no mail server is configured (``IDM_EMAIL_HOST`` unset), so every feature that
sends mail through Django (``send_mail``, ``EmailMessage``) shows what it would have sent on the
console's Outbox page. With ``IDM_EMAIL_HOST`` set, Django's SMTP backend sends for real.
"""

from __future__ import annotations

from django.core.mail.backends.base import BaseEmailBackend


class OutboxEmailBackend(BaseEmailBackend):
    """Stores each message as an ``ops.OutboxMessage``; returns how many were stored."""

    def send_messages(self, email_messages) -> int:
        from ops.models import OutboxMessage

        stored = 0
        for message in email_messages or []:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []) or []:
                if mimetype == "text/html":
                    html = str(content)
            try:
                OutboxMessage.objects.create(
                    from_email=str(message.from_email or "")[:255], to=list(message.to), cc=list(message.cc),
                    bcc=list(message.bcc), subject=str(message.subject)[:998], body=str(message.body), html_body=html)
            except Exception:
                if not self.fail_silently:
                    raise
                continue
            stored += 1
        return stored
