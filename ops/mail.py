"""An email backend that keeps messages in the database outbox instead of sending them.

Settings pick it when no mail server is configured (``IDM_EMAIL_HOST`` unset), so every feature that
sends mail through Django (``send_mail``, ``EmailMessage``) shows what it would have sent on the
console's Outbox page. With ``IDM_EMAIL_HOST`` set, Django's SMTP backend sends for real.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.mail.backends.base import BaseEmailBackend

# What mail clients turn into links in plain text: "scheme://", "www.x", "host.tld", "name@host".
_LINKABLE = re.compile(r"(?<=\w)(\.|@)(?=\w)|:(?=//)")
_DEFANGED = {".": "[.]", "@": "[@]", ":": "[:]"}


def mail_data(text: str, *, quote: bool = True, limit: int = 200) -> str:
    """Text an admin or a provider chose (a directory name, an error from a server), made safe to put
    in an idm email as data, never as something idm says.

    Control characters (newlines included) become spaces, so the text cannot start a paragraph of its
    own; dots, colons and at signs that would let a mail client turn the text into a link are defanged
    ("evil.example" -> "evil[.]example", "https://" -> "https[:]//"); sentence punctuation stays as it
    is. ``quote`` wraps the result in double quotes so the reader sees where the data starts and ends.
    """
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in str(text or ""))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit - 1] + "\u2026"
    text = _LINKABLE.sub(lambda m: _DEFANGED[m.group(0)], text)
    return f"\"{text}\"" if quote else text


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
