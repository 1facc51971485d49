"""django-scim2 used as its README documents it, for bench/scim.py's comparison only (issue 9).

Not part of the product and never imported by it: a separate settings module, URL conf, database
and gunicorn process. Its user model is what django-scim2's default adapters need
(``AbstractSCIMUserMixin``: ``scim_id``, ``scim_external_id``, ``scim_username`` columns), which is
why it cannot run on idm's own tables (stock ``auth.User``; SCIM ids live in ``ScimResource``).
Everything else is the library's default: ``SCIMUser`` / ``SCIMGroup`` adapters, the
``scim2-filter-parser`` SQL filter (``UserFilterQuery``), Django session authentication checked by
``SCIMAuthCheckMiddleware``.
"""
