"""Bulk upload of users from a text file (issue 3): parse -> validate (dry run) -> preview -> apply in
Celery -> result report; plus the users export in the same format. Every write goes through
``accounts.identity.service.apply_identity_changes``."""
