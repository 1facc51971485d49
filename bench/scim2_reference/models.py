"""The user model django-scim2's README asks for: ``AbstractSCIMUserMixin`` on a custom user."""

from django.contrib.auth.models import AbstractUser
from django_scim.models import AbstractSCIMUserMixin


class User(AbstractSCIMUserMixin, AbstractUser):
    """A Django user with django-scim2's SCIM columns."""

    @property
    def scim_groups(self):
        """The groups the default ``SCIMUser`` adapter lists in each User document."""
        return self.groups
