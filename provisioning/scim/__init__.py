"""SCIM 2.0 provisioning (RFC 7643 / 7644): protocol helpers and the django-scim2 front door."""
